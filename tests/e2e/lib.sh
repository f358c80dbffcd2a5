# lib.sh - shared helpers for kurier's end-to-end tests (bash).
#
# A test script sources this file, calls e2e_init, runs checks with
# check_eq/check_match/check_exit, and ends with e2e_done, which prints
# "N passed, N failed" and exits non-zero on any failure.  Every server a
# test starts is recorded and stopped by PID on exit; all data lives in
# a temp dir that is removed afterwards.  Servers bind 127.0.0.1 only.
#
# Environment (set by tests/run-checks.sh):
#   KURIER_BIN        directory holding kurierd and kurierctl
#   KURIER_TOOLS      directory holding qload
#   KURIER_REDIS_CONF deploy/redis.conf

set -u
E2E_PASS=0
E2E_FAIL=0
E2E_PIDS=()
E2E_NAME=$(basename "$0" .sh)

e2e_cleanup() {
	local pid
	for pid in "${E2E_PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${E2E_PIDS[@]}"; do
		# Bounded: 5 s, then SIGKILL.
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null
	done
	[ -n "${E2E_TMP:-}" ] && rm -rf "$E2E_TMP"
}

# e2e_require VAR... - exit 1 unless every environment variable named is set.
e2e_require() {
	local v
	for v in "$@"; do
		if [ -z "${!v:-}" ]; then
			echo "# $v is not set (see tests/e2e/lib.sh)"
			exit 1
		fi
	done
}

e2e_init() {
	E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/kurier-e2e.XXXXXX")
	trap e2e_cleanup EXIT
}

# free_port - print a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# port_pair - two different free ports on one line, for a kurierd's two
# listeners: read -r P SP < <(port_pair).
port_pair() {
	local a b
	a=$(free_port)
	b=$(free_port)
	while [ "$b" = "$a" ]; do b=$(free_port); done
	echo "$a $b"
}

# track PID - stop this process when the test ends.
track() {
	E2E_PIDS+=("$1")
}

# wait_for SECONDS CMD... - retry CMD every 0.1 s until it succeeds.
wait_for() {
	local secs=$1 i
	shift
	for i in $(seq $((secs * 10))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# start_redis DIR PORT - a redis-server from deploy/redis.conf (AOF,
# fsync always) with its data in DIR; sets REDIS_PID.
start_redis() {
	local dir=$1 port=$2
	mkdir -p "$dir"
	redis-server "$KURIER_REDIS_CONF" --port "$port" --dir "$dir" \
		--bind 127.0.0.1 --save '' >"$dir/redis.log" 2>&1 &
	REDIS_PID=$!
	track "$REDIS_PID"
	wait_for 10 redis-cli -p "$port" ping || {
		echo "# redis-server did not start on $port:"
		tail -5 "$dir/redis.log"
		return 1
	}
}

# write_conf FILE REDIS_PORT [EXTRA_INI] - a kurier config for the test.
write_conf() {
	local file=$1 port=$2
	cat >"$file" <<CONF
[server]
hostname = kurier.test
data_dir = $E2E_TMP/data
log_level = info

[redis]
address = 127.0.0.1:$port
prefix = e2e:
reconnect_max = 500ms
CONF
	[ $# -ge 3 ] && printf '%s\n' "$3" >>"$file"
	return 0
}

# ctl_conf [EXTRA_INI] - the setup of a kurierctl test: CTL, PORT (free,
# for start_redis later) and CONF ($E2E_TMP/kurier.conf by write_conf).
# shellcheck disable=SC2120  # EXTRA_INI is optional
ctl_conf() {
	CTL=$KURIER_BIN/kurierctl
	PORT=$(free_port)
	CONF=$E2E_TMP/kurier.conf
	write_conf "$CONF" "$PORT" "$@"
}

# ctl ARGS... - kurierctl with CONF (a script may define its own).
ctl() {
	"$CTL" -c "$CONF" "$@"
}

# keys - every key under write_conf's prefix, sorted, on one line.
keys() {
	redis-cli -p "$PORT" --scan --pattern 'e2e:*' | sort | tr '\n' ' '
}

# conf_head FILE DATA_DIR REDIS_PORT PREFIX - start a kurierd config in
# FILE: [server] (kurier.test, log_level info, shutdown_grace 2s) and
# [redis] (127.0.0.1:REDIS_PORT, PREFIX:, reconnect_max 200ms), ending in
# an empty line; the test appends its other sections.
conf_head() {
	cat >"$1" <<CONF
[server]
hostname = kurier.test
data_dir = $2
log_level = info
shutdown_grace = 2s

[redis]
address = 127.0.0.1:$3
prefix = $4:
reconnect_max = 200ms

CONF
}

pass() {
	E2E_PASS=$((E2E_PASS + 1))
	echo "ok - $E2E_NAME: $1"
}

fail() {
	E2E_FAIL=$((E2E_FAIL + 1))
	echo "not ok - $E2E_NAME: $1"
	shift
	[ $# -gt 0 ] && printf '#   %s\n' "$@"
	return 0
}

# check_eq NAME GOT WANT
check_eq() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got:  $2" "want: $3"; fi
}

# check_match NAME TEXT REGEX (extended regex, grep -E)
check_match() {
	if printf '%s' "$2" | grep -Eq -- "$3"; then pass "$1"; else fail "$1" "text: $(printf '%s' "$2" | head -c 600)" "does not match: $3"; fi
}

# check_exit NAME WANT_STATUS CMD... - run CMD, compare its exit status;
# its output is left in E2E_OUT.
check_exit() {
	local name=$1 want=$2 got
	shift 2
	E2E_OUT=$("$@" 2>&1)
	got=$?
	if [ "$got" = "$want" ]; then pass "$name"; else fail "$name" "exit $got, want $want" "output: $(printf '%s' "$E2E_OUT" | head -c 600)"; fi
}

# e2e_abort NAME - a failed check the rest cannot go on without: count
# it, print the totals and exit 1.
e2e_abort() {
	fail "$1"
	e2e_done
	exit 1
}

e2e_done() {
	echo "$E2E_NAME: $E2E_PASS passed, $E2E_FAIL failed"
	[ "$E2E_FAIL" -eq 0 ]
}
