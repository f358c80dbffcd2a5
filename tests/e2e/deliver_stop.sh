#!/usr/bin/env bash
# deliver_stop.sh - kurierd stopped (SIGTERM) while a delivery is under
# way: the transaction is cut at the end of shutdown_grace, the job goes
# back to the queue untouched (no attempt counted, no lease left), kurierd
# exits 0 without a sanitizer report, and the next kurierd delivers it.
# The sink answers the data only after 4 s, so the stop lands mid-DATA.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/deliver_lib.sh"
e2e_init
trap 'keep_artifacts; e2e_cleanup' EXIT

user=shop
password='Stop-test.pw1'

find_sink_python || e2e_abort "a python3 with aiosmtpd"
rport=$(free_port2)
start_redis "$E2E_TMP/redis" "$rport" || e2e_abort "redis-server starts"
sport=$(free_port2)
start_sink sink --listen "127.0.0.2:$sport" --delay-data 4 ||
	e2e_abort "sink.py starts"

port=$(free_port2)
sp=$(free_port2)
while [ "$sp" = "$port" ]; do sp=$(free_port2); done
conf=$E2E_TMP/stop.conf
mkdir -p "$E2E_TMP/data"
cat >"$conf" <<CONF
[server]
hostname = kurier.test
data_dir = $E2E_TMP/data
shutdown_grace = 1s
[redis]
address = 127.0.0.1:$rport
prefix = stop:
[relay]
inbound =
submission = 127.0.0.1:$port
submissions = 127.0.0.1:$sp
[deliver]
route.* = 127.0.0.2:$sport
spf_preflight = off
retry = 1s
data_end_timeout = 30s
CONF
printf '%s\n' "$password" | kctl "$conf" user add "$user" --domains example.com >/dev/null 2>&1
check_eq "kurierctl user add" "$?" 0

start_kurierd one "$conf" || e2e_abort "kurierd starts"
printf 'From: <a@example.com>\r\nTo: <x@dest.test>\r\nSubject: stop\r\n\r\nbody\r\n' >"$E2E_TMP/m.eml"
printf 'm\ta@example.com\tx@dest.test\t%s\n' "$E2E_TMP/m.eml" >"$E2E_TMP/spec"
id=$(submit "$port" "$user" "$password" "$E2E_TMP/spec" | awk '$1 == "m" { print $2 }')
check_match "submitted" "$id" '^[0-9A-Z]{16}$'

# The data is at the sink and its reply is being held: stop now.
wait_until 15 grep -q "delaying the data reply" "$E2E_TMP/sink.log"
check_eq "the delivery reached the sink's slow data reply" "$?" 0
kill -TERM "${KPID[one]}"
for _ in $(seq 100); do kill -0 "${KPID[one]}" 2>/dev/null || break; sleep 0.1; done
if kill -0 "${KPID[one]}" 2>/dev/null; then
	fail "kurierd exits within 10 s of SIGTERM"
	kill -KILL "${KPID[one]}"
fi
wait "${KPID[one]}"
check_eq "kurierd exits 0" "$?" 0
KPID[one]=""
log=$E2E_TMP/one.log
# After the grace period, not at once: the transaction was cut (the
# grace timer's doing) between the stop and the end, in that order.
check_eq "it stopped after the grace period, not at once (stopping, cut_off, stopped)" \
	"$(grep -oE 'component=deliver event=(stopping|cut_off|stopped)' "$log" | sed 's/.*event=//' | tr '\n' ' ')" \
	"stopping cut_off stopped "
check_match "the cut transaction is logged with its id" "$(grep 'event=cut_off' "$log")" "id=$id .*given back to the queue"
check_eq "no sanitizer report" "$(grep -Ec 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log")" 0
check_eq "no lease is left behind" "$(redis-cli -p "$rport" hlen stop:lease)" 0
check_eq "nothing counted in flight" "$(redis-cli -p "$rport" hget stop:inflight dest.test)" ""
show=$(kctl "$conf" queue show "$id")
check_eq "the recipient is queued again" "$(rcpt_field "$show" x@dest.test state)" queued
check_eq "without an attempt counted" "$(rcpt_field "$show" x@dest.test attempts)" 0
check_eq "the sink accepted nothing" "$(sink_q --status accepted --count)" 0

# A new kurierd delivers it (the sink is still slow: 4 s).
start_kurierd two "$conf" || e2e_abort "kurierd starts again"
wait_until 30 msg_settled "$conf" "$id"
check_eq "the next kurierd delivers it" "$?" 0
show=$(kctl "$conf" queue show "$id")
check_eq "delivered" "$(rcpt_field "$show" x@dest.test state)" delivered
check_eq "the sink accepted it once" "$(sink_q --status accepted --count)" 1
stop_kurierd two
e2e_done
