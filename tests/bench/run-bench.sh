#!/usr/bin/env bash
# run-bench.sh - queue throughput and memory figures (`make bench`).
#
# Starts a redis-server of its own from deploy/redis.conf (AOF on,
# appendfsync always) on a free 127.0.0.1 port with its data in a temp
# dir, writes a kurier config for it, runs qbench, prints the machine and
# the figures, then stops that redis-server by PID and removes the temp
# dir.  Every wait is bounded.
#
#   tests/bench/run-bench.sh [QBENCH-OPTIONS...]
#
# Paths are relative to the repository root, which the script changes
# to first.  Environment:
#   QBENCH         the qbench binary (build/release/tests/qbench)
#   REDIS_SERVER   the redis-server binary (redis-server)
#   REDIS_CONF     the redis.conf to start from (deploy/redis.conf)
#   REDIS_ARGS     more redis-server options, split at spaces, e.g.
#                  "--auto-aof-rewrite-percentage 0" (none)
#
# Options are passed to qbench (-n, -s, -P, -w, -b, -m, -t).  Then
# tests/bench/run-smtp-bench.sh runs (SMTP_BENCH=0 skips it; its own
# environment is described there), then run-deliver-bench.sh
# (DELIVER_BENCH=0 skips it), run-deliver-onedest.sh (ONEDEST_BENCH=0),
# run-policy-bench.sh (POLICY_BENCH=0), run-mailbox-bench.sh
# (MAILBOX_BENCH=0), run-bounce-bench.sh (BOUNCE_BENCH=0),
# run-inbound-bench.sh (INBOUND_BENCH=0) and run-mailclient-bench.sh
# (MAILCLIENT_BENCH=0).
# Exit status is qbench's, else the SMTP
# benchmark's; 1 when Redis cannot be started.

set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/bench/lib.sh

QBENCH=${QBENCH:-build/release/tests/qbench}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CONF=${REDIS_CONF:-deploy/redis.conf}
read -r -a REDIS_EXTRA <<<"${REDIS_ARGS:-}"

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
	# Bounded: 10 s for the final AOF fsync, then SIGKILL.
	stop_pid "$REDIS_PID" 10
	[ -n "$BENCH_TMP" ] && rm -rf "$BENCH_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$QBENCH" ] || die "$QBENCH not found: build it with make build/release/tests/qbench"
[ -r "$REDIS_CONF" ] || die "$REDIS_CONF not found: run from the repository root"
command -v "$REDIS_SERVER" >/dev/null || die "$REDIS_SERVER not found"
command -v redis-cli >/dev/null || die "redis-cli not found"

bench_tmp kurier-bench
PORT=$(free_port) || die "no free port"
bench_redis "$BENCH_TMP" "$PORT" || die "redis-server did not start on 127.0.0.1:$PORT"

CONF=$BENCH_TMP/qbench.conf
bench_conf "$CONF" "$BENCH_TMP/data" "$PORT"
cat >>"$CONF" <<CONF
[queue]
lease = 10m

[deliver]
# High enough that the per-destination cap never holds a claim back.
concurrency = 100000
per_destination = 100000
CONF

echo "# kurier queue benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
bench_machine
# Other work on the machine skews every figure: say how busy it was.
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# redis: $("$REDIS_SERVER" --version)"
echo "# redis config: $REDIS_CONF (appendonly yes, appendfsync always) ${REDIS_ARGS:-}, port $PORT, dir $BENCH_TMP"
echo "# qbench: $QBENCH $*"
echo

# qbench bounds each phase itself (-t, 300 s); timeout(1) is the backstop.
timeout --kill-after=10 1800 "$QBENCH" -c "$CONF" "$@"
rc=$?
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$rc" = 124 ] && echo "run-bench: qbench timed out" >&2
if [ "$rc" != 0 ]; then
	echo "run-bench: qbench failed ($rc); redis log:" >&2
	tail -20 "$BENCH_TMP/redis.log" >&2
fi

# Then the SMTP figures, kurierd side by side with Postfix
# (docs/bench-smtp.md); that script starts and stops servers of its own,
# so this Redis goes first.  SMTP_BENCH=0 skips it.
if [ "${SMTP_BENCH:-1}" != 0 ]; then
	cleanup
	REDIS_PID=
	BENCH_TMP=
	echo
	tests/bench/run-smtp-bench.sh
	src=$?
	[ "$rc" = 0 ] && rc=$src
fi
# Last, mail end to end from submission to a sink, with and without DKIM,
# side by side with Postfix and Postfix + OpenDKIM (docs/bench-deliver.md).
# DELIVER_BENCH=0 skips it.
if [ "${DELIVER_BENCH:-1}" != 0 ]; then
	cleanup
	REDIS_PID=
	BENCH_TMP=
	echo
	tests/bench/run-deliver-bench.sh
	drc=$?
	[ "$rc" = 0 ] && rc=$drc
fi
# One destination, the load and sink Postfix's own smtp-source and
# smtp-sink, kurier against Postfix (docs/bench-deliver.md, "One
# destination").  ONEDEST_BENCH=0 skips it.
if [ "${ONEDEST_BENCH:-1}" != 0 ]; then
	echo
	tests/bench/run-deliver-onedest.sh
	orc=$?
	[ "$rc" = 0 ] && rc=$orc
fi
# What the policy checks add to a submission: this tree against the last
# revision without them (docs/policy.md).  POLICY_BENCH=0 skips it.
if [ "${POLICY_BENCH:-1}" != 0 ]; then
	echo
	tests/bench/run-policy-bench.sh
	prc=$?
	[ "$rc" = 0 ] && rc=$prc
fi
# Redis bytes per stored return in the mailbox store (README,
# Performance).  MAILBOX_BENCH=0 skips it.
if [ "${MAILBOX_BENCH:-1}" != 0 ]; then
	echo
	tests/bench/run-mailbox-bench.sh
	mrc=$?
	[ "$rc" = 0 ] && rc=$mrc
fi
# Returns parsed and classified per second (mailbox/bounce, the real
# corpus, one core).  BOUNCE_BENCH=0 skips it.
if [ "${BOUNCE_BENCH:-1}" != 0 ]; then
	echo
	tests/bench/run-bounce-bench.sh
	brc=$?
	[ "$rc" = 0 ] && rc=$brc
fi
# Returns accepted per second end to end at the inbound MX, side by side
# with Postfix delivering them into a Maildir.  INBOUND_BENCH=0 skips it.
if [ "${INBOUND_BENCH:-1}" != 0 ]; then
	echo
	tests/bench/run-inbound-bench.sh
	irc=$?
	[ "$rc" = 0 ] && rc=$irc
fi
# POP3 over TLS, RETR of all and memory per idle connection, side by
# side with Dovecot.  MAILCLIENT_BENCH=0 skips it.
if [ "${MAILCLIENT_BENCH:-1}" != 0 ]; then
	echo
	tests/bench/run-mailclient-bench.sh
	mcrc=$?
	[ "$rc" = 0 ] && rc=$mcrc
fi
exit "$rc"
