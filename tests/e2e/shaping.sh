#!/usr/bin/env bash
# shaping.sh - per-destination rules end to end: kurierd (relay+deliver)
# delivers to sink.py MXs found through dnsmasq, with a real Redis, and
# the sink measures what kurier did (connections open at once, messages
# per connection, when each transaction came).
#
#   group.test   a.test and b.test have their MX hosts under .mx.test, one
#                [destination mx-group] section with mx = .mx.test and
#                max_connections = 1: the sink never sees two connections
#                at once (127.0.0.2, answering the data after 0.3 s)
#   google       gmail-hosted.test's MX is alt1.aspmx.l.google.com: the
#                built-in Google rule.  The first MAIL gets 421 4.7.28:
#                the group is suspended (logged, in Redis P throttle, in
#                `kurierctl queue stats`); two messages submitted then
#                are held, nothing is sent to the group during the
#                back-off (throttle_backoff_min = 5s), then every
#                message is delivered (127.0.0.3)
#   permsg.test  max_messages_per_connection = 2 (and max_connections = 1):
#                5 messages take 3 connections (127.0.0.4)
#   rate.test    max_messages_per_minute = 3: 3 messages go at once, the
#                4th waits a minute and is not counted as an attempt
#                (127.0.0.5)
#   tls          require_tls = yes toward a sink without STARTTLS
#                (tlsreq.test, 127.0.0.6): deferred 451 4.7.10, nothing
#                sent; with STARTTLS (tlsok.test, 127.0.0.7): delivered
#                over TLS; require_tls = verify toward its self-signed
#                certificate (tlsverify.test): deferred 4.7.10
#   bounce.test  550 5.1.1 adds the recipient to the suppression list of
#                the sender's domain; 450 and 550 5.7.1 do not (127.0.0.8)
#   node         a suspension written by another node (redis-cli, as
#                policy_throttle_hit writes it) holds this node's jobs
#                of the group until it ends (127.0.0.10)
#   supp.test    suppression at delivery: messages queued by a relay-only
#                kurierd, then recipients suppressed with kurierctl, then
#                delivered: suppressed ones never reach the sink, and a
#                message whose recipients are all suppressed opens no
#                connection (127.0.0.9)
#
# Every wait is bounded.  Environment: KURIER_BIN, KURIER_E2E_KEEP=DIR.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/deliver_lib.sh"
e2e_init
trap 'keep_artifacts; e2e_cleanup' EXIT

user=shop
password='Shaping-test.pw1'
from=alice@example.com
conf=$E2E_TMP/shape.conf

find_sink_python || e2e_abort "a python3 with aiosmtpd"

rport=$(free_port2)
start_redis "$E2E_TMP/redis" "$rport" || e2e_abort "redis-server starts"
make_cert "$E2E_TMP/cert" || e2e_abort "openssl makes the sink's certificate"
rcli() {
	redis-cli -p "$rport" "$@"
}

# --- DNS and the sink ----------------------------------------------------------------------

dns=()
mx() {
	dns+=("--mx-host=$1,$3,$2")
	[ $# -ge 4 ] && dns+=("--host-record=$3,$4")
	return 0
}
mx a.test 10 m1.mx.test 127.0.0.2
mx b.test 10 m2.mx.test 127.0.0.2
mx gmail-hosted.test 10 alt1.aspmx.l.google.com 127.0.0.3
mx permsg.test 10 mx.permsg.test 127.0.0.4
mx rate.test 10 mx.rate.test 127.0.0.5
mx tlsreq.test 10 mx.tlsreq.test 127.0.0.6
mx tlsok.test 10 mx.tlsok.test 127.0.0.7
mx tlsverify.test 10 mx.tlsverify.test 127.0.0.7
mx bounce.test 10 mx.bounce.test 127.0.0.8
mx supp.test 10 mx.supp.test 127.0.0.9
mx gmail-hosted2.test 10 alt2.aspmx.l.google.com 127.0.0.10
start_dns "${dns[@]}" || e2e_abort "dnsmasq starts"
check_match "dns: gmail-hosted.test's MX is alt1.aspmx.l.google.com" \
	"$(dns_query gmail-hosted.test MX)" "MX 10 alt1\.aspmx\.l\.google\.com\.$"

sport=$(free_port2)
stats=$E2E_TMP/sink-stats.json
cert=("$E2E_TMP/cert/cert.pem" "$E2E_TMP/cert/key.pem")
start_sink sink --stats "$stats" \
	--listen "127.0.0.2:$sport" --delay-data 0.3 \
	--listen "127.0.0.3:$sport" --throttle-first 1 "421 4.7.28 [127.0.0.1] Our system has detected an unusual rate of unsolicited mail (sink)" \
	--listen "127.0.0.4:$sport" \
	--listen "127.0.0.5:$sport" \
	--listen "127.0.0.6:$sport" \
	--listen "127.0.0.7:$sport" --starttls "${cert[@]}" \
	--listen "127.0.0.8:$sport" --reject-rcpt hard@bounce.test \
	--reply-rcpt soft@bounce.test "450 4.2.1 mailbox busy, try later (sink)" \
	--reply-rcpt policy@bounce.test "550 5.7.1 message refused by policy (sink)" \
	--listen "127.0.0.9:$sport" \
	--listen "127.0.0.10:$sport" ||
	e2e_abort "sink.py starts"

# stat LISTEN FIELD - a counter of the sink (LISTEN "all" or IP:PORT).
stat() {
	"$SINK_PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(d.get(sys.argv[2], {}).get(sys.argv[3], 0))' "$stats" "$1" "$2" 2>/dev/null || echo 0
}

# --- configuration -----------------------------------------------------------------------------

sub_port=$(free_port2)
subs_port=$(free_port2)
while [ "$subs_port" = "$sub_port" ]; do subs_port=$(free_port2); done
conf_head "$conf" "$E2E_TMP/data" "$rport" shape
cat >>"$conf" <<CONF
[relay]
inbound =
submission = 127.0.0.1:$sub_port
submissions = 127.0.0.1:$subs_port

[policy]
throttle_backoff_min = 5s
throttle_backoff_max = 30s

[deliver]
dns_server = 127.0.0.1:$DNS_PORT
dns_timeout = 2s
mx_port = $sport
outbound_ip = 127.0.0.1
spf_preflight = off
retry = 1s
lifetime = 10m
connect_timeout = 5s
greeting_timeout = 10s
command_timeout = 10s
data_init_timeout = 10s
data_block_timeout = 10s
data_end_timeout = 10s
idle_timeout = 2s

[domain example.com]

[destination mx-group]
mx = .mx.test
max_connections = 1

[destination permsg.test]
max_connections = 1
max_messages_per_connection = 2

[destination rate.test]
max_messages_per_minute = 3

[destination tlsreq.test]
require_tls = yes

[destination tlsok.test]
require_tls = yes

[destination tlsverify.test]
require_tls = verify
CONF

printf '%s\n' "$password" | kctl "$conf" user add "$user" --domains example.com \
	>"$E2E_TMP/useradd.log" 2>&1
check_eq "kurierctl user add" "$?" 0 || sed 's/^/#   /' "$E2E_TMP/useradd.log"

# --- messages ----------------------------------------------------------------------------------

declare -A mid
spec=$E2E_TMP/batch
: >"$spec"
# msg TAG RCPTS - a message to RCPTS (comma-separated) in the next batch.
msg() {
	local f=$E2E_TMP/msg-$1.eml
	{
		printf 'From: <%s>\r\nTo: <%s>\r\nSubject: shaping %s\r\n' "$from" "${2%%,*}" "$1"
		printf 'Date: %s\r\nMessage-ID: <%s.%s@shaping.test>\r\n\r\n' "$(date -R)" "$1" "$RANDOM$RANDOM"
		printf 'shaping test %s\r\n' "$1"
	} >"$f"
	printf '%s\t%s\t%s\t%s\n' "$1" "$from" "$2" "$f" >>"$spec"
}
# send_batch PORT - submit the batch; remember the ids.
send_batch() {
	local out=$E2E_TMP/submit.out tag id rest n=0 want
	want=$(wc -l <"$spec")
	submit "$1" "$user" "$password" "$spec" >"$out" 2>&1
	while read -r tag id rest; do
		[ "$id" != ERROR ] && [ -n "$id" ] && mid[$tag]=$id && n=$((n + 1))
	done <"$out"
	check_eq "submitted $want messages" "$n" "$want" || sed 's/^/#   /' "$out" | head -5
	: >"$spec"
}
show() {
	kctl "$conf" queue show "${mid[$1]:-none}" 2>&1
}
state() {
	rcpt_field "$(show "$1")" "$2" state
}
last_reply() {
	rcpt_field "$(show "$1")" "$2" "last reply"
}
attempts() {
	rcpt_field "$(show "$1")" "$2" attempts
}
settled() {
	wait_until "${2:-30}" msg_settled "$conf" "${mid[$1]:-none}"
}

# --- supp.test, part 1: queued by a relay-only kurierd -----------------------------------------

log_r=$E2E_TMP/relayonly.log
"$KURIER_BIN/kurierd" -c "$conf" --roles relay >"$log_r" 2>&1 &
rpid=$!
track "$rpid"
if wait_until 15 grep -q "event=relay_listening" "$log_r"; then
	pass "kurierd --roles relay starts"
else
	fail "kurierd --roles relay starts" "$(tail -5 "$log_r")"
fi
msg supp-mixed "x@supp.test,y@supp.test"
msg supp-all "z@supp.test"
send_batch "$sub_port"
kill -TERM "$rpid"
wait_until 10 bash -c "! kill -0 $rpid" || kill -KILL "$rpid"
wait "$rpid" 2>/dev/null
check_eq "supp: nothing was delivered by the relay-only kurierd" "$(sink_q --listen 127.0.0.9)" 0

check_exit "kurierctl suppression add x@supp.test --domain example.com" 0 \
	kctl "$conf" suppression add x@supp.test --domain example.com --reason manual --note "e2e test"
check_exit "kurierctl suppression add z@supp.test (global)" 0 \
	kctl "$conf" suppression add z@supp.test --reason complaint
check_match "redis: P sup:example.com holds x@supp.test" \
	"$(rcli HGET shape:sup:example.com x@supp.test)" "^manual [0-9]+ "

# --- the delivering kurierd ------------------------------------------------------------------------

if ! start_kurierd shape "$conf"; then
	fail "kurierd (relay+deliver) starts: nothing else can be checked"
	e2e_done
	exit 1
fi
pass "kurierd (relay+deliver) starts"
klog=$E2E_TMP/shape.log

for i in 1 2 3 4; do msg "rate$i" "r$i@rate.test"; done
for i in 1 2 3 4 5 6; do
	msg "ga$i" "u$i@a.test"
	msg "gb$i" "u$i@b.test"
done
msg google1 user1@gmail-hosted.test
for i in 1 2 3 4 5; do msg "permsg$i" "p$i@permsg.test"; done
msg tlsreq "t@tlsreq.test"
msg tlsok "t@tlsok.test"
msg tlsverify "t@tlsverify.test"
msg bounce "hard@bounce.test,soft@bounce.test,policy@bounce.test,ok@bounce.test"
send_batch "$sub_port"

# --- Google: throttled, suspended, resumed ---------------------------------------------------------------

if wait_until 20 grep -q "event=throttled group=gmail.com level=1" "$klog"; then
	pass "google: 421 4.7.28 suspends group gmail.com (logged, level 1)"
	entry=$(rcli HGET shape:throttle gmail.com)
	stats_out=$(kctl "$conf" queue stats 2>&1)
	# Two more for the group while it is suspended: held, not sent.
	msg google2 user2@gmail-hosted.test
	msg google3 user3@gmail-hosted.test
	send_batch "$sub_port"
	check_match "google: redis P throttle has gmail.com \"UNTIL 1 REPLY\"" "$entry" "^[0-9]+ 1 .*4\.7\.28"
	check_match "google: kurierctl queue stats names the throttled group" "$stats_out" "gmail\.com"
else
	fail "google: 421 4.7.28 suspends group gmail.com (logged, level 1)" "$(grep -E 'gmail|google' "$klog" | tail -5)"
fi
n=0
for i in 1 2 3; do settled "google$i" 40 && n=$((n + 1)); done
check_eq "google: all 3 messages settled after the back-off" "$n" 3
for i in 1 2 3; do
	check_eq "google: <user$i@gmail-hosted.test> delivered" "$(state "google$i" "user$i@gmail-hosted.test")" delivered
done
check_eq "google: exactly one throttled transaction at the sink" "$(sink_q --listen 127.0.0.3 --status throttled)" 1
gap=$("$SINK_PY" -c '
import sys, json, glob, os
recs = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json")))]
recs = [r for r in recs if r["listen"].startswith("127.0.0.3:")]
t0 = min(r["time"] for r in recs if r["status"] == "throttled")
acc = [r["time"] for r in recs if r["status"] == "accepted"]
print("%.1f" % (min(acc) - t0) if acc else "none")' "$SINK_SPOOL")
check_match "google: the messages sent meanwhile were held" \
	"$(grep -c 'event=held.*group=gmail.com reason=throttled' "$klog")" "^[1-9]"
check_match "google: nothing reached the group during the 5 s back-off (first delivery ${gap}s after the 421)" \
	"$gap" "^([5-9]|[1-9][0-9])\.[0-9]$"
check_eq "google: nothing else tried meanwhile (4 transactions: the 421, then 3 accepted)" \
	"$(sink_q --listen 127.0.0.3)" 4
check_match "google: the throttled recipient's attempt counted once" \
	"$(for i in 1 2 3; do attempts "google$i" "user$i@gmail-hosted.test"; done | sort | tr '\n' ' ')" "^1 1 2 $"
check_match "google: a delivery clears the level" "$(grep 'event=throttle_cleared group=gmail.com' "$klog" | head -1)" "gmail\.com"

# --- suppression at delivery ---------------------------------------------------------------------------

if settled supp-mixed && settled supp-all; then
	pass "supp: both messages settled"
else
	fail "supp: both messages settled" "$(show supp-mixed | head -20)"
fi
check_eq "supp: <x@supp.test> (suppressed for example.com) suppressed" "$(state supp-mixed x@supp.test)" suppressed
check_match "supp: <x@supp.test> reply says why" "$(last_reply supp-mixed x@supp.test)" "suppressed"
check_eq "supp: <y@supp.test> delivered" "$(state supp-mixed y@supp.test)" delivered
check_eq "supp: <z@supp.test> (global) suppressed" "$(state supp-all z@supp.test)" suppressed
check_eq "supp: the sink got y@supp.test once" "$(sink_q --listen 127.0.0.9 --rcpt y@supp.test --status accepted)" 1
check_eq "supp: the sink never saw x@ or z@supp.test" \
	"$(( $(sink_q --listen 127.0.0.9 --rcpt x@supp.test) + $(sink_q --listen 127.0.0.9 --rcpt z@supp.test) ))" 0
check_eq "supp: one connection in all (the all-suppressed message opened none)" \
	"$(stat "127.0.0.9:$sport" conns)" 1
check_match "supp: logged" "$(grep 'event=suppressed' "$klog" | head -2)" "z@supp\.test"

# --- one group for two domains by MX -------------------------------------------------------------------

n=0
for i in 1 2 3 4 5 6; do
	settled "ga$i" && n=$((n + 1))
	settled "gb$i" && n=$((n + 1))
done
check_eq "group: 12 messages to a.test and b.test settled" "$n" 12
check_eq "group: 12 delivered at the sink" "$(sink_q --listen 127.0.0.2 --status accepted)" 12
check_eq "group: never two connections at once to the group's hosts (max_connections = 1)" \
	"$(stat "127.0.0.2:$sport" max_open)" 1

# --- messages per connection ---------------------------------------------------------------------------------

n=0
for i in 1 2 3 4 5; do settled "permsg$i" && n=$((n + 1)); done
check_eq "permsg: 5 messages delivered" "$n" 5
per_conn=$("$SINK_PY" "$E2E_DIR/sink.py" query "$SINK_SPOOL" --listen 127.0.0.4 --status accepted --field conn | sort | uniq -c | awk '{print $1}' | sort -rn | tr '\n' ' ')
check_eq "permsg: at most 2 messages per connection (per connection: $per_conn)" "$per_conn" "2 2 1 "

# --- require_tls ---------------------------------------------------------------------------------------------------

wait_until 20 rcpt_matches "$conf" "${mid[tlsreq]:-none}" t@tlsreq.test "state +deferred"
check_eq "tls: require_tls = yes, no STARTTLS: deferred" "$(state tlsreq t@tlsreq.test)" deferred
check_match "tls: the reply is 451 4.7.10 TLS required for tlsreq.test" \
	"$(last_reply tlsreq t@tlsreq.test)" "^451 4\.7\.10 TLS required for tlsreq\.test: "
check_eq "tls: nothing sent to the server without STARTTLS" "$(sink_q --listen 127.0.0.6)" 0
settled tlsok
check_eq "tls: require_tls = yes with STARTTLS: delivered" "$(state tlsok t@tlsok.test)" delivered
check_eq "tls: ... over TLS" "$(sink_q --listen 127.0.0.7 --rcpt t@tlsok.test --field tls)" true
wait_until 20 rcpt_matches "$conf" "${mid[tlsverify]:-none}" t@tlsverify.test "state +deferred"
check_match "tls: require_tls = verify, self-signed certificate: deferred 4.7.10" \
	"$(last_reply tlsverify t@tlsverify.test)" "^451 4\.7\.10 TLS required for tlsverify\.test: .*not verified"
check_eq "tls: nothing sent to the unverified server" "$(sink_q --listen 127.0.0.7 --rcpt t@tlsverify.test)" 0

# --- hard and soft bounces ----------------------------------------------------------------------------------------

wait_until 20 rcpt_matches "$conf" "${mid[bounce]:-none}" hard@bounce.test "state +bounced"
check_eq "bounce: <hard@bounce.test> (550 5.1.1) bounced" "$(state bounce hard@bounce.test)" bounced
check_eq "bounce: <policy@bounce.test> (550 5.7.1) bounced" "$(state bounce policy@bounce.test)" bounced
check_eq "bounce: <ok@bounce.test> delivered" "$(state bounce ok@bounce.test)" delivered
check_match "bounce: <soft@bounce.test> (450) not final" "$(state bounce soft@bounce.test)" "^(deferred|queued)$"
wait_until 10 test -n "$(rcli HGET shape:sup:example.com hard@bounce.test)"
check_match "bounce: the hard bounce is on example.com's suppression list" \
	"$(rcli HGET shape:sup:example.com hard@bounce.test)" "^hard-bounce [0-9]+ 550 5\.1\.1"
check_eq "bounce: the policy refusal is not" "$(rcli HEXISTS shape:sup:example.com policy@bounce.test)" 0
check_eq "bounce: the soft bounce is not" "$(rcli HEXISTS shape:sup:example.com soft@bounce.test)" 0
check_eq "bounce: nothing on the global list from these" "$(rcli HLEN 'shape:sup:*')" 1
check_eq "bounce: the addition is logged once" "$(grep -c 'event=suppression_added.*hard@bounce.test' "$klog")" 1
check_exit "bounce: kurierctl suppression check finds it" 0 \
	kctl "$conf" suppression check hard@bounce.test --domain example.com
check_match "bounce: ... as a hard bounce" "$E2E_OUT" "hard-bounce"

# --- messages per minute (last: it takes a minute) -----------------------------------------------------------------

wait_until 15 sink_has 3 --listen 127.0.0.5 --status accepted
sleep 3
check_eq "rate: 3 messages delivered at once (max_messages_per_minute = 3)" \
	"$(sink_q --listen 127.0.0.5 --status accepted)" 3
n=0
for i in 1 2 3 4; do [ "$(state "rate$i" "r$i@rate.test")" = delivered ] && n=$((n + 1)); done
check_eq "rate: the 4th waits its turn" "$n" 3
if wait_until 80 sink_has 4 --listen 127.0.0.5 --status accepted; then
	pass "rate: the 4th delivered within 80 s"
else
	fail "rate: the 4th delivered within 80 s"
fi
span=$("$SINK_PY" -c '
import sys, json, glob, os
t = sorted(json.load(open(f))["time"] for f in glob.glob(os.path.join(sys.argv[1], "*.json"))
           if json.load(open(f))["listen"].startswith("127.0.0.5:"))
print("%.0f" % (t[3] - t[0]) if len(t) >= 4 else "none")' "$SINK_SPOOL")
check_match "rate: the 4th came a minute after the 1st (${span}s)" "$span" "^(59|6[0-9]|7[0-9])$"
for i in 1 2 3 4; do settled "rate$i" 10; done
check_eq "rate: every recipient delivered with one attempt" \
	"$(for i in 1 2 3 4; do attempts "rate$i" "r$i@rate.test"; done | tr '\n' ' ')" "1 1 1 1 "

# --- a suspension made by another node -------------------------------------------------------------------

# Another node's throttle of gmail.com, as policy_throttle_hit writes it;
# this kurierd reads it within THROTTLE_POLL_MS (3 s).
until_ms=$(( $(date +%s%3N) + 12000 ))
rcli HSET shape:throttle gmail.com "$until_ms 1 421 4.7.28 from another node (test)" >/dev/null
sleep 4
for i in 1 2 3; do msg "node$i" "n$i@gmail-hosted2.test"; done
send_batch "$sub_port"
if wait_until 10 bash -c "[ \$(grep -c 'event=held.*domain=gmail-hosted2.test group=gmail.com reason=throttled' '$klog') -ge 3 ]"; then
	pass "node: the 3 messages for the group suspended elsewhere are held"
else
	fail "node: the 3 messages for the group suspended elsewhere are held" "$(grep gmail-hosted2 "$klog" | tail -5)"
fi
n=0
for i in 1 2 3; do settled "node$i" 30 && n=$((n + 1)); done
check_eq "node: delivered once the suspension ended" "$n" 3
first=$("$SINK_PY" -c '
import sys, json, glob, os
t = [json.load(open(f)) for f in glob.glob(os.path.join(sys.argv[1], "*.json"))]
t = [r["time"] for r in t if r["listen"].startswith("127.0.0.10:")]
print("%d" % (min(t) * 1000) if t else 0)' "$SINK_SPOOL")
check_eq "node: nothing reached the group before the other node's until" \
	"$([ "$first" -ge "$until_ms" ] && echo yes || echo "no: $(( (until_ms - first) ))ms early")" yes
check_eq "node: each delivered at the first attempt" \
	"$(for i in 1 2 3; do attempts "node$i" "n$i@gmail-hosted2.test"; done | tr '\n' ' ')" "1 1 1 "

stop_kurierd shape
e2e_done
