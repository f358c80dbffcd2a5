#!/usr/bin/env bash
# run-mailbox-bench.sh - Redis bytes per stored return (`make bench`, via
# run-bench.sh; MAILBOX_BENCH=0 skips it there).
#
# Starts a redis-server of its own from deploy/redis.conf on a free
# 127.0.0.1 port with its data in a temp dir, stores one message first
# (so the scripts and the first keys' fixed costs are loaded), reads
# used_memory, stores every file of the bounce corpus in one user's INBOX
# through the mailbox store (tests/tools/mbox_append), reads used_memory
# again, and prints the difference per message beside the average size
# of the raw messages as stored (CRLF line ends).  Then stops that
# redis-server by PID and removes the temp dir.  Every wait is bounded.
#
#   tests/bench/run-mailbox-bench.sh
#
# Environment:
#   MBOX_APPEND    the tool (build/release/tests/mbox_append)
#   BOUNCE_CORPUS  the directory of messages (../shared/testdata/bounces/bounce)
#   REDIS_SERVER   the redis-server binary (redis-server)
#   REDIS_CONF     the redis.conf to start from (deploy/redis.conf)
# Exit status 0, or 1 when something could not be started or stored.

set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/bench/lib.sh

MBOX_APPEND=${MBOX_APPEND:-build/release/tests/mbox_append}
BOUNCE_CORPUS=${BOUNCE_CORPUS:-../shared/testdata/bounces/bounce}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CONF=${REDIS_CONF:-deploy/redis.conf}

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
	stop_pid "$REDIS_PID" 10
	[ -n "$BENCH_TMP" ] && rm -rf "$BENCH_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

used_memory() {
	redis-cli -p "$PORT" info memory | tr -d '\r' | sed -n 's/^used_memory://p'
}

[ -x "$MBOX_APPEND" ] || die "$MBOX_APPEND not found: build it with make build/release/tests/mbox_append"
[ -d "$BOUNCE_CORPUS" ] || die "$BOUNCE_CORPUS not found: set BOUNCE_CORPUS"
command -v "$REDIS_SERVER" >/dev/null || die "$REDIS_SERVER not found"

bench_tmp kurier-mbench
PORT=$(free_port) || die "no free port"
bench_redis "$BENCH_TMP" "$PORT" || die "redis-server did not start on 127.0.0.1:$PORT"

CONF=$BENCH_TMP/kurier.conf
cat >"$CONF" <<CONF
[server]
hostname = kurier.bench
data_dir = $BENCH_TMP/data
log_level = warn

[redis]
address = 127.0.0.1:$PORT
prefix = bench:
CONF

mapfile -t files < <(find "$BOUNCE_CORPUS" -type f | sort)
n=${#files[@]}
[ "$n" -gt 0 ] || die "no files in $BOUNCE_CORPUS"

# Warm up: scripts loaded, counters and the user's first keys made.
timeout 60 "$MBOX_APPEND" -q -c "$CONF" -u warmup "${files[0]}" || die "warm-up append failed"
timeout 60 "$MBOX_APPEND" -q -c "$CONF" -u shop "${files[0]}" || die "warm-up append failed"
before=$(used_memory)
timeout 600 "$MBOX_APPEND" -q -c "$CONF" -u shop "${files[@]}" || die "append failed"
after=$(used_memory)
# The size of what was stored (mbox_append stores bare LF as CRLF), from
# the folder's counters, less the warm-up message.
mid=$(redis-cli -p "$PORT" hget bench:mbx:u:shop INBOX)
total=$(redis-cli -p "$PORT" hget "bench:mbx:b:$mid" bytes)
first=$(redis-cli -p "$PORT" hget "bench:mbx:m:$mid:1" size)
count=$(redis-cli -p "$PORT" hget "bench:mbx:b:$mid" exists)
[ "$count" = $((n + 1)) ] || die "stored $count messages, want $((n + 1))"
stored=$((total - first))

cpu=$(cpu_model)
echo "# kurier mailbox store memory, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr); $("$REDIS_SERVER" --version | cut -d' ' -f1-3)"
echo "# corpus: $BOUNCE_CORPUS ($n messages)"
awk -v n="$n" -v b="$before" -v a="$after" -v s="$stored" 'BEGIN {
	per = (a - b) / n
	printf "mailbox: %d returns stored, raw average %.0f bytes, Redis used_memory +%.0f bytes per stored return (%.0f bytes over the raw message, %.2fx)\n",
	    n, s / n, per, per - s / n, per / (s / n)
}'
