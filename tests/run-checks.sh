#!/usr/bin/env bash
# run-checks.sh - every test of `make check`, after the build:
#   0. tests/layering.sh: the include rules of docs/design.md
#   1. the Check suites (tests/check.c, one runner), one source folder at
#      a time, release and ASan+UBSan builds: core and relay are
#      hermetic, queue and policy use a real redis-server, deliver and
#      policy start their own dnsmasq
#   3. end-to-end scripts (tests/e2e/*.sh) with the ASan+UBSan binaries
#   4. each fuzz target for a short run over its seeds
# A redis-server for 2 is started here on a free loopback port in a temp
# dir and stopped by PID.  Ends with one "N passed, N failed" line; exits
# non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZ_CHECK_SECONDS=${FUZZ_CHECK_SECONDS:-10}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0
failed=0
failures=()
times=()
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kurier-check.XXXXXX")
redis_pid=""

cleanup() {
	if [ -n "$redis_pid" ]; then
		kill "$redis_pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$redis_pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$redis_pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

result() {
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures+=("$1")
	fi
}

# A log with a sanitizer report is a failure even if the exit status was 0.
sanitizer_clean() {
	! grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$1"
}

run() {
	local name=$1 rc t0
	shift
	echo "== $name"
	t0=$SECONDS
	"$@" >"$tmp/out" 2>&1
	rc=$?
	times+=("$((SECONDS - t0)) s  $name")
	if [ $rc -eq 0 ] && ! sanitizer_clean "$tmp/out"; then
		echo "$name: sanitizer report below"
		rc=1
	fi
	if [ $rc -eq 0 ]; then
		# Passing: the summary lines only.
		grep -E '^[0-9]+%: Checks|passed, [0-9]+ failed|^ok - |^Done [0-9]+ runs' "$tmp/out"
	else
		tail -n 300 "$tmp/out"
	fi
	result "$name" $rc
}

run "layering" tests/layering.sh
run "layering rules" tests/layering_test.sh

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
redis-server deploy/redis.conf --port "$port" --dir "$tmp" --bind 127.0.0.1 --save '' \
	>"$tmp/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$port" ping >/dev/null 2>&1 || { echo "redis-server did not start:"; cat "$tmp/redis.log"; exit 1; }
export KURIER_TEST_REDIS=127.0.0.1:$port

for group in core relay queue policy deliver mailbox; do
	run "$group (release)" build/release/tests/check_kurier "$group"
	run "$group (asan+ubsan)" build/asan/tests/check_kurier "$group"
done

export KURIER_BIN=$PWD/build/asan/bin
export KURIER_TOOLS=$PWD/build/release/tests
export KURIER_REDIS_CONF=$PWD/deploy/redis.conf
for t in tests/e2e/*.sh; do
	case "$(basename "$t")" in lib.sh | *_lib.sh) continue ;; esac
	run "e2e $(basename "$t" .sh)" bash "$t"
done

for f in build/fuzz/fuzz_*; do
	name=$(basename "$f")
	mkdir -p "$tmp/corpus-$name"
	run "fuzz $name (${FUZZ_CHECK_SECONDS}s)" "$f" -max_total_time="$FUZZ_CHECK_SECONDS" \
		-print_final_stats=0 "$tmp/corpus-$name" "tests/fuzz/seeds/$name"
done

echo
echo "wall-clock seconds per stage, longest first:"
printf '%s\n' "${times[@]}" | sort -rn | head -12 | sed 's/^/  /'
if [ $failed -gt 0 ]; then
	printf 'FAILED: %s\n' "${failures[@]}"
fi
echo "checks: $passed passed, $failed failed"
[ $failed -eq 0 ]
