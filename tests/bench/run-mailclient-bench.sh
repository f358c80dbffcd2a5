#!/usr/bin/env bash
# run-mailclient-bench.sh - what kurier's POP3 server costs a mail
# client, side by side with Dovecot on the same machine (`make bench`,
# via run-bench.sh; MAILCLIENT_BENCH=0 skips it there).
#
# Starts, each on a free 127.0.0.1 port with its data in one temp dir:
#   - a redis-server from deploy/redis.conf (AOF, appendfsync always);
#   - kurierd --roles mailbox, pop3s (implicit TLS) only;
#   - Dovecot (`dovecot -F -c CONF`, template tests/bench/dovecot/):
#     pop3s only, maildir, a passwd-file with the same users, every
#     process as one unprivileged user (ours; the dovecot system user
#     when we are root, through setpriv), base_dir, state and log in
#     the temp dir.
# Both use one self-signed EC P-256 certificate made for the run, and
# both hold the same N messages for the user "bench": the bounce corpus
# (BOUNCE_CORPUS) in rotation, each with an "X-Bench-Seq: I" header line
# first so no two are alike; kurier's stored by mbox_append, Dovecot's
# written as files into the maildir's new/.
#
# Figures, with popload (tests/bench/popload.c: C, OpenSSL, blocking
# I/O, 256 KB reads) as the client, the same runs for both servers:
#   retr      one session over implicit TLS: USER/PASS, LIST, UIDL and
#             RETR of all N, one command at a time, as typical clients;
#             then again with PIPELINE_DEPTH commands in flight (RFC
#             2449 PIPELINING, both servers offer it).  A first session
#             RETRieving one message goes before, so Dovecot's index is
#             built and kurier's Redis is warm.  Server CPU: kurierd plus
#             Redis; every Dovecot process (children that exited
#             included).
#   idle      IDLE connections held through the TLS handshake and the
#             greeting, not logged in; then (IDLE_AUTH=1) IDLE sessions
#             logged in, one user each (a maildrop takes one session):
#             idle1..idleIDLE, each with an empty maildrop.  Memory per
#             connection = (after - before) / IDLE, of kurierd's VmRSS
#             (one process; Redis's used_memory is given apart) and of
#             the sum of every Dovecot process's VmRSS and of their PSS
#             (shared pages counted once).  Dovecot runs with its default
#             login process per connection (service_count = 1), and for
#             the greeted connections also (DOVECOT_PERF=1) with
#             service_count = 0, its "high-performance" login mode.
# Then it prints the machine, the figures as "name value unit" and a
# Markdown table "metric | kurier | Dovecot".  Everything it started is
# stopped by PID and the temp dir removed; every wait is bounded.
#
#   tests/bench/run-mailclient-bench.sh
#
# Environment:
#   POPLOAD        the client (build/release/tests/popload)
#   MBOX_APPEND    (build/release/tests/mbox_append)
#   KURIERD, KURIERCTL  (bin/kurierd, bin/kurierctl)
#   REDIS_SERVER, REDIS_CONF  (redis-server, deploy/redis.conf)
#   BOUNCE_CORPUS  (../shared/testdata/bounces/bounce)
#   N              messages in the maildrop (10000)
#   PIPELINE_DEPTH RETR commands in flight in the pipelined run (16; 0
#                  skips it)
#   IDLE           idle connections (1000); more than about 20,000 needs
#                  a higher `ulimit -Hn` than most machines give
#   IDLE_AUTH      1: also hold IDLE logged-in sessions (default 1 up to
#                  IDLE_AUTH_MAX, 2000, else 0: kurierctl user add takes
#                  about 50 ms a user, for the yescrypt hash)
#   DOVECOT_SECURE 1: measure Dovecot's default login mode, a process
#                  per connection (default 1 up to 2000 connections,
#                  else 0: a process each would not fit in memory)
#   DOVECOT_PERF   1: also measure greeted connections with service_count
#                  = 0 (1)
#   SKIP_DOVECOT   1: kurier only
#
# Dovecot's passwords are stored in the clear (scheme PLAIN); kurier's
# are yescrypt hashes, checked at each login (about 40 ms of CPU), which
# the login figure includes.
#
# Exit status: 0 when the kurier runs completed, 1 otherwise.  A Dovecot
# that is not installed or does not start is reported and skipped.

set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/bench/lib.sh

POPLOAD=${POPLOAD:-build/release/tests/popload}
MBOX_APPEND=${MBOX_APPEND:-build/release/tests/mbox_append}
KURIERD=${KURIERD:-bin/kurierd}
KURIERCTL=${KURIERCTL:-bin/kurierctl}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CONF=${REDIS_CONF:-deploy/redis.conf}
BOUNCE_CORPUS=${BOUNCE_CORPUS:-../shared/testdata/bounces/bounce}
N=${N:-10000}
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
DOVECOT_PERF=${DOVECOT_PERF:-1}
SKIP_DOVECOT=${SKIP_DOVECOT:-0}
DC_TEMPLATE=tests/bench/dovecot/dovecot.conf.in

BENCH_PASSWORD=bench-pop3-password-1
IDLE_PASSWORD=bench-idle-password-2
TARGET_IDLE_B=65536      # kurierd memory per idle connection (the issue)
SETTLE_S=2               # after the last connection is up, before measuring
HOLD_S=900               # popload idle holds at most this long
USERADD_STREAMS=2        # kurierctl user add in parallel (2 cores)

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

redis_used() {
	redis-cli -p "$RPORT" info memory | tr -d '\r' | sed -n 's/^used_memory://p'
}

# greeted PORT - true when a TLS connection to PORT gets a +OK greeting.
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
# start the instance; 0 once it accepts TLS on DC_PORT within 20 s.
dovecot_start() {
	local conf=$DC_DIR/dovecot.conf procs=$((IDLE + 100))
	sed -e "s|@DIR@|$DC_DIR|g; s|@USER@|$DC_USER|g; s|@GROUP@|$DC_GROUP|g" \
		-e "s|@UID@|$DC_UID|g; s|@PORT@|$DC_PORT|g; s|@CERT@|$BENCH_TMP/cert.pem|g" \
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

# retr_run SERVER PORT DEPTH CPU-PIDS... - one timed retr session; the
# figures go to RESULTS as SERVER_NAME (with _p when DEPTH > 1).
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
	emit "${server}${tag}_server_cpu_ms_per_msg" \
		"$(awk -v a="$c0" -v b="$c1" -v n="$N" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }')" ms
}

# idle_run NAME PORT MEM-PID [USER-PREFIX] - hold IDLE connections (logged
# in as USER-PREFIX1.. when given) and emit NAME_rss_per_conn and, for
# a tree of more than one process, NAME_pss_per_conn (bytes).
idle_run() {
	local name=$1 port=$2 pid=$3 prefix=${4:-} fifo=$BENCH_TMP/idle.fifo
	local out=$BENCH_TMP/idle.out m0 m1 r0 r1 held=0 args=()
	[ -n "$prefix" ] && args=(-u "$prefix")
	rm -f "$fifo" && mkfifo "$fifo" || return 1
	m0=$(tree_mem "$pid")
	r0=$(redis_used)
	POPLOAD_PASSWORD=$IDLE_PASSWORD "$POPLOAD" idle -p "$port" -c "$IDLE" -k "$HOLD_S" \
		-t $((HOLD_S + 60)) ${args[@]+"${args[@]}"} <"$fifo" >"$out" 2>&1 &
	IDLE_PID=$!
	exec 8>"$fifo"
	# Bounded: the set-up of every connection (a login is a yescrypt check).
	for _ in $(seq $((HOLD_S * 10))); do
		grep -q '^held ' "$out" && { held=1; break; }
		kill -0 "$IDLE_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [ "$held" = 1 ]; then
		sleep "$SETTLE_S"
		m1=$(tree_mem "$pid")
		r1=$(redis_used)
	fi
	exec 8>&-
	stop_pid "$IDLE_PID" 30
	IDLE_PID=
	if [ "$held" != 1 ]; then
		echo "$BENCH_NAME: $name: popload idle failed:" >&2
		tail -3 "$out" >&2
		return 1
	fi
	sed -n "s/^setup_s /${name}_setup_s /p" "$out" | tee -a "$RESULTS"
	read -r rss0 pss0 n0 <<<"$m0"
	read -r rss1 pss1 n1 <<<"$m1"
	emit "${name}_procs" "$n0->$n1" processes
	emit "${name}_rss_per_conn" $(((rss1 - rss0) * 1024 / IDLE)) B
	[ "$n1" -gt 1 ] && emit "${name}_pss_per_conn" $(((pss1 - pss0) * 1024 / IDLE)) B
	if [ "$pid" = "$KURIERD_PID" ] && [ -n "$prefix" ]; then
		emit "${name}_redis_per_conn" $(((r1 - r0) / IDLE)) B
	fi
	return 0
}

# --- set-up --------------------------------------------------------------------

for tool in "$POPLOAD" "$MBOX_APPEND"; do
	[ -x "$tool" ] || die "$tool not found: build it with make $tool"
done
if [ ! -x "$KURIERD" ] || [ ! -x "$KURIERCTL" ]; then
	die "$KURIERD or $KURIERCTL not found: run make all"
fi
[ -d "$BOUNCE_CORPUS" ] || die "$BOUNCE_CORPUS not found: set BOUNCE_CORPUS"
[ -r "$DC_TEMPLATE" ] || die "$DC_TEMPLATE not found"
command -v "$REDIS_SERVER" >/dev/null || die "$REDIS_SERVER not found"

# Every connection is a descriptor in popload and in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((IDLE + 100)) ] ||
	die "IDLE=$IDLE needs ulimit -n above $((IDLE + 100)); the hard limit is $(ulimit -Hn)"

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
KPORT=$(free_port)
DC_PORT=$(free_port)
while [ "$DC_PORT" = "$KPORT" ]; do DC_PORT=$(free_port); done

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
max_connections = 1000000
max_connections_per_ip = 1000000
max_messages = 10000000
pop3_timeout = 1h
CONF

ctl() {
	"$KURIERCTL" -c "$CONF" "$@"
}

# The messages: the corpus in rotation, LF line ends (Dovecot's maildir
# form; mbox_append stores CRLF), one header line first that differs.
MSG_DIR=$BENCH_TMP/msgs
python3 - "$BOUNCE_CORPUS" "$MSG_DIR" "$N" <<'PY' || die "could not write the messages"
import os, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = sorted(os.path.join(src, f) for f in os.listdir(src) if f.endswith(".eml"))
if not files:
    sys.exit("no .eml files in " + src)
os.makedirs(dst)
bodies = [open(f, "rb").read().replace(b"\r\n", b"\n") for f in files]
for i in range(n):
    with open(os.path.join(dst, "%06d.eml" % (i + 1)), "wb") as out:
        out.write(b"X-Bench-Seq: %d\n" % (i + 1) + bodies[i % len(bodies)])
PY
MSG_BYTES=$(du -sb "$MSG_DIR" | cut -f1)

printf '%s\n' "$BENCH_PASSWORD" | ctl user add bench --domains bench.example >/dev/null ||
	die "kurierctl user add bench failed"
t0=$(now_ms)
find "$MSG_DIR" -name '*.eml' | sort | timeout 1200 xargs -n 1000 "$MBOX_APPEND" -q -c "$CONF" -u bench ||
	die "mbox_append failed"
echo "# kurier: $N messages stored in $(( $(now_ms) - t0 )) ms"

if [ "$IDLE_AUTH" = 1 ]; then
	export IDLE_PASSWORD KURIERCTL CONF
	t0=$(now_ms)
	# shellcheck disable=SC2016  # expanded by the inner shell
	seq "$IDLE" | timeout 1800 xargs -P "$USERADD_STREAMS" -n 50 sh -c '
		for i; do
			printf "%s\n" "$IDLE_PASSWORD" | "$KURIERCTL" -c "$CONF" user add "idle$i" --domains "idle$i.example" >/dev/null || exit 1
		done' sh || die "kurierctl user add idle* failed"
	echo "# kurier: $IDLE idle users added in $(( $(now_ms) - t0 )) ms"
fi

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
		echo "bench:{PLAIN}$BENCH_PASSWORD::::::"
		[ "$IDLE_AUTH" = 1 ] && seq "$IDLE" | sed "s/.*/idle&:{PLAIN}$IDLE_PASSWORD::::::/"
	} >"$DC_DIR/passwd"
	# Maildir names: TIME.M<seq>P<pid>.HOST, in order.
	stamp=$(date +%s)
	for f in "$MSG_DIR"/*.eml; do
		b=$(basename "$f" .eml)
		mv "$f" "$DC_DIR/mail/bench/new/$stamp.M${b}P$$.kurier-bench"
	done
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

echo "# kurier POP3 side by side with Dovecot, $(date -u '+%Y-%m-%d %H:%M UTC')"
bench_machine
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# redis: $("$REDIS_SERVER" --version | cut -d' ' -f1-3)"
echo "# dovecot: ${DC_VERSION:-not run}${DC_USER:+, as user $DC_USER}"
echo "# N=$N messages ($MSG_BYTES bytes as LF files), IDLE=$IDLE, PIPELINE_DEPTH=$PIPELINE_DEPTH, client: $POPLOAD"
echo

# --- retr ----------------------------------------------------------------------

rc=0
servers=(kurier)
[ "$DC_OK" = 1 ] && servers+=(dovecot)
for s in "${servers[@]}"; do
	if [ "$s" = kurier ]; then port=$KPORT pids=("$KURIERD_PID" "$REDIS_PID")
	else port=$DC_PORT pids=("$DC_PID"); fi
	# Warm-up: index built (Dovecot), caches and the TLS context warm.
	POPLOAD_PASSWORD=$BENCH_PASSWORD timeout 600 "$POPLOAD" retr -p "$port" -u bench -n 1 >/dev/null ||
		echo "$BENCH_NAME: $s: the warm-up session failed" >&2
	retr_run "$s" "$port" 1 "${pids[@]}" || { [ "$s" = kurier ] && rc=1; }
	if [ "$PIPELINE_DEPTH" -gt 1 ]; then
		retr_run "$s" "$port" "$PIPELINE_DEPTH" "${pids[@]}" || { [ "$s" = kurier ] && rc=1; }
	fi
done

# --- idle ----------------------------------------------------------------------

# Every idle run has a freshly started server, so memory freed by the
# runs before (the retr sessions' buffers) cannot hide what the
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
if kurier_fresh; then
	idle_run kurier_idle "$KPORT" "$KURIERD_PID" || rc=1
else
	echo "$BENCH_NAME: kurierd did not start again" >&2
	rc=1
fi
if [ "$IDLE_AUTH" = 1 ] && kurier_fresh; then
	idle_run kurier_idle_login "$KPORT" "$KURIERD_PID" idle || rc=1
fi
if [ "$DC_OK" = 1 ] && [ "$DOVECOT_SECURE" = 1 ]; then
	dovecot_fresh 1 && idle_run dovecot_idle "$DC_PORT" "$DC_PID"
	[ "$IDLE_AUTH" = 1 ] && dovecot_fresh 1 && idle_run dovecot_idle_login "$DC_PORT" "$DC_PID" idle
fi
if [ "$DC_OK" = 1 ] && [ "$DOVECOT_PERF" = 1 ]; then
	dovecot_fresh 0 && idle_run dovecot_perf_idle "$DC_PORT" "$DC_PID"
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

# row METRIC KURIER-FIG DOVECOT-FIG [FORMAT] - one line of the table.
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
echo
echo "| metric | kurier | Dovecot |"
echo "|---|---|---|"
row "login (USER/PASS), ms" kurier_login_ms dovecot_login_ms
row "LIST of $N, ms" kurier_list_ms dovecot_list_ms
row "UIDL of $N, ms" kurier_uidl_ms dovecot_uidl_ms
row "RETR of all $N, one at a time, s" kurier_retr_s dovecot_retr_s
row "RETR, one at a time, msg/s" kurier_retr_msg_per_s dovecot_retr_msg_per_s
row "RETR, one at a time, server CPU ms/msg" kurier_server_cpu_ms_per_msg dovecot_server_cpu_ms_per_msg
if [ "$PIPELINE_DEPTH" -gt 1 ]; then
	row "RETR, $PIPELINE_DEPTH pipelined, s" kurier_p_retr_s dovecot_p_retr_s
	row "RETR, $PIPELINE_DEPTH pipelined, msg/s" kurier_p_retr_msg_per_s dovecot_p_retr_msg_per_s
	row "RETR, $PIPELINE_DEPTH pipelined, server CPU ms/msg" kurier_p_server_cpu_ms_per_msg dovecot_p_server_cpu_ms_per_msg
fi
printf '| memory per idle connection after the greeting (%s held), RSS | %s | %s |\n' \
	"$IDLE" "$(kb kurier_idle_rss_per_conn)" "$(kb dovecot_idle_rss_per_conn)"
printf '| the same, PSS (Dovecot: shared pages counted once) | — | %s |\n' "$(kb dovecot_idle_pss_per_conn)"
if [ "$DOVECOT_PERF" = 1 ]; then
	printf '| the same, Dovecot service_count = 0, RSS / PSS | — | %s / %s |\n' \
		"$(kb dovecot_perf_idle_rss_per_conn)" "$(kb dovecot_perf_idle_pss_per_conn)"
fi
if [ "$IDLE_AUTH" = 1 ]; then
	printf '| memory per idle logged-in session (%s held), RSS | %s | %s |\n' \
		"$IDLE" "$(kb kurier_idle_login_rss_per_conn)" "$(kb dovecot_idle_login_rss_per_conn)"
	printf '| the same, PSS | — | %s |\n' "$(kb dovecot_idle_login_pss_per_conn)"
	printf '| Redis memory per logged-in session | %s | — |\n' "$(kb kurier_idle_login_redis_per_conn)"
fi
k=$(fig kurier_idle_rss_per_conn)
if [ -n "$k" ]; then
	if [ "$k" -le "$TARGET_IDLE_B" ]; then
		echo "# kurierd memory per idle connection: $k B, target at most $TARGET_IDLE_B B: met"
	else
		echo "# kurierd memory per idle connection: $k B, target at most $TARGET_IDLE_B B: MISSED"
	fi
fi
exit "$rc"
