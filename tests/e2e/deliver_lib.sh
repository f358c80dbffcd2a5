# deliver_lib.sh - helpers for kurier's delivery tests (bash), sourced
# after lib.sh.
#
#   start_dns ARGS...        dnsmasq on 127.0.0.1:$DNS_PORT with the records
#                            in ARGS (--mx-host=, --host-record=, --txt-record=,
#                            --server=/DOMAIN/127.0.0.1#$SERVFAIL_PORT); every
#                            other name is NXDOMAIN
#   start_servfail_stub      an upstream for dnsmasq that answers SERVFAIL
#   dns_query NAME TYPE      "rcode X" and one "NAME TYPE VALUE" line per answer
#   start_sink NAME ARGS...  sink.py serve (ARGS: --listen ... behaviours);
#                            its spool is $SINK_SPOOL
#   sink_q ARGS...           sink.py query $SINK_SPOOL ARGS
#   sink_wait SECS N ARGS... until at least N spool records match ARGS
#   make_cert DIR            a self-signed certificate DIR/cert.pem, DIR/key.pem
#   start_kurierd NAME CONF  kurierd --roles relay,deliver; log in $E2E_TMP/NAME.log
#   stop_kurierd NAME        SIGTERM; checks the exit status and the log
#   submit PORT USER PASS SPECFILE
#                            one session (STARTTLS + AUTH), a transaction
#                            per line; prints "TAG ID" per message
#   rcpt_field TEXT ADDR FIELD   a recipient's field in `queue show` output
#   wait_until SECS CMD...   until CMD succeeds, at most SECS of wall time
#   wait_settled CONF ID     until every recipient of ID is final
#   wait_rcpt CONF ID ADDR RE    until a field line of ADDR matches RE
#   msg_without_trace IN OUT the message without its leading DKIM-Signature
#                            and Received header fields
#
# Every wait is bounded.  Delivery waits use $DELIVER_WAIT seconds (30 by
# default); after the first one that times out, the rest use 3 s, so a
# kurierd that delivers nothing fails every check within a few minutes
# instead of hanging.
#
# sink.py needs aiosmtpd (Debian's python3-aiosmtpd) and dkim_verify.py
# dkimpy (python3-dkim, python3-nacl), which only the system python3
# sees when another python3 comes first in PATH; $SINK_PY is the first
# python3 that imports both.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_ROOT=$(cd "$E2E_DIR/../.." && pwd)
: "${KURIER_BIN:=$E2E_ROOT/bin}"
: "${KURIER_REDIS_CONF:=$E2E_ROOT/deploy/redis.conf}"
: "${DELIVER_WAIT:=30}"
DNSMASQ=${DNSMASQ:-/usr/sbin/dnsmasq}
DELIVER_SLOW=0
declare -A KPID

# find_sink_python - set SINK_PY to a python3 that has aiosmtpd.
find_sink_python() {
	local p
	for p in /usr/bin/python3 python3; do
		if "$p" -c 'import aiosmtpd, dkim' >/dev/null 2>&1; then
			SINK_PY=$p
			return 0
		fi
	done
	echo "# no python3 with aiosmtpd and dkim (apt-get install python3-aiosmtpd python3-dkim python3-nacl)"
	return 1
}

# free_port2 - a port free on 127.0.0.1 for both TCP and UDP (DNS).
# Every helper here runs $SINK_PY rather than the python3 in PATH, which
# may be a slow-starting shim.
free_port2() {
	"$SINK_PY" -c '
import socket
for _ in range(50):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        t.close(); continue
    u.close(); t.close(); print(p); break'
}

# --- DNS ----------------------------------------------------------------------------

DNS_QUERY_PY='
import random, socket, struct, sys
TYPES = {"A": 1, "NS": 2, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}
NAMES = {v: k for k, v in TYPES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
port, name, qtype = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def readname(m, o):
    labels, end = [], None
    for _ in range(128):
        n = m[o]
        if n & 0xC0 == 0xC0:
            end = o + 2 if end is None else end
            o = ((n & 0x3F) << 8) | m[o + 1]
            continue
        if n == 0:
            o += 1
            break
        labels.append(m[o + 1:o + 1 + n].decode("ascii", "replace"))
        o += 1 + n
    return ".".join(labels) + ".", (end if end is not None else o)
qn = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"
tid = random.randrange(65536)
q = struct.pack(">HHHHHH", tid, 0x0100, 1, 0, 0, 0) + qn + struct.pack(">HH", TYPES[qtype], 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, ("127.0.0.1", port))
try:
    m = s.recv(65535)
except socket.timeout:
    print("timeout")
    sys.exit(1)
_, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", m[:12])
print("rcode", RCODES.get(flags & 15, flags & 15))
o = 12
for _ in range(qd):
    o = readname(m, o)[1] + 4
for _ in range(an):
    n, o = readname(m, o)
    t, c, ttl, rl = struct.unpack(">HHIH", m[o:o + 10])
    o += 10
    rd = m[o:o + rl]
    if t == 1:
        v = socket.inet_ntoa(rd)
    elif t == 28:
        v = socket.inet_ntop(socket.AF_INET6, rd)
    elif t == 15:
        v = "%d %s" % (struct.unpack(">H", rd[:2])[0], readname(m, o + 2)[0])
    elif t == 16:
        parts, p = [], 0
        while p < len(rd):
            parts.append(rd[p + 1:p + 1 + rd[p]].decode("utf-8", "replace"))
            p += 1 + rd[p]
        v = "".join(parts)
    else:
        v = rd.hex()
    print(n, NAMES.get(t, t), v)
    o += rl
'

# dns_query NAME TYPE [PORT] - ask the test's DNS server over UDP.
dns_query() {
	"$SINK_PY" -c "$DNS_QUERY_PY" "${3:-$DNS_PORT}" "$1" "$2"
}

# start_servfail_stub - a UDP and TCP DNS server on 127.0.0.1 that answers
# SERVFAIL to everything, for dnsmasq's --server=/DOMAIN/127.0.0.1#PORT
# (dnsmasq itself has no way to answer SERVFAIL, and a dead upstream makes
# it answer nothing at all); sets SERVFAIL_PORT.
start_servfail_stub() {
	local pf=$E2E_TMP/servfail.port
	"$SINK_PY" -c '
import socket, struct, sys, threading
def answer(m):
    flags = struct.unpack(">H", m[2:4])[0]
    return m[:2] + struct.pack(">H", 0x8000 | (flags & 0x7900) | 0x0080 | 2) + m[4:6] + b"\0" * 6 + m[12:]
for _ in range(50):
    t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("127.0.0.1", 0)); port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port)); break
    except OSError:
        t.close()
t.listen(16)
def tcp():
    while True:
        c, _ = t.accept(); c.settimeout(5)
        try:
            n = struct.unpack(">H", c.recv(2))[0]; m = b""
            while len(m) < n:
                d = c.recv(n - len(m))
                if not d: break
                m += d
            if len(m) >= 12:
                r = answer(m); c.sendall(struct.pack(">H", len(r)) + r)
        except (OSError, struct.error):
            pass
        c.close()
threading.Thread(target=tcp, daemon=True).start()
with open(sys.argv[1] + ".tmp", "w") as f: f.write("%d\n" % port)
import os; os.replace(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    m, a = u.recvfrom(65535)
    if len(m) >= 12: u.sendto(answer(m), a)
' "$pf" >"$E2E_TMP/servfail.log" 2>&1 &
	track $!
	wait_for 5 test -s "$pf" || { echo "# the SERVFAIL stub did not start"; return 1; }
	SERVFAIL_PORT=$(cat "$pf")
}

# start_dns ARGS... - dnsmasq answering from ARGS only (authoritative for
# what they name, NXDOMAIN for every other name: --local=/#/), UDP and
# TCP on 127.0.0.1:$DNS_PORT, queries logged to $E2E_TMP/dnsmasq.log;
# sets DNS_PORT and DNS_PID.
start_dns() {
	local try log=$E2E_TMP/dnsmasq.log
	[ -x "$DNSMASQ" ] || { echo "# $DNSMASQ missing (apt-get install dnsmasq-base)"; return 1; }
	for try in 1 2 3; do
		DNS_PORT=$(free_port2)
		"$DNSMASQ" -C /dev/null --no-resolv --no-hosts --keep-in-foreground \
			--listen-address=127.0.0.1 --bind-interfaces --port="$DNS_PORT" \
			--pid-file --local=/#/ --log-queries=extra --log-facility=- \
			"$@" >>"$log" 2>&1 &
		DNS_PID=$!
		track "$DNS_PID"
		if wait_until 5 dns_query dnsmasq-ready.invalid A; then
			return 0
		fi
		kill "$DNS_PID" 2>/dev/null
		echo "# dnsmasq did not answer on port $DNS_PORT (try $try):"
		tail -3 "$log" | sed 's/^/#   /'
	done
	return 1
}

# --- the sink -----------------------------------------------------------------------

# start_sink NAME ARGS... - sink.py serve with ARGS; sets SINK_SPOOL,
# SINK_PID; its log is $E2E_TMP/NAME.log.
start_sink() {
	local name=$1 ready=$E2E_TMP/$1.ready
	shift
	SINK_SPOOL=$E2E_TMP/$name.spool
	"$SINK_PY" "$E2E_DIR/sink.py" serve --spool "$SINK_SPOOL" --ready "$ready" \
		--log "$E2E_TMP/$name.log" "$@" >>"$E2E_TMP/$name.err" 2>&1 &
	SINK_PID=$!
	track "$SINK_PID"
	if ! wait_for 15 test -s "$ready"; then
		echo "# sink.py did not start:"
		tail -5 "$E2E_TMP/$name.err" | sed 's/^/#   /'
		return 1
	fi
}

# sink_q ARGS... - query the sink's spool (see sink.py).
sink_q() {
	"$SINK_PY" "$E2E_DIR/sink.py" query "$SINK_SPOOL" "$@"
}

sink_has() {
	local n=$1
	shift
	[ "$(sink_q "$@" --count)" -ge "$n" ]
}

# sink_wait SECS N FILTERS... - wait until N records match FILTERS.
sink_wait() {
	local secs=$1
	shift
	wait_until "$secs" sink_has "$@"
}

# make_cert DIR - a self-signed EC certificate for the sink's STARTTLS.
make_cert() {
	mkdir -p "$1"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$1/key.pem" -out "$1/cert.pem" -days 2 -subj /CN=sink.test \
		>"$1/openssl.log" 2>&1
}

# --- kurierd and kurierctl -------------------------------------------------------------

# kctl CONF ARGS... - kurierctl on CONF.
kctl() {
	local conf=$1
	shift
	"$KURIER_BIN/kurierctl" -c "$conf" "$@"
}

# start_kurierd NAME CONF - check CONF, then start kurierd with the relay
# and deliver roles and wait for its submission listener; sets KPID[NAME].
start_kurierd() {
	local name=$1 conf=$2 log=$E2E_TMP/$1.log out i
	if ! out=$("$KURIER_BIN/kurierd" -c "$conf" --check 2>&1); then
		echo "# kurierd --check refuses the delivery config $(basename "$conf"):"
		printf '%s\n' "$out" | head -5 | sed 's/^/#   /'
		return 1
	fi
	"$KURIER_BIN/kurierd" -c "$conf" --roles relay,deliver >"$log" 2>&1 &
	KPID[$name]=$!
	track "${KPID[$name]}"
	for i in $(seq 150); do
		if ! kill -0 "${KPID[$name]}" 2>/dev/null; then
			echo "# kurierd ($name) exited at start:"
			tail -5 "$log" | sed 's/^/#   /'
			return 1
		fi
		grep -q "event=relay_listening" "$log" && grep -q "event=redis_up client=kurierd " "$log" && return 0
		sleep 0.1
	done
	echo "# kurierd ($name) did not listen within 15 s:"
	tail -5 "$log" | sed 's/^/#   /'
	return 1
}

# kurierd_alive NAME - kurierd NAME is still running.
kurierd_alive() {
	[ -n "${KPID[$1]:-}" ] && kill -0 "${KPID[$1]}" 2>/dev/null
}

# stop_kurierd NAME - it must still be running; SIGTERM; it must exit 0
# within 10 s with a log free of sanitizer reports.  On a failure the
# tail of its log is shown.
stop_kurierd() {
	local name=$1 pid=${KPID[$1]:-} status=0 log=$E2E_TMP/$1.log
	[ -n "$pid" ] || return 0
	if kurierd_alive "$name"; then
		pass "kurierd ($name): still running after its scenarios"
	else
		fail "kurierd ($name): still running after its scenarios" "$(tail -20 "$log")"
	fi
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		fail "kurierd ($name): exits within 10 s of SIGTERM"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null || status=$?
	check_eq "kurierd ($name): exits 0 on SIGTERM" "$status" 0
	if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log"; then
		fail "kurierd ($name): no sanitizer report" "$(grep -E -A12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log" | head -30)"
	else
		pass "kurierd ($name): no sanitizer report"
	fi
	KPID[$name]=""
}

# keep_artifacts - with KURIER_E2E_KEEP=DIR, copy the logs, configs and
# spools of this run to DIR before the temp dir goes.
keep_artifacts() {
	[ -n "${KURIER_E2E_KEEP:-}" ] && [ -n "${E2E_TMP:-}" ] || return 0
	mkdir -p "$KURIER_E2E_KEEP" &&
		(cd "$E2E_TMP" && cp -r ./*.log ./*.conf ./*.spool ./*.err ./*.eml "$KURIER_E2E_KEEP/" 2>/dev/null)
	echo "# logs, configs and spools kept in $KURIER_E2E_KEEP"
}

SUBMIT_PY='
import smtplib, ssl, sys
port, user, password, spec = sys.argv[1:5]
jobs = []
with open(spec) as f:
    for line in f:
        if line.strip():
            jobs.append(line.rstrip("\n").split("\t"))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = None
for tag, sender, rcpts, path in jobs:
    if rcpts.startswith("@"):
        with open(rcpts[1:]) as f:
            rcpts = [l.strip() for l in f if l.strip()]
    else:
        rcpts = rcpts.split(",")
    with open(path, "rb") as f:
        msg = f.read()
    try:
        if s is None:
            s = smtplib.SMTP("127.0.0.1", int(port), local_hostname="deliver-test.example", timeout=60)
            s.starttls(context=ctx)
            s.ehlo("deliver-test.example")
            s.login(user, password)
        code, text = s.mail(sender)
        if code != 250:
            raise ValueError("MAIL: %d %s" % (code, text.decode()))
        for r in rcpts:
            code, text = s.rcpt(r)
            if code != 250:
                raise ValueError("RCPT %s: %d %s" % (r, code, text.decode()))
        code, text = s.data(msg)
        text = text.decode()
        if code != 250 or "queued as " not in text:
            raise ValueError("DATA: %d %s" % (code, text))
        print(tag, text.rsplit("queued as ", 1)[1].split()[0], flush=True)
    except ValueError as e:
        print(tag, "ERROR", e, flush=True)
        try:
            s.rset()
        except (OSError, smtplib.SMTPException):
            s = None
    except (OSError, smtplib.SMTPException) as e:
        print(tag, "ERROR", "submission failed: %s" % e, flush=True)
        s = None
if s is not None:
    s.quit()
'

# submit PORT USER PASS SPECFILE - one submission session (STARTTLS, AUTH)
# with one transaction per line of SPECFILE, "TAG<tab>FROM<tab>RCPTS<tab>
# MSGFILE" (RCPTS comma-separated, or @FILE with one per line; MSGFILE's
# bytes are sent as they are, CRLF lines).  Prints "TAG ID" per queued
# message, "TAG ERROR why" per refused one; reconnects after a broken
# connection.
submit() {
	"$SINK_PY" -c "$SUBMIT_PY" "$@"
}

# rcpt_field TEXT ADDR FIELD - FIELD ("state", "attempts", "last reply",
# ...) of recipient <ADDR> in the `kurierctl queue show` output TEXT.
rcpt_field() {
	printf '%s\n' "$1" | awk -v head="recipient <$2>" -v f="$3" '
		$0 == head { on = 1; next }
		/^[^ ]/ || /^$/ { on = 0 }
		on && index($0, "  " f " ") == 1 {
			v = substr($0, length(f) + 3); sub(/^ +/, "", v); print v; exit
		}'
}

# msg_settled CONF ID - every recipient of ID has a final state.
msg_settled() {
	local show
	show=$(kctl "$1" queue show "$2" 2>/dev/null) || return 1
	printf '%s\n' "$show" | grep -Eq '^  state +' || return 1
	! printf '%s\n' "$show" | grep -E '^  state +' | grep -Evq '^  state +(delivered|bounced|expired|suppressed)$'
}

# deliver_wait - seconds for the next delivery wait.
deliver_wait() {
	if [ "$DELIVER_SLOW" = 1 ]; then echo 3; else echo "$DELIVER_WAIT"; fi
}

# deliver_timed_out WHAT - note a wait that ran out, shorten the rest.
deliver_timed_out() {
	if [ "$DELIVER_SLOW" = 0 ]; then
		DELIVER_SLOW=1
		echo "# $1: nothing within ${DELIVER_WAIT}s; later delivery waits are cut to 3s"
	fi
}

# wait_until SECS CMD... - run CMD every 0.2 s until it succeeds, for at
# most SECS seconds of wall-clock time (however long CMD itself takes).
wait_until() {
	local end=$(($(date +%s%N) / 1000000 + $1 * 1000))
	shift
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ $(($(date +%s%N) / 1000000)) -ge "$end" ] && return 1
		sleep 0.2
	done
}

# wait_settled CONF ID - wait (bounded) until ID's recipients are final.
wait_settled() {
	[ -n "$2" ] || return 1
	wait_until "$(deliver_wait)" msg_settled "$1" "$2" && return 0
	deliver_timed_out "message $2"
	return 1
}

# wait_rcpt CONF ID ADDR REGEX - wait until `queue show ID` has ADDR with
# a field line matching REGEX (e.g. "state +deferred").
rcpt_matches() {
	local show
	show=$(kctl "$1" queue show "$2" 2>/dev/null) || return 1
	printf '%s\n' "$show" | awk -v head="recipient <$3>" '
		$0 == head { on = 1; next } /^[^ ]/ || /^$/ { on = 0 } on' | grep -Eq -- "^  $4"
}
wait_rcpt() {
	[ -n "$2" ] || return 1
	wait_until "$(deliver_wait)" rcpt_matches "$@" && return 0
	deliver_timed_out "message $2"
	return 1
}

STRIP_PY='
import sys
data = open(sys.argv[1], "rb").read()
names = []
while True:
    end = data.find(b"\r\n")
    if end < 0:
        break
    name = data[:end].split(b":", 1)[0].strip().lower()
    if name not in (b"dkim-signature", b"received"):
        break
    # The field with its folded continuation lines.
    while data[end + 2:end + 3] in (b" ", b"\t"):
        end = data.find(b"\r\n", end + 2)
        if end < 0:
            end = len(data) - 2
            break
    names.append(name.decode())
    data = data[end + 2:]
open(sys.argv[2], "wb").write(data)
print(" ".join(names))
'

# msg_without_trace IN OUT - OUT is IN without the DKIM-Signature and
# Received fields at its top; prints their names in order.
msg_without_trace() {
	"$SINK_PY" -c "$STRIP_PY" "$1" "$2"
}

# dkim_tag VALUE TAG - the tag's value in a DKIM-Signature field value,
# whitespace removed.
dkim_tag() {
	printf '%s' "$1" | tr -d ' \t\r\n' | tr ';' '\n' | sed -n "s/^$2=//p" | head -1
}
