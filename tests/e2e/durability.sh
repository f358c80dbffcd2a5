#!/usr/bin/env bash
# durability.sh - nothing acknowledged is lost when redis-server is
# killed with SIGKILL mid-load and restarted from its AOF: every id the
# queue acknowledged (the 250 of a submission) is still there.
source "$(dirname "$0")/lib.sh"
e2e_init

port=$(free_port)
conf=$E2E_TMP/kurier.conf
write_conf "$conf" "$port"
sed -i 's/^reconnect_max = .*/reconnect_max = 200ms/' "$conf"
start_redis "$E2E_TMP/redis" "$port"
check_eq "redis runs with appendfsync always" \
	"$(redis-cli -p "$port" config get appendfsync | tail -1)" always

total=4000
"$KURIER_TOOLS/qload" -c "$conf" -n $total -p 50 -s 2048 -d 60 \
	>"$E2E_TMP/acked" 2>"$E2E_TMP/qload.err" &
qpid=$!
track "$qpid"
wait_for 20 sh -c "[ \$(wc -l <'$E2E_TMP/acked') -ge 1000 ]"
kill -9 "$REDIS_PID"
at_kill=$(wc -l <"$E2E_TMP/acked")
sleep 0.5
start_redis "$E2E_TMP/redis" "$port"
qstatus=0
wait "$qpid" || qstatus=$?
check_eq "the load finishes after Redis comes back" "$qstatus" 0
check_match "Redis was killed mid-way ($at_kill of $total acknowledged)" "$at_kill" '^[0-9]+$'
[ "$at_kill" -ge 1000 ] && [ "$at_kill" -lt "$total" ]
check_eq "the kill came between the first and the last acknowledgement" "$?" 0
check_match "the client saw the outage as errors" "$(cat "$E2E_TMP/qload.err")" "enqueues failed and were sent again"

acked=$(sort -u "$E2E_TMP/acked" | wc -l)
check_eq "every message acknowledged once" "$acked" "$total"
# Ask Redis (restarted from its AOF) for each acknowledged id.
missing=$(sed 's/^/HEXISTS e2e:m:/; s/$/ env/' "$E2E_TMP/acked" | redis-cli -p "$port" | grep -vc '^1$')
check_eq "no acknowledged message is lost" "$missing" 0
active=$(redis-cli -p "$port" zcard e2e:active)
[ "$active" -ge "$total" ]
check_eq "the active set holds every acknowledged message ($active)" "$?" 0
e2e_done
