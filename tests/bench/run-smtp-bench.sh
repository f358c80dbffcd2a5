#!/usr/bin/env bash
# run-smtp-bench.sh - SMTP submission figures of kurierd, side by side
# with a Postfix instance on the same machine (`make bench`).
#
# Starts, each on a free 127.0.0.1 port with its data in one temp dir:
#   - a redis-server from deploy/redis.conf (AOF, appendfsync always);
#   - kurierd --roles relay: STARTTLS submission, AUTH required, self-signed
#     certificate, a bench user added with kurierctl;
#   - Postfix (`postfix -c DIR`, templates in tests/bench/postfix/): smtpd
#     on loopback, mail from 127.0.0.0/8 accepted without AUTH, STARTTLS
#     with a self-signed EC P-256 certificate, every accepted message
#     fsync'd to its queue before the 250 and then kept queued (deferred:
#     defer_transports = smtp; see POSTFIX_SINK).
# Then smtpload (tests/bench/smtpload.c) runs the same load against each:
#   postfix_plain     Postfix, no TLS
#   postfix_tls       Postfix, STARTTLS
#   postfix_tls_hold  Postfix, STARTTLS, mail put on hold at once: its
#                     accept path alone (smtpd, cleanup, the fsync), no
#                     queue manager work (POSTFIX_HOLD_RUN=0 skips it)
#   kurier_tls        kurierd, STARTTLS + AUTH PLAIN once per session
#   kurier_idle       a fresh kurierd holding IDLE idle TLS connections
# and it prints the machine, every figure as "name value unit", and
# Markdown tables of the comparison and the targets.  Everything it
# started is stopped by PID (Postfix with `postfix -c DIR stop`) and the
# temp dir removed; every wait is bounded.
#
#   tests/bench/run-smtp-bench.sh
#
# Environment:
#   SMTPLOAD      the load generator (build/release/tests/smtpload)
#   KURIERD       kurierd (bin/kurierd); KURIERCTL kurierctl (bin/kurierctl)
#   REDIS_SERVER  redis-server (redis-server); REDIS_CONF (deploy/redis.conf)
#   REDIS_ARGS    more redis-server options, split at spaces, e.g.
#                 "--auto-aof-rewrite-percentage 0" (none)
#   SESSIONS      concurrent sessions (50)
#   WINDOW        seconds of measured load per run (15), after WARMUP (3)
#   MSG_SIZE      message size in bytes (5120)
#   IDLE          idle TLS connections held by kurierd (10000); 0 skips
#   POSTFIX_IDLE  idle TLS connections held by Postfix (0: skipped; one
#                 smtpd process each, so a few hundred is plenty)
#   POSTFIX_SINK  what Postfix does with accepted mail in the first two
#                 runs: defer (default): qmgr moves it to the deferred
#                 queue (defer_transports = smtp), where it stays;
#                 discard: qmgr hands it to the discard transport, which
#                 deletes it; hold: it goes straight to the hold queue.
#                 Postfix fsyncs the queue file before its 250 in all.
#   POSTFIX_HOLD_RUN  0: skip the postfix_tls_hold run
#   SKIP_POSTFIX  1: kurier only
#   BENCH_USER_SET  options for `kurierctl user set bench` after the user
#                 is added, e.g. "--rate 100000000/min --rcpt-rate
#                 1000000000/d" (none); run-policy-bench.sh uses it
#   BENCH_SUPPRESS  entries put on shop.example's suppression list before
#                 the runs (0), so RCPT lookups hit a populated hash
#   NICE          run every server and smtpload with nice -n NICE (0);
#                 on a machine shared with other work, a negative value
#                 (root only) keeps that work from skewing the figures,
#                 the same for Postfix and kurier
#
# Exit status: 0 when the kurier runs completed without errors (targets
# met or not; the tables say), 1 otherwise.  A Postfix that cannot be
# installed or started is reported and skipped; it does not fail the run.

set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/bench/lib.sh

SMTPLOAD=${SMTPLOAD:-build/release/tests/smtpload}
KURIERD=${KURIERD:-bin/kurierd}
KURIERCTL=${KURIERCTL:-bin/kurierctl}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CONF=${REDIS_CONF:-deploy/redis.conf}
read -r -a REDIS_EXTRA <<<"${REDIS_ARGS:-}"
SESSIONS=${SESSIONS:-50}
WINDOW=${WINDOW:-15}
WARMUP=${WARMUP:-3}
MSG_SIZE=${MSG_SIZE:-5120}
IDLE=${IDLE:-10000}
POSTFIX_IDLE=${POSTFIX_IDLE:-0}
POSTFIX_SINK=${POSTFIX_SINK:-defer}
POSTFIX_HOLD_RUN=${POSTFIX_HOLD_RUN:-1}
SKIP_POSTFIX=${SKIP_POSTFIX:-0}
NICE=${NICE:-0}
PF_TEMPLATES=tests/bench/postfix

# Targets (from the issue).
TARGET_RATIO=6          # kurier accepted msg/s over Postfix's, TLS vs TLS
TARGET_CPU_MS=0.3       # kurierd CPU per accepted message
TARGET_P99_MS=20        # end of DATA to 250
TARGET_IDLE_B=65536     # kurierd RSS per idle TLS connection

BENCH_TMP=
REDIS_PID=
KURIERD_PID=
PF_CONF=
PF_UP=0
RESULTS=

# --- start and stop ---------------------------------------------------------

# The NICE priority, as a command prefix (nice execs, so $! stays the server's PID).
NICELY=()
[ "$NICE" != 0 ] && NICELY=(nice -n "$NICE")

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
	postfix_stop
	stop_pid "$KURIERD_PID" 15
	stop_pid "$REDIS_PID" 10
	[ -n "$BENCH_TMP" ] && rm -rf "$BENCH_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_kurierd() {
	${NICELY[@]+"${NICELY[@]}"} "$KURIERD" -c "$BENCH_TMP/kurier.conf" --roles relay >>"$BENCH_TMP/kurierd.log" 2>&1 &
	KURIERD_PID=$!
	wait_banner "$KPORT" "$KURIERD_PID" 20
}

# --- figures ----------------------------------------------------------------

# run_load NAME SMTPLOAD-ARGS... - one run; its figures go to stdout and RESULTS.
run_load() {
	local name=$1 rc
	shift
	echo "# $name: smtpload $*"
	timeout --kill-after=10 $((WARMUP + WINDOW + 300)) ${NICELY[@]+"${NICELY[@]}"} "$SMTPLOAD" -N "$name" \
		-c "$SESSIONS" -d "$WINDOW" -W "$WARMUP" -s "$MSG_SIZE" "$@" \
		2> >(sed "s/^/# $name: /" >&2) | tee -a "$RESULTS"
	rc=${PIPESTATUS[0]}
	[ "$rc" = 0 ] || echo "run-smtp-bench: $name: smtpload failed ($rc)" >&2
	return "$rc"
}

# --- Postfix ----------------------------------------------------------------

# postfix_setup PORT - write the instance's config and start it; 0 when up.
postfix_setup() {
	local port=$1 dir=$BENCH_TMP/pf procs data_r="" transport=smtp defer=""
	if [ "$SKIP_POSTFIX" = 1 ]; then
		echo "# postfix: skipped (SKIP_POSTFIX=1)"
		return 1
	fi
	if ! command -v postfix >/dev/null || [ ! -x /usr/lib/postfix/sbin/master ]; then
		echo "run-smtp-bench: POSTFIX NOT INSTALLED: the comparison is skipped (deploy/install-deps.sh --bench installs it)" >&2
		return 1
	fi
	if ! getent passwd postfix >/dev/null || ! getent group postdrop >/dev/null; then
		echo "run-smtp-bench: POSTFIX NOT USABLE: no postfix user or postdrop group; the comparison is skipped" >&2
		return 1
	fi
	case $POSTFIX_SINK in
	hold) data_r="check_client_access static:HOLD" ;;
	discard) transport=discard ;;
	defer) defer=smtp ;;
	*) die "POSTFIX_SINK must be hold, discard or defer" ;;
	esac
	procs=$((POSTFIX_IDLE + SESSIONS + 100))
	[ "$procs" -lt 200 ] && procs=200
	mkdir -p "$dir/conf" "$dir/queue" "$dir/data" "$dir/log" || return 1
	# Postfix's daemons run as user postfix and must reach the queue.
	chmod 755 "$BENCH_TMP" "$dir"
	chown postfix "$dir/data"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=postfix.bench -keyout "$dir/tls.key" -out "$dir/tls.crt" \
		>/dev/null 2>&1 || { echo "run-smtp-bench: openssl could not make Postfix's certificate" >&2; return 1; }
	sed -e "s#@DIR@#$dir#g" -e "s#@DATA_RESTRICTIONS@#$data_r#" \
		-e "s#@DEFAULT_TRANSPORT@#$transport#" -e "s#@DEFER_TRANSPORTS@#$defer#" \
		-e "s#@PROCS@#$procs#" -e "s#@TLS_LEVEL@#may#" \
		"$PF_TEMPLATES/main.cf.in" >"$dir/conf/main.cf" || return 1
	sed -e "s#@PORT@#$port#g" "$PF_TEMPLATES/master.cf.in" >"$dir/conf/master.cf" || return 1
	postfix_start "$dir" "$port" ${NICELY[@]+"${NICELY[@]}"}
}

# redis_stat NAME - a number from Redis's INFO stats (0 when absent).
redis_stat() {
	redis-cli -p "$RPORT" info stats 2>/dev/null | tr -d '\r' |
		awk -F: -v n="$1" '$1 == n { v = $2 } END { print v + 0 }'
}

# postfix_hold_all - from now on every accepted message goes to the hold queue.
postfix_hold_all() {
	local old alive p
	postconf -c "$PF_CONF" -e "smtpd_data_restrictions = check_client_access static:HOLD" \
		"defer_transports =" "default_transport = smtp" || return 1
	old=$(ps -o pid=,comm= --ppid "$(postfix_master_pid)" | awk '$2 == "smtpd" { print $1 }')
	timeout 30 postfix -c "$PF_CONF" reload >/dev/null 2>&1 || return 1
	# smtpd processes of the old configuration exit once idle; bounded wait.
	for _ in $(seq 100); do
		alive=0
		for p in $old; do
			kill -0 "$p" 2>/dev/null && alive=1
		done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	wait_banner "$PPORT" "" 20
}

postfix_queued() {
	local d=$BENCH_TMP/pf/queue
	find "$d/incoming" "$d/active" "$d/deferred" "$d/hold" -type f 2>/dev/null | wc -l
}

# --- set up -----------------------------------------------------------------

[ -x "$SMTPLOAD" ] || die "$SMTPLOAD not found: build it (see docs/bench-smtp.md)"
[ -x "$KURIERD" ] || die "$KURIERD not found: make bin/kurierd"
[ -x "$KURIERCTL" ] || die "$KURIERCTL not found: make bin/kurierctl"
[ -r "$REDIS_CONF" ] || die "$REDIS_CONF not found"
command -v "$REDIS_SERVER" >/dev/null || die "$REDIS_SERVER not found"
command -v redis-cli >/dev/null || die "redis-cli not found"

bench_tmp kurier-smtpbench
PF_DIR=$BENCH_TMP/pf
RESULTS=$BENCH_TMP/results
: >"$RESULTS"

# 10,000 connections need as many descriptors in kurierd and in smtpload.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)
if [ "$IDLE" -gt 0 ] && [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((IDLE + 200)) ]; then
	echo "run-smtp-bench: RLIMIT_NOFILE is $NOFILE (hard): kurierd cannot hold $IDLE connections; the idle figure will be short" >&2
fi

RPORT=$(free_port) || die "no free port"
bench_redis "$BENCH_TMP" "$RPORT" ${NICELY[@]+"${NICELY[@]}"} ||
	die "redis-server did not start on 127.0.0.1:$RPORT"

KPORT=$(free_port) || die "no free port"
bench_conf "$BENCH_TMP/kurier.conf" "$BENCH_TMP/data" "$RPORT"
cat >>"$BENCH_TMP/kurier.conf" <<CONF
[relay]
inbound =
submission = 127.0.0.1:$KPORT
submissions =
max_connections = $((IDLE + SESSIONS + 100))
max_connections_per_ip = $((IDLE + SESSIONS + 100))
command_timeout = 10m
CONF

BENCH_USER=bench
BENCH_PASS=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$BENCH_PASS" | timeout 30 "$KURIERCTL" -c "$BENCH_TMP/kurier.conf" \
	user add "$BENCH_USER" --domains shop.example >"$BENCH_TMP/kurierctl.out" 2>&1 ||
	{ cat "$BENCH_TMP/kurierctl.out" >&2; die "kurierctl user add failed"; }
if [ -n "${BENCH_USER_SET:-}" ]; then
	# shellcheck disable=SC2086 # options split at spaces on purpose
	timeout 30 "$KURIERCTL" -c "$BENCH_TMP/kurier.conf" user set "$BENCH_USER" $BENCH_USER_SET \
		>"$BENCH_TMP/kurierctl.out" 2>&1 ||
		{ cat "$BENCH_TMP/kurierctl.out" >&2; die "kurierctl user set $BENCH_USER_SET failed"; }
fi
if [ "${BENCH_SUPPRESS:-0}" -gt 0 ]; then
	# The documented entry format (docs/policy.md), written in one script.
	redis-cli -p "$RPORT" eval "for i = 1, tonumber(ARGV[1]) do redis.call('HSET', KEYS[1], 'gone' .. i .. '@example.net', 'manual 0 bench') end redis.call('SADD', KEYS[2], 'shop.example') return 1" \
		2 bench:sup:shop.example bench:sup:scopes "$BENCH_SUPPRESS" >/dev/null ||
		die "could not fill the suppression list"
fi
if ! start_kurierd; then
	tail -20 "$BENCH_TMP/kurierd.log" >&2
	die "kurierd did not start on 127.0.0.1:$KPORT"
fi

PPORT=$(free_port) || die "no free port"
postfix_setup "$PPORT" && PF_OK=1 || PF_OK=0

echo "# kurier SMTP benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
bench_machine
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# kurierd: $KURIERD (pid $KURIERD_PID), --roles relay, 127.0.0.1:$KPORT STARTTLS, AUTH PLAIN, log_level warn"
echo "# redis: $("$REDIS_SERVER" --version | cut -d' ' -f1-3), $REDIS_CONF (appendfsync always) ${REDIS_ARGS:-}, port $RPORT"
if [ "$PF_OK" = 1 ]; then
	echo "# postfix: $(postconf -c "$PF_CONF" -h mail_version) on 127.0.0.1:$PPORT, config $PF_CONF, sink $POSTFIX_SINK (then hold), no AUTH (permit_mynetworks)"
else
	echo "# postfix: NOT RUN (see above)"
fi
echo "# load: $SESSIONS sessions, $MSG_SIZE B messages, ${WARMUP}s warm-up + ${WINDOW}s window per run, nice $NICE"
echo

# --- runs -------------------------------------------------------------------

KURIER_RC=0
if [ "$PF_OK" = 1 ]; then
	mp=$(postfix_master_pid)
	run_load postfix_plain -p "$PPORT" -T plain -P "postfix=$mp"
	run_load postfix_tls -p "$PPORT" -T starttls -P "postfix=$mp"
	if [ "$POSTFIX_HOLD_RUN" = 1 ] && [ "$POSTFIX_SINK" != hold ]; then
		if postfix_hold_all; then
			run_load postfix_tls_hold -p "$PPORT" -T starttls -P "postfix=$mp"
		else
			echo "run-smtp-bench: could not switch Postfix to the hold queue; postfix_tls_hold skipped" >&2
		fi
	fi
	# Every 250 must be a queue file on disk (discard deletes them).
	if [ "$POSTFIX_SINK" != discard ]; then
		emit postfix_queued_files "$(postfix_queued)" count
		a1=$(fig postfix_plain_accepted_total)
		a2=$(fig postfix_tls_accepted_total)
		a3=$(fig postfix_tls_hold_accepted_total)
		emit postfix_accepted_total $((${a1:-0} + ${a2:-0} + ${a3:-0})) count
	fi
	if [ "$POSTFIX_IDLE" -gt 0 ]; then
		echo "# postfix_idle: smtpload -i $POSTFIX_IDLE"
		timeout 900 ${NICELY[@]+"${NICELY[@]}"} "$SMTPLOAD" -N postfix_idle -p "$PPORT" -T starttls -i "$POSTFIX_IDLE" \
			-P "postfix=$mp" 2> >(sed "s/^/# postfix_idle: /" >&2) | tee -a "$RESULTS"
	fi
	# Idle from here on, but stopped so it takes nothing from kurier's runs.
	postfix_stop
fi

# The password reaches smtpload through its environment, not argv.
export SMTPLOAD_PASSWORD=$BENCH_PASS
forks0=$(redis_stat total_forks)
run_load kurier_tls -p "$KPORT" -T starttls -u "$BENCH_USER" \
	-P "kurierd=$KURIERD_PID" -P "redis=$REDIS_PID" || KURIER_RC=1
unset SMTPLOAD_PASSWORD
# An AOF rewrite (a fork) during the run costs Redis CPU: say whether one ran.
forks=$(($(redis_stat total_forks) - forks0))
emit kurier_tls_redis_forks "$forks" count
# fork(2) stops Redis's main thread; on a VM, for tens of ms per GB.
[ "$forks" -gt 0 ] && emit kurier_tls_redis_latest_fork "$(awk -v u="$(redis_stat latest_fork_usec)" 'BEGIN { printf "%.1f", u / 1000 }')" ms
# Every 250 must be a message in the queue.
emit kurier_queued_messages "$(redis-cli -p "$RPORT" zcard bench:active 2>/dev/null | grep -E '^[0-9]+$' || echo 0)" count
kill -0 "$KURIERD_PID" 2>/dev/null || { echo "run-smtp-bench: kurierd died" >&2; KURIER_RC=1; }

if [ "$IDLE" -gt 0 ] && [ "$KURIER_RC" = 0 ]; then
	# A fresh kurierd: heap kept from the load run would hide the cost.
	stop_pid "$KURIERD_PID" 15
	KURIERD_PID=
	if start_kurierd; then
		echo "# kurier_idle: smtpload -i $IDLE (fresh kurierd, pid $KURIERD_PID)"
		timeout 900 ${NICELY[@]+"${NICELY[@]}"} "$SMTPLOAD" -N kurier_idle -p "$KPORT" -T starttls -i "$IDLE" \
			-P "kurierd=$KURIERD_PID" 2> >(sed "s/^/# kurier_idle: /" >&2) | tee -a "$RESULTS"
		[ "${PIPESTATUS[0]}" = 0 ] || { echo "run-smtp-bench: kurier_idle: smtpload failed" >&2; KURIER_RC=1; }
	else
		echo "run-smtp-bench: kurierd did not restart for the idle test" >&2
		KURIER_RC=1
	fi
fi
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- tables -----------------------------------------------------------------

# row LABEL PREFIX - one line of the comparison table.
row() {
	local p=$2 cpu
	[ -n "$(fig "${p}_rate")" ] || { echo "| $1 | not run | | | | | | |"; return; }
	cpu=$(fig "${p}_kurierd_cpu_per_msg")
	[ -n "$cpu" ] || cpu=$(fig "${p}_postfix_cpu_per_msg")
	printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(fig "${p}_rate")" \
		"$(fig "${p}_lat_p50")" "$(fig "${p}_lat_p99")" "$(fig "${p}_lat_max")" \
		"${cpu:--}" "$(fig "${p}_redis_cpu_per_msg" || true)" "$(fig "${p}_self_cpu_per_msg")"
}

# yesno EXPR - "yes" when awk finds EXPR true.
yesno() {
	awk "BEGIN { exit !($1) }" && echo yes || echo "**no**"
}

echo
echo "## Side by side ($SESSIONS sessions, $MSG_SIZE B messages, ${WINDOW}s window)"
echo
echo "| Run | Accepted msg/s | p50 ms | p99 ms | max ms | Server CPU ms/msg | Redis CPU ms/msg | smtpload CPU ms/msg |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
row "Postfix, plain, no AUTH" postfix_plain
row "Postfix, STARTTLS, no AUTH" postfix_tls
row "Postfix, STARTTLS, no AUTH, hold queue" postfix_tls_hold
row "kurier, STARTTLS + AUTH" kurier_tls
echo
echo "Server CPU: kurierd's /proc/PID/stat utime+stime; Postfix's summed over the master and"
echo "every descendant, live (utime+stime) and reaped (cutime+cstime), over the window."

k_rate=$(fig kurier_tls_rate)
p_rate=$(fig postfix_tls_rate)
h_rate=$(fig postfix_tls_hold_rate)
k_cpu=$(fig kurier_tls_kurierd_cpu_per_msg)
k_p99=$(fig kurier_tls_lat_p99)
k_idle=$(fig kurier_idle_kurierd_rss_per_conn)
k_held=$(fig kurier_idle_idle_connections)
echo
echo "## Targets"
echo
echo "| Target | Goal | Measured | Met |"
echo "|---|---|---|---|"
if [ -n "$k_rate" ] && [ -n "$p_rate" ]; then
	ratio=$(awk -v k="$k_rate" -v p="$p_rate" 'BEGIN { printf "%.2f", k / p }')
	emit kurier_vs_postfix_tls_ratio "$ratio" x >/dev/null
	echo "| Accept rate vs Postfix (TLS vs TLS, sink $POSTFIX_SINK) | >= ${TARGET_RATIO}x | $k_rate vs $p_rate msg/s = ${ratio}x | $(yesno "$ratio >= $TARGET_RATIO") |"
	if [ -n "$h_rate" ]; then
		hratio=$(awk -v k="$k_rate" -v p="$h_rate" 'BEGIN { printf "%.2f", k / p }')
		emit kurier_vs_postfix_tls_hold_ratio "$hratio" x >/dev/null
		echo "| (the same against Postfix's accept path alone, hold queue) | >= ${TARGET_RATIO}x | $k_rate vs $h_rate msg/s = ${hratio}x | $(yesno "$hratio >= $TARGET_RATIO") |"
	fi
else
	echo "| Accept rate vs Postfix (TLS vs TLS) | >= ${TARGET_RATIO}x | kurier ${k_rate:-failed} msg/s, Postfix ${p_rate:-not run} | **not measured** |"
fi
if [ -n "$k_cpu" ]; then
	echo "| kurierd CPU per accepted message | < $TARGET_CPU_MS ms | $k_cpu ms | $(yesno "$k_cpu < $TARGET_CPU_MS") |"
	echo "| p99 end of DATA to 250 | < $TARGET_P99_MS ms | $k_p99 ms | $(yesno "$k_p99 < $TARGET_P99_MS") |"
else
	echo "| kurierd CPU per accepted message | < $TARGET_CPU_MS ms | run failed | **no** |"
	echo "| p99 end of DATA to 250 | < $TARGET_P99_MS ms | run failed | **no** |"
fi
if [ -n "$k_idle" ]; then
	echo "| kurierd RSS per idle TLS connection | < $TARGET_IDLE_B B with $IDLE held | $k_idle B with $k_held held | $(yesno "$k_idle < $TARGET_IDLE_B && $k_held >= $IDLE") |"
else
	echo "| kurierd RSS per idle TLS connection | < $TARGET_IDLE_B B with $IDLE held | not measured | **no** |"
fi
if [ "$PF_OK" != 1 ]; then
	echo
	echo "Postfix was not run: the accept-rate target could not be checked."
fi

# idle_row LABEL PREFIX TREE - one line of the idle-connection table.
idle_row() {
	local held
	held=$(fig "${2}_idle_connections")
	[ -n "$held" ] || return 0
	printf '| %s | %s | %s | %s |\n' "$1" "$held" "$(fig "${2}_${3}_rss_per_conn")" \
		"$(fig "${2}_${3}_pss_per_conn")"
}

if [ -n "$(fig kurier_idle_idle_connections)$(fig postfix_idle_idle_connections)" ]; then
	echo
	echo "## Idle TLS connections (after STARTTLS and EHLO)"
	echo
	echo "| Server | Held | RSS per connection, B | PSS per connection, B |"
	echo "|---|---:|---:|---:|"
	idle_row kurierd kurier_idle kurierd
	idle_row "Postfix (all its processes)" postfix_idle postfix
fi

echo
echo "## All figures"
echo
echo "| Figure | Value | Unit |"
echo "|---|---:|---|"
awk '{ printf "| %s | %s | %s |\n", $1, $2, $3 }' "$RESULTS"

exit "$KURIER_RC"
