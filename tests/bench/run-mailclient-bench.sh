#!/usr/bin/env bash
# run-mailclient-bench.sh - what kurier's IMAP and POP3 servers cost a
# mail client, side by side with Dovecot on the same machine (`make
# bench`, via run-bench.sh; MAILCLIENT_BENCH=0 skips it there).
#
# Starts, each on a free 127.0.0.1 port with its data in one temp dir:
#   - a redis-server from deploy/redis.conf (AOF, appendfsync always);
#   - kurierd --roles mailbox, imaps and pop3s (implicit TLS) only;
#   - Dovecot (`dovecot -F -c CONF`, template tests/bench/dovecot/):
#     imaps and pop3s only, maildir, a passwd-file with the same users
#     and the same yescrypt hashes as kurier's (read from its Redis;
#     Dovecot checks them through crypt(3)), every process as one
#     unprivileged user (ours; the dovecot system user when we are
#     root, through setpriv), base_dir, state and log in the temp dir.
# Both use one self-signed EC P-256 certificate made for the run, and
# both hold the same N messages for the user "bench": the bounce corpus
# (BOUNCE_CORPUS) in rotation, each with an "X-Bench-Seq: I kurierbench"
# header line first so no two are alike ("somethingrare" joins it in
# every RARE_EVERY-th).  They are APPENDed over IMAP to both (imapload
# append, one command at a time, LITERAL+ when offered), which is
# itself a figure; FILL=direct stores kurier's by mbox_append and
# writes Dovecot's as files into the maildir's new/ instead.
#
# Figures, with imapload and popload (tests/bench/imapload.c and
# popload.c: C, OpenSSL, blocking I/O, 256 KB reads) as the clients,
# the same runs for both servers, all over implicit TLS:
#   imap      one session, one command at a time, each timed with the
#             server's CPU over it (kurierd plus Redis; every Dovecot
#             process, children that exited included): LOGIN + SELECT
#             INBOX; FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE); FETCH
#             n BODY.PEEK[] for every n; FETCH 1:* BODY.PEEK[]; SEARCH
#             TEXT "somethingrare" and "kurierbench" (Dovecot has no
#             full-text index plugin here: both read the messages).
#             Both must answer N FETCHes whose RFC822.SIZE sums agree
#             and the same SEARCH hits; the script checks it.  A
#             session fetching one message goes before.
#   retr      POP3, one session: USER/PASS, LIST, UIDL and RETR of all
#             N, one command at a time, as typical clients; then again
#             with PIPELINE_DEPTH commands in flight (RFC 2449
#             PIPELINING, both servers offer it).  A first session
#             RETRieving one message goes before.
#   idle      IDLE connections held through the TLS handshake and the
#             greeting, not logged in; then (IDLE_AUTH=1) IDLE sessions
#             logged in: IMAP as "bench", INBOX (N messages) selected,
#             in IDLE (RFC 2177), as a mail client keeps one open; POP3
#             one user each (a maildrop takes one session):
#             idle1..idleIDLE, each with an empty maildrop.  IDLE_MANY
#             greeted IMAP connections as well.  Memory per connection
#             = (after - before) / connections, of kurierd's VmRSS (one
#             process) and of the sum of every Dovecot process's VmRSS
#             and of their PSS (shared pages counted once).  Dovecot
#             runs with its default login process per connection
#             (service_count = 1), and for the greeted connections also
#             (DOVECOT_PERF=1) with service_count = 0, its
#             "high-performance" login mode, which alone can hold
#             IDLE_MANY.
# Then it prints the machine, the figures as "name value unit" and a
# Markdown table "metric | kurier | Dovecot".  Everything it started is
# stopped by PID and the temp dir removed; every wait is bounded.
#
#   tests/bench/run-mailclient-bench.sh
#
# Environment:
#   IMAPLOAD, POPLOAD  the clients (build/release/tests/imapload, popload)
#   MBOX_APPEND    (build/release/tests/mbox_append), for FILL=direct
#   KURIERD, KURIERCTL  (bin/kurierd, bin/kurierctl)
#   REDIS_SERVER, REDIS_CONF  (redis-server, deploy/redis.conf)
#   BOUNCE_CORPUS  (../shared/testdata/bounces/bounce)
#   N              messages in the INBOX (10000)
#   FILL           append: over IMAP APPEND (default); direct: mbox_append
#                  and maildir files, when APPEND is not possible
#   PIPELINE_DEPTH RETR commands in flight in the pipelined run (16; 0
#                  skips it)
#   IDLE           idle connections (1000); more than about 20,000 needs
#                  a higher `ulimit -Hn` than most machines give
#   IDLE_MANY      greeted IMAP connections in the second idle run (10000
#                  when `ulimit -Hn` allows it, else 0; 0 skips it)
#   IDLE_AUTH      1: also hold IDLE logged-in sessions (default 1 up to
#                  IDLE_AUTH_MAX, 2000, else 0: kurierctl user add takes
#                  about 50 ms a user, for the yescrypt hash)
#   DOVECOT_SECURE 1: measure Dovecot's default login mode, a process
#                  per connection (default 1 up to 2000 connections,
#                  else 0: a process each would not fit in memory)
#   DOVECOT_PERF   1: also measure greeted connections with service_count
#                  = 0 (1)
#   SKIP_DOVECOT   1: kurier only
#   SKIP_POP3, SKIP_IMAP  1: leave that protocol's runs out
#
# Both servers check the same yescrypt hashes at each login (about 40 ms
# of CPU), which the login figures include.
#
# Exit status: 0 when the kurier runs completed, 1 otherwise.  A Dovecot
# that is not installed or does not start is reported and skipped; its
# answers disagreeing with kurier's is an error.

set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/bench/lib.sh

IMAPLOAD=${IMAPLOAD:-build/release/tests/imapload}
POPLOAD=${POPLOAD:-build/release/tests/popload}
MBOX_APPEND=${MBOX_APPEND:-build/release/tests/mbox_append}
KURIERD=${KURIERD:-bin/kurierd}
KURIERCTL=${KURIERCTL:-bin/kurierctl}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CONF=${REDIS_CONF:-deploy/redis.conf}
BOUNCE_CORPUS=${BOUNCE_CORPUS:-../shared/testdata/bounces/bounce}
N=${N:-10000}
FILL=${FILL:-append}
PIPELINE_DEPTH=${PIPELINE_DEPTH:-16}
IDLE=${IDLE:-1000}
IDLE_AUTH_MAX=2000       # also Dovecot's default login mode, up to here
if [ "$IDLE" -le "$IDLE_AUTH_MAX" ]; then
	IDLE_AUTH=${IDLE_AUTH:-1}
	DOVECOT_SECURE=${DOVECOT_SECURE:-1}
else
	IDLE_AUTH=${IDLE_AUTH:-0}
	DOVECOT_SECURE=${DOVECOT_SECURE:-0}
fi
IDLE_MANY_DEFAULT=10000
FD_HEADROOM=100          # descriptors beyond the connections, per process
if [ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge $((IDLE_MANY_DEFAULT + FD_HEADROOM)) ]; then
	IDLE_MANY=${IDLE_MANY:-$IDLE_MANY_DEFAULT}
else
	IDLE_MANY=${IDLE_MANY:-0}
fi
DOVECOT_PERF=${DOVECOT_PERF:-1}
SKIP_DOVECOT=${SKIP_DOVECOT:-0}
SKIP_POP3=${SKIP_POP3:-0}
SKIP_IMAP=${SKIP_IMAP:-0}
DC_TEMPLATE=tests/bench/dovecot/dovecot.conf.in

BENCH_PASSWORD=bench-mail-password-1
IDLE_PASSWORD=bench-idle-password-2
RARE_WORD=somethingrare  # in every RARE_EVERY-th message's X-Bench-Seq
ALL_WORD=kurierbench     # in every message's
RARE_EVERY=1000
TARGET_IDLE_B=65536      # kurierd memory per idle connection (the issue)
SETTLE_S=2               # after the last connection is up, before measuring
HOLD_S=900               # the clients' idle holds at most this long
USERADD_STREAMS=2        # kurierctl user add in parallel (2 cores)
CONN_MAX=$IDLE           # connections a server must take at once
[ "$IDLE_MANY" -gt "$CONN_MAX" ] && CONN_MAX=$IDLE_MANY

KURIERD_PID=
DC_PID=
IDLE_PID=
RESULTS=

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
	exec 8>&-
	stop_pid "$IDLE_PID" 10
	dovecot_stop
	stop_pid "$KURIERD_PID" 15
	stop_pid "$REDIS_PID" 10
	[ -n "$BENCH_TMP" ] && rm -rf "$BENCH_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- processes: memory and CPU -------------------------------------------------

# tree_pids PID - PID and every process under it, one a line (one ps
# for the whole tree: Dovecot runs a process per connection).
tree_pids() {
	ps -e -o pid=,ppid= | awk -v root="$1" '
		{ kids[$2] = kids[$2] " " $1 }
		END {
			n = 1
			q[1] = root
			for (i = 1; i <= n; i++) {
				print q[i]
				m = split(kids[q[i]], k, " ")
				for (j = 1; j <= m; j++)
					q[++n] = k[j]
			}
		}'
}

# tree_mem PID - "RSS_KB PSS_KB NPROCS" summed over the tree of PID.
tree_mem() {
	local p
	for p in $(tree_pids "$1"); do
		cat "/proc/$p/status" "/proc/$p/smaps_rollup" 2>/dev/null
	done | awk '/^VmRSS:/ { r += $2; n++ } /^Pss:/ { p += $2 }
		END { printf "%d %d %d\n", r, p, n }'
}

# tree_cpu PID... - CPU seconds of the trees of every PID: user and
# system time of the live processes plus what they reaped.
tree_cpu() {
	local root p t=0 v
	for root in "$@"; do
		for p in $(tree_pids "$root"); do
			# Fields 14-17 after the command name, which may hold spaces.
			v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }')
			t=$((t + ${v:-0}))
		done
	done
	awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# greeted PORT - true when a TLS connection to PORT gets a +OK greeting
# (POP3: both servers listen for it whatever runs).
greeted() {
	timeout 10 "$POPLOAD" idle -p "$1" -c 1 -k 0 -t 5 </dev/null >/dev/null 2>&1
}

# --- Dovecot -------------------------------------------------------------------

# dovecot_stop - stop our Dovecot master (it takes its children along).
dovecot_stop() {
	local kids
	[ -n "$DC_PID" ] || return 0
	kids=$(tree_pids "$DC_PID" | tail -n +2)
	stop_pid "$DC_PID" 15
	# shellcheck disable=SC2086
	[ -n "$kids" ] && kill -9 $kids 2>/dev/null
	DC_PID=
}

# dovecot_start SERVICE_COUNT - write the config from the template and
# start the instance; 0 once it accepts TLS on DC_PORT (POP3) within
# 20 s (IMAP on DC_IPORT comes from the same login service set-up).
dovecot_start() {
	local conf=$DC_DIR/dovecot.conf procs=$((CONN_MAX + FD_HEADROOM))
	sed -e "s|@DIR@|$DC_DIR|g; s|@USER@|$DC_USER|g; s|@GROUP@|$DC_GROUP|g" \
		-e "s|@UID@|$DC_UID|g; s|@PORT@|$DC_PORT|g; s|@IMAP_PORT@|$DC_IPORT|g" \
		-e "s|@CERT@|$BENCH_TMP/cert.pem|g" \
		-e "s|@KEY@|$DC_DIR/key.pem|g; s|@LOGIN_SERVICE_COUNT@|$1|g" \
		-e "s|@PROCS@|$procs|g; s|@AUTH_CLIENTS@|$((procs * 3))|g" \
		"$DC_TEMPLATE" >"$conf" || return 1
	${DC_AS[@]+"${DC_AS[@]}"} dovecot -F -c "$conf" >>"$DC_DIR/stderr.log" 2>&1 &
	DC_PID=$!
	for _ in $(seq 200); do
		if ! kill -0 "$DC_PID" 2>/dev/null; then
			DC_PID=
			break
		fi
		greeted "$DC_PORT" && return 0
		sleep 0.1
	done
	echo "$BENCH_NAME: DOVECOT DID NOT START; the comparison is skipped:" >&2
	tail -5 "$DC_DIR/stderr.log" "$DC_DIR/dovecot.log" >&2 2>/dev/null
	dovecot_stop
	return 1
}

# --- the runs ------------------------------------------------------------------

# cpu_ms_per_msg C0 C1 - server CPU seconds C0 to C1 as ms per message.
cpu_ms_per_msg() {
	awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }'
}

# retr_run SERVER PORT DEPTH CPU-PIDS... - one timed POP3 retr session;
# the figures go to RESULTS as SERVER_NAME (with _p when DEPTH > 1).
retr_run() {
	local server=$1 port=$2 depth=$3 tag="" c0 c1 out
	shift 3
	[ "$depth" -gt 1 ] && tag=_p
	c0=$(tree_cpu "$@")
	out=$(POPLOAD_PASSWORD=$BENCH_PASSWORD timeout --kill-after=10 1200 \
		"$POPLOAD" retr -p "$port" -u bench -P "$depth" -t 1100) || {
		echo "$BENCH_NAME: $server: popload retr -P $depth failed" >&2
		return 1
	}
	c1=$(tree_cpu "$@")
	# shellcheck disable=SC2001  # a prefix on every line
	echo "$out" | sed "s/^/${server}${tag}_/" | tee -a "$RESULTS"
	emit "${server}${tag}_server_cpu_ms_per_msg" "$(cpu_ms_per_msg "$c0" "$c1")" ms
}

# imap_run SERVER PORT CPU-PID,... - the timed IMAP session; the figures
# go to RESULTS as SERVER_imap_NAME.
imap_run() {
	local server=$1 port=$2 pids=$3 out
	out=$(IMAPLOAD_PASSWORD=$BENCH_PASSWORD timeout --kill-after=10 1800 \
		"$IMAPLOAD" fetch -p "$port" -u bench -C "$pids" -t 1700 \
		-r "$RARE_WORD" -a "$ALL_WORD") || {
		echo "$BENCH_NAME: $server: imapload fetch failed" >&2
		return 1
	}
	# shellcheck disable=SC2001  # a prefix on every line
	echo "$out" | sed "s/^/${server}_imap_/" | tee -a "$RESULTS"
}

# append_run SERVER PORT - fill the INBOX of bench over IMAP APPEND with
# the files of MSG_DIR, in order; figures as SERVER_NAME.
append_run() {
	local server=$1 port=$2 out files
	files=("$MSG_DIR"/*.eml)
	out=$(IMAPLOAD_PASSWORD=$BENCH_PASSWORD timeout --kill-after=10 1800 \
		"$IMAPLOAD" append -p "$port" -u bench -t 1700 "${files[@]}") || {
		echo "$BENCH_NAME: $server: imapload append failed" >&2
		return 1
	}
	# shellcheck disable=SC2001  # a prefix on every line
	echo "$out" | sed "s/^/${server}_/" | tee -a "$RESULTS"
}

# idle_run NAME PORT MEM-PID COUNT CLIENT [CLIENT-ARGS...] - hold COUNT
# idle connections with CLIENT (popload or imapload idle, its password
# from the environment) and emit NAME_rss_per_conn and, for a tree of
# more than one process, NAME_pss_per_conn (bytes).
idle_run() {
	local name=$1 port=$2 pid=$3 count=$4 client=$5 fifo=$BENCH_TMP/idle.fifo
	local out=$BENCH_TMP/idle.out m0 m1 held=0
	shift 5
	rm -f "$fifo" && mkfifo "$fifo" || return 1
	m0=$(tree_mem "$pid")
	POPLOAD_PASSWORD=$IDLE_PASSWORD IMAPLOAD_PASSWORD=$BENCH_PASSWORD \
		"$client" idle -p "$port" -c "$count" -k "$HOLD_S" -t $((HOLD_S + 60)) "$@" \
		<"$fifo" >"$out" 2>&1 &
	IDLE_PID=$!
	exec 8>"$fifo"
	# Bounded: the set-up of every connection (a login is a yescrypt check).
	for _ in $(seq $((HOLD_S * 10))); do
		grep -q '^held ' "$out" && { held=1; break; }
		kill -0 "$IDLE_PID" 2>/dev/null || break
		sleep 0.1
	done
	[ "$held" = 1 ] && sleep "$SETTLE_S" && m1=$(tree_mem "$pid")
	exec 8>&-
	stop_pid "$IDLE_PID" 30
	IDLE_PID=
	if [ "$held" != 1 ]; then
		echo "$BENCH_NAME: $name: $client idle failed:" >&2
		tail -3 "$out" >&2
		return 1
	fi
	sed -n "s/^setup_s /${name}_setup_s /p" "$out" | tee -a "$RESULTS"
	read -r rss0 pss0 n0 <<<"$m0"
	read -r rss1 pss1 n1 <<<"$m1"
	emit "${name}_procs" "$n0->$n1" processes
	emit "${name}_rss_per_conn" $(((rss1 - rss0) * 1024 / count)) B
	[ "$n1" -gt 1 ] && emit "${name}_pss_per_conn" $(((pss1 - pss0) * 1024 / count)) B
	return 0
}

# --- set-up --------------------------------------------------------------------

for tool in "$IMAPLOAD" "$POPLOAD"; do
	[ -x "$tool" ] || die "$tool not found: build it with make $tool"
done
if [ "$FILL" = direct ]; then
	[ -x "$MBOX_APPEND" ] || die "$MBOX_APPEND not found: build it with make $MBOX_APPEND"
elif [ "$FILL" != append ]; then
	die "FILL=$FILL: append or direct"
fi
if [ ! -x "$KURIERD" ] || [ ! -x "$KURIERCTL" ]; then
	die "$KURIERD or $KURIERCTL not found: run make all"
fi
[ -d "$BOUNCE_CORPUS" ] || die "$BOUNCE_CORPUS not found: set BOUNCE_CORPUS"
[ -r "$DC_TEMPLATE" ] || die "$DC_TEMPLATE not found"
command -v "$REDIS_SERVER" >/dev/null || die "$REDIS_SERVER not found"

# Every connection is a descriptor in the client and in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((CONN_MAX + FD_HEADROOM)) ] ||
	die "$CONN_MAX connections need ulimit -n above $((CONN_MAX + FD_HEADROOM)); the hard limit is $(ulimit -Hn)"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
bench_tmp kurier-mcbench
RESULTS=$BENCH_TMP/results
: >"$RESULTS"
# Dovecot's user must reach its own dir under this one.
chmod 711 "$BENCH_TMP"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=kurier.bench -keyout "$BENCH_TMP/key.pem" -out "$BENCH_TMP/cert.pem" \
	>/dev/null 2>&1 || die "openssl could not make a certificate"
chmod 644 "$BENCH_TMP/cert.pem"

RPORT=$(free_port) || die "no free port"
bench_redis "$BENCH_TMP/redis" "$RPORT" || die "redis-server did not start on 127.0.0.1:$RPORT"
# Four more ports, all different.
PORTS=()
while [ "${#PORTS[@]}" -lt 4 ]; do
	p=$(free_port) || die "no free port"
	case " ${PORTS[*]} $RPORT " in *" $p "*) continue ;; esac
	PORTS+=("$p")
done
KPORT=${PORTS[0]} KIPORT=${PORTS[1]} DC_PORT=${PORTS[2]} DC_IPORT=${PORTS[3]}

CONF=$BENCH_TMP/kurier.conf
bench_conf "$CONF" "$BENCH_TMP/data" "$RPORT"
cat >>"$CONF" <<CONF
[tls]
cert = $BENCH_TMP/cert.pem
key = $BENCH_TMP/key.pem

[relay]
submission =
submissions =
inbound =

[mailbox]
pop3 =
pop3s = 127.0.0.1:$KPORT
imap =
imaps = 127.0.0.1:$KIPORT
max_connections = 1000000
max_connections_per_ip = 1000000
max_messages = 10000000
pop3_timeout = 1h
imap_timeout = 1h
CONF

ctl() {
	"$KURIERCTL" -c "$CONF" "$@"
}

# The messages: the corpus in rotation, LF line ends (Dovecot's maildir
# form; imapload and mbox_append send and store CRLF), NUL bytes left
# out, one header line first that differs and holds the search words.
MSG_DIR=$BENCH_TMP/msgs
python3 - "$BOUNCE_CORPUS" "$MSG_DIR" "$N" "$ALL_WORD" "$RARE_WORD" "$RARE_EVERY" <<'PY' || die "could not write the messages"
import os, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
all_word, rare_word, rare_every = sys.argv[4].encode(), sys.argv[5].encode(), int(sys.argv[6])
files = sorted(os.path.join(src, f) for f in os.listdir(src) if f.endswith(".eml"))
if not files:
    sys.exit("no .eml files in " + src)
os.makedirs(dst)
# No NUL: an IMAP literal may not hold one (RFC 3501, 4.3); one file has.
bodies = [open(f, "rb").read().replace(b"\r\n", b"\n").replace(b"\0", b"") for f in files]
for i in range(1, n + 1):
    words = all_word + (b" " + rare_word if i % rare_every == 0 else b"")
    with open(os.path.join(dst, "%06d.eml" % i), "wb") as out:
        out.write(b"X-Bench-Seq: %d %s\n" % (i, words) + bodies[(i - 1) % len(bodies)])
PY
MSG_BYTES=$(du -sb "$MSG_DIR" | cut -f1)
RARE_WANT=$((N / RARE_EVERY))

printf '%s\n' "$BENCH_PASSWORD" | ctl user add bench --domains bench.example >/dev/null ||
	die "kurierctl user add bench failed"
if [ "$FILL" = direct ]; then
	t0=$(now_ms)
	find "$MSG_DIR" -name '*.eml' | sort | timeout 1200 xargs -n 1000 "$MBOX_APPEND" -q -c "$CONF" -u bench ||
		die "mbox_append failed"
	echo "# kurier: $N messages stored by mbox_append in $(( $(now_ms) - t0 )) ms"
fi

if [ "$IDLE_AUTH" = 1 ] && [ "$SKIP_POP3" != 1 ]; then
	export IDLE_PASSWORD KURIERCTL CONF
	t0=$(now_ms)
	# shellcheck disable=SC2016  # expanded by the inner shell
	seq "$IDLE" | timeout 1800 xargs -P "$USERADD_STREAMS" -n 50 sh -c '
		for i; do
			printf "%s\n" "$IDLE_PASSWORD" | "$KURIERCTL" -c "$CONF" user add "idle$i" --domains "idle$i.example" >/dev/null || exit 1
		done' sh || die "kurierctl user add idle* failed"
	echo "# kurier: $IDLE idle users added in $(( $(now_ms) - t0 )) ms"
fi

# passwd_lines USER... - Dovecot passwd-file lines with kurier's hashes.
passwd_lines() {
	printf 'HGET bench:user:%s hash\n' "$@" | redis-cli -p "$RPORT" |
		paste -d' ' <(printf '%s\n' "$@") - |
		awk '$2 ~ /^\$/ { printf "%s:{CRYPT}%s::::::\n", $1, $2; next }
			{ print "no hash for " $1 > "/dev/stderr"; exit 1 }'
}

# --- Dovecot set-up ------------------------------------------------------------

DC_OK=0
DC_VERSION=
DC_DIR=$BENCH_TMP/dovecot
DC_AS=()
if [ "$SKIP_DOVECOT" = 1 ]; then
	echo "# dovecot: skipped (SKIP_DOVECOT=1)"
elif ! command -v dovecot >/dev/null; then
	echo "$BENCH_NAME: DOVECOT NOT INSTALLED: the comparison is skipped (deploy/install-deps.sh --bench installs it)" >&2
else
	DC_VERSION=$(dovecot --version)
	if [ "$(id -u)" = 0 ]; then
		# As root, the instance runs as the dovecot system user instead.
		DC_USER=dovecot
		getent passwd "$DC_USER" >/dev/null || DC_USER=nobody
		DC_AS=(setpriv --reuid="$DC_USER" --regid="$(id -g "$DC_USER")" --clear-groups)
	else
		DC_USER=$(id -un)
	fi
	DC_UID=$(id -u "$DC_USER")
	DC_GROUP=$(id -gn "$DC_USER")
	mkdir -p "$DC_DIR/mail/bench/new" "$DC_DIR/mail/bench/cur" "$DC_DIR/mail/bench/tmp"
	cp "$BENCH_TMP/key.pem" "$DC_DIR/key.pem"
	{
		passwd_lines bench
		if [ "$IDLE_AUTH" = 1 ] && [ "$SKIP_POP3" != 1 ]; then
			# shellcheck disable=SC2046  # one word a user
			passwd_lines $(seq "$IDLE" | sed 's/^/idle/')
		fi
	} >"$DC_DIR/passwd" || die "could not read kurier's password hashes from Redis"
	if [ "$FILL" = direct ]; then
		# Maildir names: TIME.M<seq>P<pid>.HOST, in order.
		stamp=$(date +%s)
		for f in "$MSG_DIR"/*.eml; do
			b=$(basename "$f" .eml)
			cp "$f" "$DC_DIR/mail/bench/new/$stamp.M${b}P$$.kurier-bench"
		done
	fi
	chown -R "$DC_USER:$DC_GROUP" "$DC_DIR" 2>/dev/null
	chmod 600 "$DC_DIR/key.pem" "$DC_DIR/passwd"
	if dovecot_start 1; then
		DC_OK=1
	fi
fi

start_kurierd() {
	"$KURIERD" -c "$CONF" --roles mailbox >>"$BENCH_TMP/kurierd.log" 2>&1 &
	KURIERD_PID=$!
	for _ in $(seq 200); do
		kill -0 "$KURIERD_PID" 2>/dev/null || break
		greeted "$KPORT" && return 0
		sleep 0.1
	done
	tail -5 "$BENCH_TMP/kurierd.log" >&2
	return 1
}
start_kurierd || die "kurierd did not start on 127.0.0.1:$KPORT"

echo "# kurier IMAP and POP3 side by side with Dovecot, $(date -u '+%Y-%m-%d %H:%M UTC')"
bench_machine
echo "# load average before: $LOAD_BEFORE"
echo "# redis: $("$REDIS_SERVER" --version | cut -d' ' -f1-3)"
echo "# dovecot: ${DC_VERSION:-not run}${DC_USER:+, as user $DC_USER}, passwords: kurier's yescrypt hashes ({CRYPT})"
echo "# N=$N messages ($MSG_BYTES bytes as LF files), filled by: $FILL, IDLE=$IDLE, IDLE_MANY=$IDLE_MANY, PIPELINE_DEPTH=$PIPELINE_DEPTH"
echo "# clients: $IMAPLOAD, $POPLOAD"
echo

# --- fill ----------------------------------------------------------------------

rc=0
servers=(kurier)
[ "$DC_OK" = 1 ] && servers+=(dovecot)
if [ "$FILL" = append ]; then
	append_run kurier "$KIPORT" || die "kurier: the INBOX could not be filled over IMAP"
	if [ "$DC_OK" = 1 ] && ! append_run dovecot "$DC_IPORT"; then
		echo "$BENCH_NAME: DOVECOT APPEND FAILED; the comparison is skipped" >&2
		tail -5 "$DC_DIR/dovecot.log" >&2
		dovecot_stop
		DC_OK=0
		servers=(kurier)
	fi
fi

# --- imap ----------------------------------------------------------------------

# same NAME - true when both servers gave figure NAME alike (or Dovecot
# none); else the disagreement on stderr.
same() {
	local k d
	k=$(fig "kurier_$1")
	d=$(fig "dovecot_$1")
	[ "$DC_OK" = 1 ] || return 0
	[ "$k" = "$d" ] && return 0
	echo "$BENCH_NAME: kurier and Dovecot disagree on $1: $k and $d" >&2
	return 1
}

if [ "$SKIP_IMAP" != 1 ]; then
	for s in "${servers[@]}"; do
		if [ "$s" = kurier ]; then port=$KIPORT pids=$KURIERD_PID,$REDIS_PID
		else port=$DC_IPORT pids=$DC_PID; fi
		IMAPLOAD_PASSWORD=$BENCH_PASSWORD timeout 600 "$IMAPLOAD" fetch -p "$port" -u bench -n 1 >/dev/null ||
			echo "$BENCH_NAME: $s: the IMAP warm-up session failed" >&2
		imap_run "$s" "$port" "$pids" || { [ "$s" = kurier ] && rc=1; }
	done
	[ "$(fig kurier_imap_messages)" = "$N" ] || { echo "$BENCH_NAME: kurier: not $N messages in INBOX" >&2; rc=1; }
	[ "$(fig kurier_imap_search_rare_hits)" = "$RARE_WANT" ] ||
		{ echo "$BENCH_NAME: kurier: SEARCH TEXT $RARE_WORD: not $RARE_WANT hits" >&2; rc=1; }
	[ "$(fig kurier_imap_search_all_hits)" = "$N" ] ||
		{ echo "$BENCH_NAME: kurier: SEARCH TEXT $ALL_WORD: not $N hits" >&2; rc=1; }
	for f in imap_messages imap_size_sum imap_search_rare_hits imap_search_all_hits; do
		same "$f" || rc=1
	done
	echo "# IMAP answers: messages $(fig kurier_imap_messages) / $(fig dovecot_imap_messages)," \
		"RFC822.SIZE sum $(fig kurier_imap_size_sum) / $(fig dovecot_imap_size_sum)," \
		"SEARCH hits $(fig kurier_imap_search_rare_hits) and $(fig kurier_imap_search_all_hits)" \
		"/ $(fig dovecot_imap_search_rare_hits) and $(fig dovecot_imap_search_all_hits) (kurier / Dovecot)"
fi

# --- retr ----------------------------------------------------------------------

if [ "$SKIP_POP3" != 1 ]; then
	for s in "${servers[@]}"; do
		if [ "$s" = kurier ]; then port=$KPORT pids=("$KURIERD_PID" "$REDIS_PID")
		else port=$DC_PORT pids=("$DC_PID"); fi
		# Warm-up: index built (Dovecot), caches and the TLS context warm.
		POPLOAD_PASSWORD=$BENCH_PASSWORD timeout 600 "$POPLOAD" retr -p "$port" -u bench -n 1 >/dev/null ||
			echo "$BENCH_NAME: $s: the POP3 warm-up session failed" >&2
		retr_run "$s" "$port" 1 "${pids[@]}" || { [ "$s" = kurier ] && rc=1; }
		if [ "$PIPELINE_DEPTH" -gt 1 ]; then
			retr_run "$s" "$port" "$PIPELINE_DEPTH" "${pids[@]}" || { [ "$s" = kurier ] && rc=1; }
		fi
	done
	same maildrop_bytes || rc=1
fi

# --- idle ----------------------------------------------------------------------

# Every idle run has a freshly started server, so memory freed by the
# runs before (the fetch sessions' buffers) cannot hide what the
# connections take; one connection first, so one-time costs (OpenSSL's
# tables, the first session) come before the baseline.
kurier_fresh() {
	stop_pid "$KURIERD_PID" 15
	KURIERD_PID=
	start_kurierd && greeted "$KPORT"
}
dovecot_fresh() {
	dovecot_stop
	dovecot_start "$1" && greeted "$DC_PORT"
}
# k_idle NAME COUNT CLIENT PORT [ARGS...] - an idle run of a fresh kurierd.
k_idle() {
	local name=$1 count=$2 client=$3 port=$4
	shift 4
	if kurier_fresh; then
		idle_run "$name" "$port" "$KURIERD_PID" "$count" "$client" "$@" || rc=1
	else
		echo "$BENCH_NAME: kurierd did not start again" >&2
		rc=1
	fi
}
# d_idle SERVICE_COUNT NAME COUNT CLIENT PORT [ARGS...] - the same, Dovecot.
d_idle() {
	local sc=$1 name=$2 count=$3 client=$4 port=$5
	shift 5
	dovecot_fresh "$sc" && idle_run "$name" "$port" "$DC_PID" "$count" "$client" "$@"
}
if [ "$SKIP_IMAP" != 1 ]; then
	k_idle kurier_imap_idle "$IDLE" "$IMAPLOAD" "$KIPORT"
	[ "$IDLE_AUTH" = 1 ] && k_idle kurier_imap_idle_login "$IDLE" "$IMAPLOAD" "$KIPORT" -u bench
	[ "$IDLE_MANY" -gt 0 ] && k_idle kurier_imap_many "$IDLE_MANY" "$IMAPLOAD" "$KIPORT"
	if [ "$DC_OK" = 1 ] && [ "$DOVECOT_SECURE" = 1 ]; then
		d_idle 1 dovecot_imap_idle "$IDLE" "$IMAPLOAD" "$DC_IPORT"
		[ "$IDLE_AUTH" = 1 ] && d_idle 1 dovecot_imap_idle_login "$IDLE" "$IMAPLOAD" "$DC_IPORT" -u bench
	fi
	if [ "$DC_OK" = 1 ] && [ "$DOVECOT_PERF" = 1 ]; then
		d_idle 0 dovecot_perf_imap_idle "$IDLE" "$IMAPLOAD" "$DC_IPORT"
		[ "$IDLE_MANY" -gt 0 ] && d_idle 0 dovecot_perf_imap_many "$IDLE_MANY" "$IMAPLOAD" "$DC_IPORT"
	fi
fi
if [ "$SKIP_POP3" != 1 ]; then
	k_idle kurier_idle "$IDLE" "$POPLOAD" "$KPORT"
	[ "$IDLE_AUTH" = 1 ] && k_idle kurier_idle_login "$IDLE" "$POPLOAD" "$KPORT" -u idle
	if [ "$DC_OK" = 1 ] && [ "$DOVECOT_SECURE" = 1 ]; then
		d_idle 1 dovecot_idle "$IDLE" "$POPLOAD" "$DC_PORT"
		[ "$IDLE_AUTH" = 1 ] && d_idle 1 dovecot_idle_login "$IDLE" "$POPLOAD" "$DC_PORT" -u idle
	fi
	if [ "$DC_OK" = 1 ] && [ "$DOVECOT_PERF" = 1 ]; then
		d_idle 0 dovecot_perf_idle "$IDLE" "$POPLOAD" "$DC_PORT"
	fi
fi
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if grep -qi 'error\|fatal\|panic' "$BENCH_TMP/kurierd.log"; then
	echo "$BENCH_NAME: kurierd logged errors:" >&2
	grep -i 'error\|fatal\|panic' "$BENCH_TMP/kurierd.log" | tail -5 >&2
fi
if [ "$DC_OK" = 1 ] && grep -q 'Error\|Fatal\|Panic' "$DC_DIR/dovecot.log"; then
	echo "$BENCH_NAME: Dovecot logged errors:" >&2
	grep 'Error\|Fatal\|Panic' "$DC_DIR/dovecot.log" | tail -5 >&2
fi

# --- the table -----------------------------------------------------------------

# row METRIC KURIER-FIG DOVECOT-FIG - one line of the table.
row() {
	local k d
	k=$(fig "$2")
	d=$(fig "$3")
	printf '| %s | %s | %s |\n' "$1" "${k:-—}" "${d:-—}"
}
kb() {
	local v
	v=$(fig "$1")
	[ -n "$v" ] && awk -v v="$v" 'BEGIN { printf "%.1f KB", v / 1024 }'
}
# kbrow METRIC KURIER-FIG DOVECOT-RSS-FIG [DOVECOT-PSS-FIG] - memory.
kbrow() {
	local k d
	k=$(kb "$2")
	d=$(kb "$3")
	[ -n "${4:-}" ] && [ -n "$(fig "$4")" ] && d="$d RSS, $(kb "$4") PSS"
	printf '| %s | %s | %s |\n' "$1" "${k:-—}" "${d:-—}"
}
# imap_cpu_row METRIC STEP - server CPU of IMAP step STEP per message, ms.
imap_cpu_row() {
	local k d
	k=$(fig "kurier_imap_$2_cpu_ms")
	d=$(fig "dovecot_imap_$2_cpu_ms")
	[ -n "$k" ] && k=$(awk -v v="$k" -v n="$N" 'BEGIN { printf "%.3f", v / n }')
	[ -n "$d" ] && d=$(awk -v v="$d" -v n="$N" 'BEGIN { printf "%.3f", v / n }')
	printf '| %s | %s | %s |\n' "$1" "${k:-—}" "${d:-—}"
}
echo
echo "| metric | kurier | Dovecot |"
echo "|---|---|---|"
if [ "$FILL" = append ]; then
	row "IMAP APPEND of $N, one at a time, s" kurier_append_s dovecot_append_s
	row "IMAP APPEND, msg/s" kurier_append_msg_per_s dovecot_append_msg_per_s
fi
if [ "$SKIP_IMAP" != 1 ]; then
	row "IMAP LOGIN + SELECT INBOX ($N), ms" kurier_imap_login_select_ms dovecot_imap_login_select_ms
	row "IMAP FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE), ms" kurier_imap_fetch_env_ms dovecot_imap_fetch_env_ms
	imap_cpu_row "the same, server CPU ms/msg" fetch_env
	row "IMAP FETCH n BODY.PEEK[] for each n, s" kurier_imap_fetch_each_s dovecot_imap_fetch_each_s
	row "the same, msg/s" kurier_imap_fetch_each_msg_per_s dovecot_imap_fetch_each_msg_per_s
	imap_cpu_row "the same, server CPU ms/msg" fetch_each
	row "IMAP FETCH 1:* BODY.PEEK[], s" kurier_imap_fetch_all_s dovecot_imap_fetch_all_s
	imap_cpu_row "the same, server CPU ms/msg" fetch_all
	row "IMAP SEARCH TEXT \"$RARE_WORD\" ($RARE_WANT hits), ms" kurier_imap_search_rare_ms dovecot_imap_search_rare_ms
	row "IMAP SEARCH TEXT \"$ALL_WORD\" ($N hits), ms" kurier_imap_search_all_ms dovecot_imap_search_all_ms
	kbrow "IMAP memory per idle connection after the greeting ($IDLE held)" \
		kurier_imap_idle_rss_per_conn dovecot_imap_idle_rss_per_conn dovecot_imap_idle_pss_per_conn
	[ "$DOVECOT_PERF" = 1 ] && kbrow "the same, Dovecot service_count = 0" \
		"" dovecot_perf_imap_idle_rss_per_conn dovecot_perf_imap_idle_pss_per_conn
	[ "$IDLE_AUTH" = 1 ] && kbrow "IMAP memory per session logged in, INBOX selected, in IDLE ($IDLE held)" \
		kurier_imap_idle_login_rss_per_conn dovecot_imap_idle_login_rss_per_conn dovecot_imap_idle_login_pss_per_conn
	[ "$IDLE_MANY" -gt 0 ] && kbrow "IMAP memory per idle connection after the greeting ($IDLE_MANY held; Dovecot service_count = 0)" \
		kurier_imap_many_rss_per_conn dovecot_perf_imap_many_rss_per_conn dovecot_perf_imap_many_pss_per_conn
fi
if [ "$SKIP_POP3" != 1 ]; then
	row "POP3 login (USER/PASS), ms" kurier_login_ms dovecot_login_ms
	row "POP3 LIST of $N, ms" kurier_list_ms dovecot_list_ms
	row "POP3 UIDL of $N, ms" kurier_uidl_ms dovecot_uidl_ms
	row "POP3 RETR of all $N, one at a time, s" kurier_retr_s dovecot_retr_s
	row "the same, msg/s" kurier_retr_msg_per_s dovecot_retr_msg_per_s
	row "the same, server CPU ms/msg" kurier_server_cpu_ms_per_msg dovecot_server_cpu_ms_per_msg
	if [ "$PIPELINE_DEPTH" -gt 1 ]; then
		row "POP3 RETR, $PIPELINE_DEPTH pipelined, s" kurier_p_retr_s dovecot_p_retr_s
		row "the same, msg/s" kurier_p_retr_msg_per_s dovecot_p_retr_msg_per_s
		row "the same, server CPU ms/msg" kurier_p_server_cpu_ms_per_msg dovecot_p_server_cpu_ms_per_msg
	fi
	kbrow "POP3 memory per idle connection after the greeting ($IDLE held)" \
		kurier_idle_rss_per_conn dovecot_idle_rss_per_conn dovecot_idle_pss_per_conn
	[ "$DOVECOT_PERF" = 1 ] && kbrow "the same, Dovecot service_count = 0" \
		"" dovecot_perf_idle_rss_per_conn dovecot_perf_idle_pss_per_conn
	[ "$IDLE_AUTH" = 1 ] && kbrow "POP3 memory per idle logged-in session ($IDLE held, empty maildrops)" \
		kurier_idle_login_rss_per_conn dovecot_idle_login_rss_per_conn dovecot_idle_login_pss_per_conn
fi
for f in kurier_imap_idle kurier_imap_idle_login kurier_imap_many kurier_idle kurier_idle_login; do
	k=$(fig "${f}_rss_per_conn")
	[ -n "$k" ] || continue
	verdict=met
	[ "$k" -le "$TARGET_IDLE_B" ] || verdict=MISSED
	echo "# kurierd memory per connection, $f: $k B, target at most $TARGET_IDLE_B B: $verdict"
done
exit "$rc"
