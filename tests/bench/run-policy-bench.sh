#!/usr/bin/env bash
# run-policy-bench.sh - what the policy checks cost a submission
# (`make bench`; POLICY_BENCH=0 skips it).
#
# The same submission load (tests/bench/run-smtp-bench.sh: SESSIONS STARTTLS
# sessions with AUTH, 5 KB messages, one recipient each, kurier only) runs
# against two builds of kurierd on this machine:
#   base    kurierd from POLICY_BASE, the last revision before the policy
#           module (no rates, no suppression lookups, no header checks);
#           built from `git archive` into a temp dir
#   policy  this tree's kurierd, with the bench user given rate limits on
#           messages and recipients (never reached: every check runs, none
#           refuses) and BENCH_SUPPRESS entries on the sending domain's
#           suppression list, so each RCPT looks up a populated list and
#           each end of DATA counts in Redis
# ROUNDS rounds alternate the two, so drift in the machine's load hits
# both alike; the figures are the medians over the rounds.  It prints
# "name value unit" lines and a Markdown table: the time one session takes
# per message, whole transaction (SESSIONS / throughput; with the default
# single session, the submission's own latency: the budget is that policy
# adds < 0.2 ms), the end-of-DATA-to-250 latency, throughput, and kurierd
# CPU per message.
#
# Environment: POLICY_BASE (5eb9a87), ROUNDS (3), WINDOW (10), WARMUP (3),
# SESSIONS (1), BENCH_SUPPRESS (100000), KEEP_BASE=DIR (reuse a base
# build there).  Exit status 0 when every run completed.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/bench/lib.sh

POLICY_BASE=${POLICY_BASE:-5eb9a87}
ROUNDS=${ROUNDS:-3}
export WINDOW=${WINDOW:-10} WARMUP=${WARMUP:-3} SESSIONS=${SESSIONS:-1}
BENCH_SUPPRESS=${BENCH_SUPPRESS:-100000}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kurier-pbench.XXXXXX") || die "no temp dir"
trap 'rm -rf "$tmp"' EXIT

base=${KEEP_BASE:-$tmp/base}
if [ ! -x "$base/bin/kurierd" ]; then
	git rev-parse --verify -q "$POLICY_BASE^{commit}" >/dev/null ||
		die "POLICY_BASE $POLICY_BASE is not a commit of this repository"
	mkdir -p "$base"
	echo "# building kurierd at $POLICY_BASE in $base"
	git archive "$POLICY_BASE" | tar -x -C "$base" || die "git archive failed"
	timeout 900 make -C "$base" -j"$(nproc)" bin/kurierd bin/kurierctl >"$tmp/base-build.log" 2>&1 ||
		{ tail -30 "$tmp/base-build.log" >&2; die "building $POLICY_BASE failed"; }
fi
[ -x bin/kurierd ] && [ -x build/release/tests/smtpload ] ||
	die "build first: make all build/release/tests/smtpload"

# fig FILE NAME - one figure of a run-smtp-bench.sh output.
fig() {
	awk -v n="$2" '$1 == n { print $2; exit }' "$1"
}

# median V... - the median of the numbers given.
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

rc=0
declare -A vals
for round in $(seq "$ROUNDS"); do
	for variant in base policy; do
		out="$tmp/$variant.$round"
		echo "# round $round: $variant"
		if [ "$variant" = base ]; then
			KURIERD="$base/bin/kurierd" KURIERCTL="$base/bin/kurierctl" SKIP_POSTFIX=1 IDLE=0 \
				timeout 600 tests/bench/run-smtp-bench.sh >"$out" 2>"$out.err"
		else
			BENCH_USER_SET="--rate 100000000/min,1000000000/h --rcpt-rate 1000000000/d" \
				BENCH_SUPPRESS="$BENCH_SUPPRESS" SKIP_POSTFIX=1 IDLE=0 \
				timeout 600 tests/bench/run-smtp-bench.sh >"$out" 2>"$out.err"
		fi
		r=$?
		if [ $r -ne 0 ] || [ -z "$(fig "$out" kurier_tls_lat_p50)" ]; then
			echo "run-policy-bench: the $variant run of round $round failed ($r):" >&2
			tail -20 "$out.err" >&2
			rc=1
			continue
		fi
		for f in lat_p50 lat_p99 rate kurierd_cpu_per_msg errors; do
			vals[$variant.$f]+="$(fig "$out" "kurier_tls_$f") "
		done
	done
done

echo "# kurier policy cost, $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; base $POLICY_BASE vs $(git rev-parse --short HEAD 2>/dev/null || echo this tree)"
echo "# load: $SESSIONS sessions, ${WARMUP}s warm-up + ${WINDOW}s window, $ROUNDS rounds; $BENCH_SUPPRESS suppressed addresses; medians"
for variant in base policy; do
	for f in lat_p50 lat_p99 rate kurierd_cpu_per_msg; do
		# shellcheck disable=SC2086 # one value per word
		m=$(median ${vals[$variant.$f]:-})
		[ -n "$m" ] && echo "policy_bench_${variant}_$f $m"
	done
done
# shellcheck disable=SC2086
b50=$(median ${vals[base.lat_p50]:-})
# shellcheck disable=SC2086
p50=$(median ${vals[policy.lat_p50]:-})
# shellcheck disable=SC2086
brate=$(median ${vals[base.rate]:-})
# shellcheck disable=SC2086
prate=$(median ${vals[policy.rate]:-})
if [ -n "$b50" ] && [ -n "$p50" ] && [ -n "$brate" ] && [ -n "$prate" ]; then
	bt=$(awk -v s="$SESSIONS" -v r="$brate" 'BEGIN { printf "%.3f", s * 1000 / r }')
	pt=$(awk -v s="$SESSIONS" -v r="$prate" 'BEGIN { printf "%.3f", s * 1000 / r }')
	d=$(awk -v a="$pt" -v b="$bt" 'BEGIN { printf "%.3f", a - b }')
	echo "policy_bench_base_msg_time $bt ms"
	echo "policy_bench_policy_msg_time $pt ms"
	echo "policy_bench_added_per_msg $d ms"
	echo
	echo "| figure | without policy ($POLICY_BASE) | with policy | target |"
	echo "|---|---|---|---|"
	echo "| time per message and session, whole transaction | $bt ms | $pt ms | added $d ms, < 0.2 ms: $(awk -v d="$d" 'BEGIN { print (d < 0.2) ? "yes" : "**no**" }') |"
	for f in lat_p50 lat_p99 rate kurierd_cpu_per_msg; do
		# shellcheck disable=SC2086
		echo "| $f | $(median ${vals[base.$f]:-}) | $(median ${vals[policy.$f]:-}) | |"
	done
fi
exit $rc
