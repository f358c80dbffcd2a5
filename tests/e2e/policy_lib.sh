# policy_lib.sh - helpers of tests/e2e/policy.sh: kurierd instances that
# share one Redis, and a scripted SMTP client (stdlib Python) that can
# bind a chosen loopback source address, so one machine has clients with
# distinct addresses (127.0.0.1, 127.0.0.2, ...).
#
# smtp PORT [--src IP] STEP... runs one session and prints the last line
# of each step's reply, one per line (the banner is not printed); a step
# after the server closed the connection prints "EOF".  Steps:
#   EHLO               EHLO client.test
#   STARTTLS           STARTTLS and the TLS handshake (certificate not checked)
#   AUTH:USER:PASS     AUTH PLAIN with the initial response
#   MSG:FILE           the message in FILE (CRLF lines), dot-stuffed and ended
#   READ               read one more reply without sending anything
#   SLEEP:SECS         wait (prints "slept")
#   PAUSE:HERE:GO      create file HERE, then wait until file GO exists (prints "paused")
#   SENDQ:LINE         send LINE without waiting for its reply (prints "sent")
#   CLOSE              close the connection at once, replies unread (prints "closed")
#   anything else      sent as a command line
# Every socket has a timeout: a server that hangs fails a check, never the test.

POLICY_PY=$E2E_TMP/smtp_steps.py
cat >"$POLICY_PY" <<'PY'
import base64, socket, ssl, sys

port = int(sys.argv[1])
args = sys.argv[2:]
src = None
if args[:1] == ["--src"]:
    src, args = args[1], args[2:]
sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                source_address=(src, 0) if src else None)
rd = sock.makefile("rb")


def reply():
    last = None
    for _ in range(100):
        ln = rd.readline()
        if not ln:
            return "EOF"
        last = ln.decode("utf-8", "replace").rstrip("\r\n")
        if len(last) < 4 or last[3] != "-":
            return last
    return last


def send(b):
    sock.sendall(b if isinstance(b, bytes) else b.encode())


reply()
for step in args:
    try:
        if step == "EHLO":
            send("EHLO client.test\r\n")
            r = reply()
        elif step == "STARTTLS":
            send("STARTTLS\r\n")
            r = reply()
            if r.startswith("220"):
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                sock = ctx.wrap_socket(sock, server_hostname="kurier.test")
                rd = sock.makefile("rb")
        elif step.startswith("AUTH:"):
            _, user, pw = step.split(":", 2)
            tok = base64.b64encode(("\0%s\0%s" % (user, pw)).encode()).decode()
            send("AUTH PLAIN %s\r\n" % tok)
            r = reply()
        elif step.startswith("MSG:"):
            data = open(step[4:], "rb").read()
            lines = data.split(b"\r\n")
            if lines and lines[-1] == b"":
                lines.pop()
            out = b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines)
            send(out + b".\r\n")
            r = reply()
        elif step.startswith("SENDQ:"):
            send(step[6:] + "\r\n")
            r = "sent"
        elif step == "CLOSE":
            sock.close()
            print("closed", flush=True)
            break
        elif step == "READ":
            r = reply()
        elif step.startswith("PAUSE:"):
            # PAUSE:HERE:GO - say "here" (create file HERE), then wait
            # until file GO exists (at most 120 s).
            import os, time
            here, go = step[6:].split(":", 1)
            open(here, "w").close()
            for _ in range(1200):
                if os.path.exists(go):
                    break
                time.sleep(0.1)
            r = "paused"
        elif step.startswith("SLEEP:"):
            import time
            time.sleep(float(step[6:]))
            r = "slept"
        else:
            send(step + "\r\n")
            r = reply()
    except (OSError, ssl.SSLError) as e:
        r = "EOF (%s)" % e.__class__.__name__
    print(r, flush=True)
    if r.startswith("EOF"):
        break
PY

smtp() {
	timeout 60 python3 "$POLICY_PY" "$@" 2>&1
}

# line N TEXT - line N (from 1) of TEXT.
line() {
	printf '%s\n' "$2" | sed -n "${1}p"
}

# msgfile NAME HEADER... - a message file with the given header lines,
# a Subject and a short body, CRLF line ends; prints its path.
msgfile() {
	local f=$E2E_TMP/$1.eml h
	shift
	: >"$f"
	for h in "$@"; do printf '%s\r\n' "$h" >>"$f"; done
	printf 'Subject: policy e2e\r\n\r\nbody\r\n' >>"$f"
	printf '%s' "$f"
}

# start_k NAME - start kurierd (relay role) with $E2E_TMP/NAME.conf; it
# must listen and reach Redis within 15 s.  Sets KPID[NAME].
declare -A KPID
start_k() {
	local name=$1 log=$E2E_TMP/$1.log
	"$KURIER_BIN/kurierd" -c "$E2E_TMP/$name.conf" --roles relay >>"$log" 2>&1 &
	KPID[$name]=$!
	track "${KPID[$name]}"
	for _ in $(seq 150); do
		kill -0 "${KPID[$name]}" 2>/dev/null || break
		[ "$(grep -c 'event=relay_listening' "$log")" -ge "${2:-1}" ] &&
			[ "$(grep -c 'event=redis_up client=kurierd ' "$log")" -ge "${2:-1}" ] && return 0
		sleep 0.1
	done
	echo "# kurierd ($name) did not start:"
	tail -5 "$log" | sed 's/^/#   /'
	return 1
}

# stop_k NAME - SIGTERM; it must exit 0 within 10 s, its log free of
# sanitizer reports.
stop_k() {
	local name=$1 pid=${KPID[$1]} status=0 log=$E2E_TMP/$1.log
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || status=$?
	check_eq "kurierd ($name): exits 0 on SIGTERM" "$status" 0
	if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log"; then
		fail "kurierd ($name): no sanitizer report" "$(grep -E -A12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log" | head -30)"
	else
		pass "kurierd ($name): no sanitizer report"
	fi
}
