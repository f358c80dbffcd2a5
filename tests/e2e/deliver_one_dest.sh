#!/usr/bin/env bash
# deliver_one_dest.sh - every message to one destination, as a site that
# sends through one smarthost: the claim loop refills a slot of the
# destination as soon as one of its jobs is done, instead of waiting for
# the idle poll.
#
# N messages to one recipient domain are queued (qload) before kurierd
# starts, so the whole load is due at once and far more than the
# destination's per_destination cap; route.* sends everything to one
# sinkmx.  Checked by behaviour, not by speed:
#   - the sink accepts every message, each once, and the queue ends empty
#     (no lease, nothing in flight);
#   - kurierd's claim counters (event=claims at stop): claims made after a
#     slot of the capped destination was given back ("refill") handed out
#     jobs, and no job at all waited for the idle poll ("poll_jobs=0").
#     Before the refill, each slot was refilled by the poll only, which
#     would show as poll_jobs near N.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/deliver_lib.sh"
e2e_init
trap 'keep_artifacts; e2e_cleanup' EXIT

N=${ONE_DEST_MESSAGES:-400}
CAP=5
SINKMX=${SINKMX:-$KURIER_TOOLS/sinkmx}
QLOAD=$KURIER_TOOLS/qload

find_sink_python || { fail "a python3 with aiosmtpd"; e2e_done; exit 1; }
[ -x "$SINKMX" ] && [ -x "$QLOAD" ] ||
	{ fail "sinkmx and qload in \$KURIER_TOOLS ($KURIER_TOOLS)"; e2e_done; exit 1; }
rport=$(free_port2)
start_redis "$E2E_TMP/redis" "$rport" || { fail "redis-server starts"; e2e_done; exit 1; }

stats=$E2E_TMP/sink.stats
"$SINKMX" -p 0 -S "$stats" -i 100 -q >"$E2E_TMP/sink.port" 2>"$E2E_TMP/sink.err" &
track $!
wait_for 10 grep -q '^sinkmx_port ' "$E2E_TMP/sink.port" ||
	{ fail "sinkmx starts" "$(cat "$E2E_TMP/sink.err")"; e2e_done; exit 1; }
sport=$(awk '/^sinkmx_port / { print $2 }' "$E2E_TMP/sink.port")

port=$(free_port2)
sp=$(free_port2)
while [ "$sp" = "$port" ]; do sp=$(free_port2); done
conf=$E2E_TMP/one.conf
mkdir -p "$E2E_TMP/data"
cat >"$conf" <<CONF
[server]
hostname = kurier.test
data_dir = $E2E_TMP/data
[redis]
address = 127.0.0.1:$rport
prefix = one:
[relay]
inbound =
submission = 127.0.0.1:$port
submissions = 127.0.0.1:$sp
[deliver]
route.* = 127.0.0.1:$sport
per_destination = $CAP
spf_preflight = off
retry = 1s
CONF

"$QLOAD" -c "$conf" -n "$N" -r user@one.test -s 2048 -p 20 -d 120 -q 2>"$E2E_TMP/qload.err"
check_eq "$N messages queued for one destination" "$?" 0

start_kurierd kurierd "$conf" || { fail "kurierd starts"; e2e_done; exit 1; }

sink_count() {
	[ -s "$stats" ] && awk '$1 == "messages" { print $2 }' "$stats"
}
sink_has_all() {
	[ "$(sink_count)" -ge "$N" ] 2>/dev/null
}
wait_until 300 sink_has_all
check_eq "the sink accepted all $N messages" "$(sink_count)" "$N"
queue_empty() {
	[ "$(redis-cli -p "$rport" hlen one:lease)" = 0 ] &&
		[ "$(redis-cli -p "$rport" hlen one:inflight)" = 0 ]
}
wait_until 60 queue_empty
check_eq "no lease left and nothing in flight" "$?" 0
stop_kurierd kurierd

log=$E2E_TMP/kurierd.log
check_eq "each message delivered once" "$(grep -c 'event=delivered ' "$log")" "$N"
check_eq "the sink got none twice" "$(sink_count)" "$N"
claims=$(grep 'component=deliver event=claims ' "$log" | tail -1)
check_match "kurierd logs its claim counters at stop" "$claims" 'claims=[0-9]+ jobs=[0-9]+'
field() {
	printf '%s\n' "$claims" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'
}
echo "# $claims"
check_eq "every job came from a claim" "$(field jobs)" "$N"
check_eq "no job waited for the idle poll (poll_jobs)" "$(field poll_jobs)" 0
refilled=$(field refill_jobs)
check_match "slots given back at the cap were refilled at once (refill_jobs=$refilled)" "$refilled" '^[1-9][0-9]*$'
e2e_done
