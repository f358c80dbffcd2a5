# lib.sh - shared helpers for kurier's benchmark scripts (bash).
# shellcheck shell=bash
#
# A tests/bench/run-*.sh script sources this file after changing to the
# repository root.  Messages name the script (BENCH_NAME, its file name
# without .sh).  Every wait is bounded; servers bind 127.0.0.1 only and
# are stopped by PID.  Variables the helpers read, where a script uses
# them: BENCH_TMP (the temp dir), RESULTS (the figures so far),
# REDIS_SERVER, REDIS_CONF, REDIS_EXTRA (more redis-server options),
# PF_DIR, PF_CONF and PF_UP (the Postfix instance).

BENCH_NAME=$(basename "$0" .sh)
BENCH_TMP=
REDIS_PID=

die() {
	echo "$BENCH_NAME: $*" >&2
	exit 1
}

# free_port - a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

now_ms() {
	date +%s%3N
}

# bench_tmp NAME - make the temp dir BENCH_TMP ($TMPDIR/NAME.XXXXXX).
bench_tmp() {
	# shellcheck disable=SC2034  # the scripts use it
	BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || die "mktemp failed"
}

# stop_pid PID [SECONDS] - SIGTERM, wait up to SECONDS (10), then SIGKILL.
stop_pid() {
	local pid=$1 secs=${2:-10}
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null
	for _ in $(seq $((secs * 10))); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# wait_port PORT - until something listens there (10 s at most).
wait_port() {
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# smtp_banner PORT - true when something on 127.0.0.1:PORT says 220.
smtp_banner() {
	python3 - "$1" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.settimeout(2)
    ok = s.recv(512).startswith(b"220")
    s.sendall(b"QUIT\r\n")
    s.close()
    sys.exit(0 if ok else 1)
except OSError:
    sys.exit(1)
PY
}

# wait_banner PORT PID SECONDS - wait for the 220 while PID lives.
wait_banner() {
	local port=$1 pid=$2 secs=$3
	for _ in $(seq $((secs * 5))); do
		smtp_banner "$port" && return 0
		[ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && return 1
		sleep 0.2
	done
	return 1
}

# bench_redis DIR PORT [PREFIX...] - a redis-server from REDIS_CONF (AOF,
# appendfsync always) with REDIS_EXTRA, its data and redis.log in DIR,
# run under the command PREFIX (which must exec, so $! stays the
# server's PID); sets REDIS_PID.  1, with the log's tail on stderr, when
# it does not answer PING within 10 s.
bench_redis() {
	local dir=$1 port=$2
	shift 2
	mkdir -p "$dir" || return 1
	"$@" "$REDIS_SERVER" "$REDIS_CONF" --port "$port" --dir "$dir" --bind 127.0.0.1 \
		--save '' ${REDIS_EXTRA[@]+"${REDIS_EXTRA[@]}"} >"$dir/redis.log" 2>&1 &
	REDIS_PID=$!
	for _ in $(seq 100); do
		redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && return 0
		kill -0 "$REDIS_PID" 2>/dev/null || break
		sleep 0.1
	done
	tail -5 "$dir/redis.log" >&2
	return 1
}

postfix_master_pid() {
	[ -n "${PF_DIR:-}" ] && tr -d ' ' <"$PF_DIR/queue/pid/master.pid" 2>/dev/null
}

# postfix_stop - stop the Postfix instance in PF_DIR (PF_CONF), if up.
postfix_stop() {
	local mp
	[ "${PF_UP:-0}" = 1 ] || return 0
	mp=$(postfix_master_pid)
	timeout 30 postfix -c "$PF_CONF" stop >/dev/null 2>&1
	# Bounded: the master exits once its children did; then SIGKILL.
	for _ in $(seq 100); do
		if [ -z "$mp" ] || ! kill -0 "$mp" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	if [ -n "$mp" ] && kill -0 "$mp" 2>/dev/null; then
		echo "$BENCH_NAME: Postfix master $mp did not stop; killing it and its children" >&2
		# shellcheck disable=SC2046
		kill -9 $(ps -o pid= --ppid "$mp") "$mp" 2>/dev/null
	fi
	PF_UP=0
}

# postfix_start DIR PORT [PREFIX...] - check and start the Postfix instance
# configured in DIR/conf (PF_CONF), under the command PREFIX, and wait up
# to 20 s for its 220 on 127.0.0.1:PORT.  0 when it answers (PF_UP=1);
# else why on stderr, and 1 with the instance stopped.
postfix_start() {
	local dir=$1 port=$2
	shift 2
	PF_CONF=$dir/conf
	if ! timeout 30 postfix -c "$PF_CONF" check >"$dir/check.out" 2>&1; then
		echo "$BENCH_NAME: POSTFIX CHECK FAILED; the comparison is skipped:" >&2
		cat "$dir/check.out" "$dir/log/maillog" 2>/dev/null | tail -5 >&2
		return 1
	fi
	if ! timeout 30 "$@" postfix -c "$PF_CONF" start >"$dir/start.out" 2>&1; then
		echo "$BENCH_NAME: POSTFIX DID NOT START; the comparison is skipped:" >&2
		cat "$dir/start.out" "$dir/log/maillog" 2>/dev/null | tail -5 >&2
		return 1
	fi
	PF_UP=1
	if ! wait_banner "$port" "" 20; then
		echo "$BENCH_NAME: POSTFIX DOES NOT ANSWER on 127.0.0.1:$port; the comparison is skipped:" >&2
		tail -5 "$dir/log/maillog" >&2
		postfix_stop
		return 1
	fi
	return 0
}

# bench_conf FILE DATA_DIR REDIS_PORT - start a kurier config in FILE:
# [server] (kurier.bench, log_level warn) and [redis] (127.0.0.1:REDIS_PORT,
# prefix bench:, reconnect_max 500ms), ending in an empty line; the
# script appends its other sections.
bench_conf() {
	cat >"$1" <<CONF
[server]
hostname = kurier.bench
data_dir = $2
log_level = warn

[redis]
address = 127.0.0.1:$3
prefix = bench:
reconnect_max = 500ms

CONF
}

# cpu_model - the CPU's model name ("" when unknown).
cpu_model() {
	sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1
}

# bench_machine - the "# machine:" line: CPUs, model, RAM, kernel.
bench_machine() {
	local cpu mem
	cpu=$(cpu_model)
	mem=$(awk '/^MemTotal:/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)
	echo "# machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $mem, $(uname -sr)"
}

# fig NAME - a figure's value from RESULTS so far ("" when absent).
fig() {
	awk -v n="$1" '$1 == n { v = $2 } END { if (v != "") print v }' "$RESULTS"
}

# emit NAME VALUE UNIT - a figure of the script's own, to stdout and RESULTS.
emit() {
	echo "$1 $2 $3" | tee -a "$RESULTS"
}
