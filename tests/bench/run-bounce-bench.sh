#!/usr/bin/env bash
# run-bounce-bench.sh - returns parsed and classified per second
# (mailbox/bounce, `make bench`): every file of the real-world corpus in
# ../shared/testdata/bounces (bounce/ and not-bounce/) read into memory,
# then bounce_parse + bounce_result_free over all of them ROUNDS times
# by tests/bench/bounceparse on one core (taskset -c 0 when there is
# one), three runs; prints the machine, the load and each run's figure.
#
#   tests/bench/run-bounce-bench.sh [ROUNDS]       (default 20)
#
# Environment: BOUNCEPARSE, the binary (build/release/tests/bounceparse).
# Exit 1 when the binary or the corpus is missing.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/bench/lib.sh

BOUNCEPARSE=${BOUNCEPARSE:-build/release/tests/bounceparse}
CORPUS=../shared/testdata/bounces
ROUNDS=${1:-20}

[ -x "$BOUNCEPARSE" ] || die "$BOUNCEPARSE not found: make build/release/tests/bounceparse"
[ -d "$CORPUS/bounce" ] || die "$CORPUS/bounce not found (the corpus beside the repository)"

pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
cpu=$(cpu_model)
echo "# kurier bounce parser benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr); ${pin[*]:-not pinned}"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# corpus: $(ls "$CORPUS"/bounce "$CORPUS"/not-bounce | grep -c '\.eml$') files," \
	"$(cat "$CORPUS"/bounce/* "$CORPUS"/not-bounce/* | wc -c) bytes; $ROUNDS rounds a run"
rc=0
for run in 1 2 3; do
	"${pin[@]}" "$BOUNCEPARSE" -n "$ROUNDS" "$CORPUS"/bounce/* "$CORPUS"/not-bounce/* || rc=1
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$rc"
