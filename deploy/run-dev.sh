#!/usr/bin/env bash
# run-dev.sh - what `make run` does after building: start a redis-server
# of its own for kurier, on 127.0.0.1:2679 (deploy/kurier.dev.conf) with
# its data in ./var/redis, then kurierd on deploy/kurier.dev.conf in the
# foreground.  Ctrl-C stops kurierd, then the redis-server started here.
#
# It never uses a Redis it did not start: a system redis-server (6379)
# is left alone, a redis-server already running from ./var (an earlier
# `make run` still up) is used, and anything else answering on 2679 is
# an error.
set -euo pipefail
cd "$(dirname "$0")/.."

conf=deploy/kurier.dev.conf
port=2679
pidfile=$PWD/var/redis/redis.pid
redis_pid=""

# ours - whether the Redis answering on $port is the one ./var started.
ours() {
	local pid running
	[ -r "$pidfile" ] || return 1
	pid=$(cat "$pidfile")
	running=$(redis-cli -p "$port" info server 2>/dev/null | tr -d '\r' |
		sed -n 's/^process_id://p')
	[ -n "$pid" ] && [ "$pid" = "$running" ]
}

mkdir -p var/redis
if redis-cli -p "$port" ping >/dev/null 2>&1; then
	if ! ours; then
		echo "run: something else answers on 127.0.0.1:$port; stop it or change [redis] address in $conf and port in $0" >&2
		exit 1
	fi
	echo "run: using the redis-server from var/redis on 127.0.0.1:$port" >&2
else
	# Its own session, so the terminal's Ctrl-C reaches kurierd first.
	setsid redis-server deploy/redis.conf --port "$port" --dir "$PWD/var/redis" \
		--pidfile "$pidfile" --logfile "$PWD/var/redis/redis.log" &
	redis_pid=$!
	for _ in $(seq 100); do
		redis-cli -p "$port" ping >/dev/null 2>&1 && break
		kill -0 "$redis_pid" 2>/dev/null || {
			echo "run: redis-server failed to start; see var/redis/redis.log" >&2
			exit 1
		}
		sleep 0.1
	done
	echo "run: redis-server pid $redis_pid on 127.0.0.1:$port (data in var/redis)" >&2
fi

stop_redis() {
	if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
		# SIGTERM: redis-server flushes its AOF and exits.
		kill -TERM "$redis_pid"
		for _ in $(seq 100); do
			kill -0 "$redis_pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
}
trap stop_redis EXIT

bin/kurierd -c "$conf" &
kpid=$!
trap 'kill -TERM $kpid 2>/dev/null' INT TERM
# wait returns early when a trapped signal arrives; wait again for the exit.
while :; do
	status=0
	wait "$kpid" || status=$?
	kill -0 "$kpid" 2>/dev/null || break
done
exit "$status"
