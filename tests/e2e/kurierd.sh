#!/usr/bin/env bash
# kurierd.sh - the daemon's life: start, bad config, Redis outages and
# recovery, SIGHUP, the lease reaper, SIGTERM within the grace period.
source "$(dirname "$0")/lib.sh"
e2e_init

port=$(free_port)
conf=$E2E_TMP/kurier.conf
cat >"$conf" <<CONF
[server]
hostname = kurier.test
data_dir = $E2E_TMP/data
log_level = info
shutdown_grace = 3s

[redis]
address = 127.0.0.1:$port
prefix = e2e:
reconnect_max = 300ms

[queue]
reap_interval = 200ms

[deliver]
; Refused at once: a worker that claims the test's job defers it, so it
; waits in its queue again instead of reaching a final outcome.
route.dead.example = 127.0.0.1:1
CONF

# --- configuration errors ---------------------------------------------------
bad=$E2E_TMP/bad.conf
printf '[server]\nhostname = x\n\n[queue]\nlease = soon\n' >"$bad"
check_exit "bad config exits 1" 1 "$KURIER_BIN/kurierd" -c "$bad"
check_match "bad config names file and line" "$E2E_OUT" "bad.conf:5: \[queue\] lease: \"soon\" is not a duration"
check_exit "--check on a good config" 0 "$KURIER_BIN/kurierd" -c "$conf" --check
check_exit "--roles with an unknown role exits 2" 2 "$KURIER_BIN/kurierd" -c "$conf" --roles relay,smtp
check_match "--roles error says which roles exist" "$E2E_OUT" "relay, deliver, mailbox"
check_exit "missing config exits 1" 1 "$KURIER_BIN/kurierd" -c "$E2E_TMP/nope.conf"
check_match "missing config says why" "$E2E_OUT" "nope.conf: cannot open: No such file"

# --- start with Redis down, then up ---------------------------------------
log=$E2E_TMP/kurierd.log
"$KURIER_BIN/kurierd" -c "$conf" --roles deliver >"$log" 2>&1 &
kpid=$!
track "$kpid"
wait_for 5 grep -q "event=redis_connect_failed" "$log"
check_eq "logs the failed Redis connection" "$?" 0
check_match "start line names roles and Redis" "$(grep event=start "$log")" "roles=deliver .*redis=127.0.0.1:$port"
start_redis "$E2E_TMP/redis" "$port"
wait_for 5 grep -q "event=redis_up" "$log"
check_eq "connects once Redis is up" "$?" 0

# --- Redis restarted under it ------------------------------------------------
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1
wait_for 5 grep -q "event=redis_down" "$log"
check_eq "notices Redis going away" "$?" 0
start_redis "$E2E_TMP/redis" "$port"
# The queue's first connection (client=kurierd) is up again after the outage.
up_after_down() {
	awk '/event=redis_down client=kurierd /{d=1} d && /event=redis_up client=kurierd /{print}' "$log"
}
wait_for 5 sh -c "awk '/event=redis_down client=kurierd /{d=1} d && /event=redis_up client=kurierd /{f=1} END{exit !f}' '$log'"
check_eq "reconnects after Redis restarts" "$?" 0
check_match "reconnect line tells the downtime" "$(up_after_down | tail -1)" "down_ms=[0-9]+ attempts=[0-9]+"
check_match "the queue's other connections reconnect too" "$(grep 'event=redis_up client=kurierd/4 ' "$log" | tail -1)" "down_ms=[0-9]+"

# --- the lease reaper returns the job of a dead worker ---------------------
"$KURIER_TOOLS/qload" -c "$conf" -n 1 -r rcpt@dead.example >"$E2E_TMP/ids" 2>&1
id=$(head -1 "$E2E_TMP/ids")
check_match "one message queued" "$id" '^[0-9A-Z]{16}$'
# Act out a worker that claimed the job and died: lease long expired.
# One script, so the reaper (every 200 ms) sees the whole lease or none of
# it: set apart, it could requeue the job between the ZADD and the HSET
# and leave the token behind.  Only while the job waits in its queue: a
# live worker of this kurierd may hold it right now (its token would be
# overwritten and its in-flight count never returned), so until then the
# script changes nothing and is tried again.
faked=0
for _ in $(seq 100); do
	faked=$(redis-cli -p "$port" eval "
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], 1, ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], 999)
redis.call('HINCRBY', KEYS[4], 'dead.example', 1)
return 1" 4 \
	    e2e:q:t:dead.example e2e:leases e2e:lease e2e:inflight "$id" "$id/dead.example")
	[ "$faked" = 1 ] && break
	sleep 0.1
done
check_eq "a dead worker's lease is acted out" "$faked" 1
wait_for 5 grep -q "event=lease_expired job=\"$id/dead.example\"" "$log"
check_eq "reaper logs the expired lease with the job" "$?" 0
# The reaper queues it again; this kurierd's own delivery workers may have
# claimed it since (a new lease), or even finished it (dead.example does
# not resolve here): any of these is right, the dead worker's lease is not.
# One script reads all four at one instant: read one by one, a worker
# finishing in between would pair a lease with an in-flight count of zero.
snap=$(redis-cli -p "$port" --no-raw eval "
local t = redis.call('HGET', KEYS[1], ARGV[1]) or ''
local q = redis.call('ZSCORE', KEYS[2], ARGV[2]) and '1' or '0'
local i = redis.call('HGET', KEYS[3], 'dead.example') or ''
local m = redis.call('HGET', KEYS[4], 'state') or ''
return t .. '|' .. q .. '|' .. i .. '|' .. m" 4 \
    e2e:lease e2e:q:t:dead.example e2e:inflight "e2e:m:$id" \
    "$id/dead.example" "$id" | tr -d '"')
IFS='|' read -r tok queued infl mstate <<EOS
$snap
EOS
check_eq "the dead worker's lease is gone" "$([ "$tok" != 999 ] && echo gone)" gone
if [ -n "$tok" ]; then
	check_eq "held by a live worker: in-flight count is its one job" "$infl" 1
else
	check_eq "not held: in-flight count returns to zero" "$infl" ""
	check_eq "queued again, or delivered to an outcome" \
	    "$([ "$queued" = 1 ] || [ "$mstate" = done ] && echo handled)" handled
fi
# --- SIGHUP -----------------------------------------------------------------
sed -i 's/^log_level = info/log_level = debug/' "$conf"
kill -HUP "$kpid"
wait_for 5 grep -q "event=reloaded .*log_level=debug" "$log"
check_eq "SIGHUP applies log_level" "$?" 0
printf 'bogus line\n' >>"$conf"
kill -HUP "$kpid"
wait_for 5 grep -q "event=reload_failed" "$log"
check_eq "SIGHUP with a broken config is reported" "$?" 0
check_match "and names the line" "$(grep event=reload_failed "$log")" "kurier.conf:19: syntax error"
kill -0 "$kpid" 2>/dev/null
check_eq "and kurierd keeps running" "$?" 0

# --- SIGTERM ----------------------------------------------------------------
kill -TERM "$kpid"
status=0
for _ in $(seq 50); do kill -0 "$kpid" 2>/dev/null || break; sleep 0.1; done
wait "$kpid" 2>/dev/null || status=$?
check_eq "SIGTERM: exits 0 within the grace period" "$status" 0
check_match "logs stopping and stopped" "$(grep -o 'event=stop[a-z]*' "$log" | tr '\n' ' ')" "event=stopping event=stopped"

e2e_done
