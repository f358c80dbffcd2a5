#!/usr/bin/env bash
# policy.sh - the submission listener enforcing policy end to end: each
# rule at its boundary, against kurierd (relay role) and a real Redis.
#
# Four kurierd share one redis-server (so one set of counters):
#   a, b    the same policy: [policy] rate = 4/1h (the default for users
#           without their own), auth_fail_limit = 3, max_errors = 5,
#           max_junk_commands = 10
#   drop    as a, with suppressed = drop
#   trust   as a, with trusted_networks = 127.0.0.1/32, trusted_user = tuser
# Clients bind 127.0.0.1 or 127.0.0.2 to be two addresses.  Covered:
# message and recipient rates per user (override and default, the window
# passing, two processes sharing counters, a restart keeping them), the
# AUTH lock-out, the suppression list (reject and drop), trusted
# networks, header From checks, recipient domains, junk commands, the
# error limit, the rule of each refusal in the log and the shared counts,
# and Redis stopped (451, never an unchecked 250).
source "$(dirname "$0")/lib.sh"
e2e_init
source "$(dirname "$0")/policy_lib.sh"

pw='Polic-e2e-pass.7'
rport=$(free_port)
start_redis "$E2E_TMP/redis" "$rport" || e2e_abort "redis-server starts"
rcli() { redis-cli -p "$rport" "$@"; }

# conf NAME EXTRA_RELAY EXTRA_POLICY - sets NAME_port.
conf() {
	local name=$1 p sp
	read -r p sp < <(port_pair)
	printf -v "${name}_port" '%s' "$p"
	conf_head "$E2E_TMP/$name.conf" "$E2E_TMP/data-$name" "$rport" e2e
	cat >>"$E2E_TMP/$name.conf" <<CONF
[relay]
inbound =
submission = 127.0.0.1:$p
submissions = 127.0.0.1:$sp
max_recipients = 10
command_timeout = 20s
$2

[policy]
rate = 4/1h
auth_fail_limit = 3
auth_fail_window = 10m
auth_lockout = 30m
max_errors = 5
max_junk_commands = 10
$3
CONF
}
conf a "" ""
conf b "" ""
conf drop "" "suppressed = drop"
conf trust "trusted_networks = 127.0.0.1/32
trusted_user = tuser" ""

ctl() { "$KURIER_BIN/kurierctl" -c "$E2E_TMP/a.conf" "$@"; }

# adduser NAME DOMAINS [FIELD VALUE]... - a user with the password $pw
# and policy fields set with kurierctl user set --rate/--rcpt-rate/
# --rcpt-domains (values written as kurierctl stores them: "2/h").
adduser() {
	local name=$1 domains=$2
	printf '%s\n' "$pw" | ctl user add "$name" --domains "$domains" >>"$E2E_TMP/users.log" 2>&1
	check_eq "kurierctl user add $name" "$?" 0
	shift 2
	while [ $# -ge 2 ]; do
		ctl user set "$name" "--${1//_/-}" "$2" >>"$E2E_TMP/users.log" 2>&1
		check_eq "kurierctl user set $name --${1//_/-} $2" "$?" 0
		check_eq "user $name: $1 is $2" "$(rcli hget "e2e:user:$name" "$1")" "$2"
		shift 2
	done
}
adduser rl rl.example rate 3/10s
adduser big big.example rate 5/h
adduser dflt dflt.example
adduser rr rr.example rate 1000/h rcpt_rate 4/h
adduser dual dual.example rate 2/h
adduser hdr hdr.example rate 1000/h
adduser rd rd.example rate 1000/h rcpt_domains ok.example
adduser tuser t.example rate 2/h

for k in a b drop trust; do
	start_k "$k"
	check_eq "kurierd ($k) starts" "$?" 0
done

queued='^250 2\.0\.0 Ok: queued as [0-9A-Z]{16}$'
qcount() { rcli --scan --pattern 'e2e:m:*' | wc -l; }
qid_of() { printf '%s' "$1" | grep -oE 'queued as [0-9A-Z]{16}' | awk '{print $3}'; }

# authed USER - the steps of a session on submission up to AUTH (4 replies).
authed() { printf '%s\n' EHLO STARTTLS EHLO "AUTH:$1:$pw"; }

# msgs USER N RCPT - steps for N messages from USER@DOMAIN to RCPT (4
# replies each: MAIL, RCPT, DATA, end of data).
msgs() {
	local user=$1 n=$2 rcpt=$3 domain i f
	domain=$(rcli hget "e2e:user:$user" domains | awk '{print $1}')
	f=$(msgfile "ok-$user" "From: <$user@$domain>" "To: <$rcpt>")
	for i in $(seq "$n"); do
		printf '%s\n' "MAIL FROM:<$user@$domain>" "RCPT TO:<$rcpt>" DATA "MSG:$f"
	done
}

run() { local port=$1; shift; mapfile -t steps; smtp "$port" "$@" "${steps[@]}"; }

# --- message rate: per-user override 3/10s -----------------------------------------
out=$( { authed rl; msgs rl 3 to@example.org; printf '%s\n' "MAIL FROM:<rl@rl.example>" "RCPT TO:<to@example.org>"; } | run "$a_port")
for i in 1 2 3; do
	check_match "rate 3/10s (override): message $i accepted" "$(line $((4 + 4 * i)) "$out")" "$queued"
done
check_match "rate 3/10s: the 4th message refused at RCPT with 450 4.7.1" "$(line 18 "$out")" '^450 4\.7\.1 '
echo "# 4th message: $(line 18 "$out")"
t0=$(date +%s)
again=""
# Tried until the window has passed; the deadline only keeps a broken
# window from hanging the test.
while [ $(($(date +%s) - t0)) -lt 120 ]; do
	r=$( { authed rl; printf '%s\n' "MAIL FROM:<rl@rl.example>" "RCPT TO:<to@example.org>"; } | run "$a_port" | sed -n 6p)
	case $r in 250*) again=$(($(date +%s) - t0)); break ;; esac
	sleep 0.5
done
echo "# allowed again after ${again:-never} s"
check_match "rate 3/10s: allowed again as the window passes" "${again:-never}" '^[0-9]+$'
out=$( { authed rl; msgs rl 1 to@example.org; } | run "$a_port")
check_match "rate 3/10s: the message after the window is queued" "$(line 8 "$out")" "$queued"

# --- the [policy] default 4/1h against overrides ----------------------------------------
out=$( { authed dflt; msgs dflt 4 to@example.org; printf '%s\n' "MAIL FROM:<dflt@dflt.example>" "RCPT TO:<to@example.org>"; } | run "$a_port")
for i in 1 2 3 4; do
	check_match "default rate 4/1h: message $i accepted" "$(line $((4 + 4 * i)) "$out")" "$queued"
done
check_match "default rate 4/1h: the 5th refused at RCPT with 450 4.7.1" "$(line 22 "$out")" '^450 4\.7\.1 '
out=$( { authed big; msgs big 5 to@example.org; printf '%s\n' "MAIL FROM:<big@big.example>" "RCPT TO:<to@example.org>"; } | run "$a_port")
for i in 1 2 3 4 5; do
	check_match "override 5/1h above the default: message $i accepted" "$(line $((4 + 4 * i)) "$out")" "$queued"
done
check_match "override 5/1h: the 6th refused at RCPT with 450 4.7.1" "$(line 26 "$out")" '^450 4\.7\.1 '

# --- recipient rate 4/1h ---------------------------------------------------------------------
f=$(msgfile rr "From: <rr@rr.example>" "To: <a@example.org>")
out=$( { authed rr; printf '%s\n' "MAIL FROM:<rr@rr.example>" "RCPT TO:<r1@example.org>" "RCPT TO:<r2@example.org>" \
	"RCPT TO:<r3@example.org>" DATA "MSG:$f" "MAIL FROM:<rr@rr.example>" "RCPT TO:<r4@example.org>" \
	"RCPT TO:<r5@example.org>" DATA "MSG:$f" "MAIL FROM:<rr@rr.example>" "RCPT TO:<r6@example.org>"; } | run "$a_port")
check_match "recipient rate 4/1h: 3 recipients queued" "$(line 10 "$out")" "$queued"
check_match "recipient rate 4/1h: the 4th recipient accepted" "$(line 12 "$out")" '^250 2\.1\.5'
echo "# 5th recipient: $(line 13 "$out")"
check_match "recipient rate 4/1h: the 5th refused at RCPT with 450 4.7.1" "$(line 13 "$out")" '^450 4\.7\.1 '
check_match "recipient rate 4/1h: the message with the 4th is queued" "$(line 15 "$out")" "$queued"
id=$(qid_of "$(line 15 "$out")")
check_match "recipient rate 4/1h: it holds r4 only" "$(rcli hget "e2e:m:$id" env | tr -c '[:print:]' ' ')" 'r4@example\.org'
check_eq "recipient rate 4/1h: not r5" "$(rcli hget "e2e:m:$id" env | grep -c r5@)" 0
check_match "recipient rate 4/1h: the next message's RCPT refused too" "$(line 17 "$out")" '^450 4\.7\.1 '

# --- two kurierd on one Redis share the counters --------------------------------------------------
out=$( { authed dual; msgs dual 2 to@example.org; } | run "$a_port")
check_match "shared counters: message 1 of 2/1h through kurierd a" "$(line 8 "$out")" "$queued"
check_match "shared counters: message 2 of 2/1h through kurierd a" "$(line 12 "$out")" "$queued"
out=$( { authed dual; printf '%s\n' "MAIL FROM:<dual@dual.example>" "RCPT TO:<to@example.org>"; } | run "$b_port")
check_match "shared counters: the 3rd through kurierd b refused with 450 4.7.1" "$(line 6 "$out")" '^450 4\.7\.1 '

# --- AUTH lock-out: 3 failures from 127.0.0.2 ---------------------------------------------------------
out=$(smtp "$a_port" --src 127.0.0.2 EHLO STARTTLS EHLO AUTH:hdr:wrong-1 AUTH:hdr:wrong-2 "AUTH:hdr:$pw")
check_match "lock-out: failure 1 from 127.0.0.2 gets 535 5.7.8" "$(line 4 "$out")" '^535 5\.7\.8'
check_match "lock-out: failure 2 gets 535 5.7.8" "$(line 5 "$out")" '^535 5\.7\.8'
check_match "lock-out: after 2 failures (limit 3) the right password still works" "$(line 6 "$out")" '^235 2\.7\.0'
out=$(smtp "$a_port" --src 127.0.0.2 EHLO STARTTLS EHLO AUTH:hdr:wrong-3 "AUTH:hdr:$pw")
check_match "lock-out: failure 3 gets 535 5.7.8 (and locks)" "$(line 4 "$out")" '^535 5\.7\.8'
echo "# locked: $(line 5 "$out")"
check_match "lock-out: then the right password gets 454 4.7.0" "$(line 5 "$out")" '^454 4\.7\.0 .*[Tt]oo many failed'
out=$(smtp "$b_port" --src 127.0.0.2 EHLO STARTTLS EHLO "AUTH:hdr:$pw")
check_match "lock-out: shared, kurierd b says 454 4.7.0 to 127.0.0.2 too" "$(line 4 "$out")" '^454 4\.7\.0'
out=$(smtp "$a_port" --src 127.0.0.1 EHLO STARTTLS EHLO "AUTH:hdr:$pw")
check_match "lock-out: 127.0.0.1 still authenticates" "$(line 4 "$out")" '^235 2\.7\.0'
check_eq "lock-out: logged once" "$(cat "$E2E_TMP"/{a,b}.log | grep -c 'auth_lockout.*client=127\.0\.0\.2')" 1

# --- the suppression list ------------------------------------------------------------------------------------
# 2025-11-22T00:00:00Z in ms; entries as policy/policy.h describes them.
rcli hset 'e2e:sup:*' sup@example.org "hard-bounce 1763769600000 550 5.1.1 no such user" >/dev/null
rcli hset 'e2e:sup:hdr.example' scoped@example.org "complaint 1763769600000 abuse report" >/dev/null
rcli sadd 'e2e:sup:scopes' '*' hdr.example >/dev/null
out=$( { authed hdr; printf '%s\n' "MAIL FROM:<hdr@hdr.example>" "RCPT TO:<sup@example.org>" "RCPT TO:<scoped@example.org>" \
	"RCPT TO:<fine@example.org>" RSET; } | run "$a_port")
echo "# suppressed: $(line 6 "$out")"
check_match "suppressed (global): 550 5.7.1 recipient suppressed (hard bounce on 2025-11-22)" "$(line 6 "$out")" \
	'^550 5\.7\.1 recipient suppressed \(hard bounce on 2025-11-22\)'
check_match "suppressed (scope hdr.example): 550 5.7.1 for hdr.example" "$(line 7 "$out")" '^550 5\.7\.1 recipient suppressed \(complaint'
check_match "suppressed: another recipient is accepted" "$(line 8 "$out")" '^250 2\.1\.5'
rcli hset 'e2e:sup:hdr.example' scoped@ok.example "manual 1763769600000 test" >/dev/null
out=$( { authed rd; printf '%s\n' "MAIL FROM:<rd@rd.example>" "RCPT TO:<scoped@ok.example>" RSET; } | run "$a_port")
check_match "suppressed under hdr.example only: rd.example may send to it" "$(line 6 "$out")" '^250 2\.1\.5'

before=$(qcount)
f=$(msgfile drop "From: <hdr@hdr.example>" "To: <sup@example.org>")
out=$( { authed hdr; printf '%s\n' "MAIL FROM:<hdr@hdr.example>" "RCPT TO:<sup@example.org>" DATA "MSG:$f"; } | run "$drop_port")
check_match "suppressed = drop: RCPT gets 250 2.1.5" "$(line 6 "$out")" '^250 2\.1\.5'
check_eq "suppressed = drop: every recipient dropped: 250, nothing queued" "$(line 8 "$out")" \
	"250 2.0.0 Ok: every recipient is suppressed; nothing was queued"
check_eq "suppressed = drop: the queue did not grow" "$(qcount)" "$before"
check_match "suppressed = drop: the dropped recipient is logged" "$(grep 'event=dropped' "$E2E_TMP/drop.log")" 'to="?sup@example\.org'
out=$( { authed hdr; printf '%s\n' "MAIL FROM:<hdr@hdr.example>" "RCPT TO:<sup@example.org>" "RCPT TO:<kept@example.org>" DATA "MSG:$f"; } | run "$drop_port")
check_match "suppressed = drop: with another recipient the message is queued" "$(line 9 "$out")" "$queued"
id=$(qid_of "$(line 9 "$out")")
env=$(rcli hget "e2e:m:$id" env | tr -c '[:print:]' ' ')
check_match "suppressed = drop: the queued message has the other recipient" "$env" 'kept@example\.org'
check_eq "suppressed = drop: and not the suppressed one" "$(printf '%s' "$env" | grep -c 'sup@example')" 0
check_match "suppressed = drop: the dropped one logged with the queue id" "$(grep 'event=dropped' "$E2E_TMP/drop.log")" "id=$id .*sup@example\.org"

# --- header From ------------------------------------------------------------------------------------------------
f0=$(msgfile nofrom "To: <to@example.org>")
f2=$(msgfile twofrom "From: <hdr@hdr.example>" "From: <hdr@hdr.example>" "To: <to@example.org>")
fm=$(msgfile twomb "From: <hdr@hdr.example>, <other@hdr.example>" "To: <to@example.org>")
fo=$(msgfile otherdom "From: <hdr@other.example>" "To: <to@example.org>")
fk=$(msgfile goodfrom "From: Hdr <hdr@hdr.example>" "To: <to@example.org>")
steps=()
for f in "$f0" "$f2" "$fm" "$fo" "$fk"; do
	steps+=("MAIL FROM:<hdr@hdr.example>" "RCPT TO:<to@example.org>" DATA "MSG:$f")
done
out=$( { authed hdr; printf '%s\n' "${steps[@]}"; } | run "$a_port")
echo "# no From: $(line 8 "$out")"
check_match "header: no From gets 550 5.6.0" "$(line 8 "$out")" '^550 5\.6\.0 '
check_match "header: two From fields get 550 5.6.0" "$(line 12 "$out")" '^550 5\.6\.0 '
check_match "header: a From with two mailboxes gets 550 5.6.0" "$(line 16 "$out")" '^550 5\.6\.0 '
check_match "header: a From of another domain gets 550 5.7.1" "$(line 20 "$out")" '^550 5\.7\.1 '
check_match "header: a From of the user's domain is queued" "$(line 24 "$out")" "$queued"

# --- sender and recipient domains -------------------------------------------------------------------------------
out=$( { authed rd; printf '%s\n' "MAIL FROM:<rd@other.example>" "MAIL FROM:<rd@rd.example>" "RCPT TO:<x@ok.example>" \
	"RCPT TO:<x@other.example>" RSET; } | run "$a_port")
check_match "sender: MAIL FROM another domain gets 550 5.7.1" "$(line 5 "$out")" '^550 5\.7\.1 '
check_match "recipient domains: ok.example accepted" "$(line 7 "$out")" '^250 2\.1\.5'
check_match "recipient domains: other.example gets 550 5.7.1" "$(line 8 "$out")" '^550 5\.7\.1 Recipient domain'

# --- trusted networks --------------------------------------------------------------------------------------------
ft=$(msgfile trusted "From: <t@t.example>" "To: <to@example.org>")
fto=$(msgfile trusted-other "From: <t@other.example>" "To: <to@example.org>")
out=$(smtp "$trust_port" --src 127.0.0.1 EHLO "MAIL FROM:<t@other.example>" "MAIL FROM:<t@t.example>" \
	"RCPT TO:<sup@example.org>" "RCPT TO:<to@example.org>" DATA "MSG:$ft" \
	"MAIL FROM:<t@t.example>" "RCPT TO:<to@example.org>" DATA "MSG:$fto" \
	"MAIL FROM:<t@t.example>" "RCPT TO:<to@example.org>" DATA "MSG:$ft" \
	"MAIL FROM:<t@t.example>" "RCPT TO:<to@example.org>")
check_match "trusted: MAIL FROM another domain gets 550 5.7.1 (the user's sender rules)" "$(line 2 "$out")" '^550 5\.7\.1 '
check_match "trusted: plain-text MAIL without AUTH accepted" "$(line 3 "$out")" '^250 2\.1\.0'
check_match "trusted: a suppressed recipient refused" "$(line 4 "$out")" '^550 5\.7\.1 recipient suppressed'
check_match "trusted: message queued" "$(line 7 "$out")" "$queued"
id=$(qid_of "$(line 7 "$out")")
head=$(rcli hget "e2e:m:$id" head | tr -d '\r' | tr '\n\t' '  ')
check_match "trusted: Received says with ESMTP (not ESMTPA)" "$head" "^Received: from client\.test .*with ESMTP id $id "
check_match "trusted: Received says it acted as the trusted user" "$head" '\(trusted network, acting as user tuser\)'
check_match "trusted: the envelope's user is tuser" "$(ctl queue show "$id" 2>&1)" 'user +tuser'
check_match "trusted: header From of another domain gets 550 5.7.1" "$(line 11 "$out")" '^550 5\.7\.1 '
check_match "trusted: the 2nd message of tuser's 2/1h queued" "$(line 15 "$out")" "$queued"
check_match "trusted: the 3rd refused at RCPT with 450 4.7.1 (tuser's rate)" "$(line 17 "$out")" '^450 4\.7\.1 '
out=$(smtp "$trust_port" --src 127.0.0.2 EHLO "MAIL FROM:<t@t.example>")
check_match "trusted: 127.0.0.2 (not trusted) gets 530 5.7.0" "$(line 2 "$out")" '^530 5\.7\.0'
rcli hset e2e:user:tuser enabled 0 >/dev/null
out=$(smtp "$trust_port" --src 127.0.0.1 EHLO "MAIL FROM:<t@t.example>")
check_eq "trusted: a disabled trusted_user gets 451 4.3.5" "$(line 2 "$out")" \
	"451 4.3.5 Server configuration problem: trusted_user tuser does not exist"
check_match "trusted: and an error with a hint is logged" "$(grep 'trusted_user_missing' "$E2E_TMP/trust.log")" 'hint='
rcli hset e2e:user:tuser enabled 1 >/dev/null

# --- junk commands and protocol errors ---------------------------------------------------------------------------
steps=(EHLO)
for _ in $(seq 10); do steps+=(NOOP); done
out=$(smtp "$a_port" "${steps[@]}" NOOP READ)
check_eq "junk: 10 NOOPs answered 250 (limit 10)" "$(printf '%s\n' "$out" | sed -n 2,11p | grep -c '^250 ')" 10
check_eq "junk: the 11th gets 421" "$(line 12 "$out")" \
	"421 4.7.0 kurier.test Too many commands without sending mail, closing connection"
check_match "junk: and the connection is closed" "$(line 13 "$out")" '^EOF'
out=$(smtp "$a_port" EHLO RSET RSET RSET "VRFY x" "VRFY y" HELP HELP EHLO HELO NOOP EXPN READ)
check_match "junk: RSET VRFY HELP EHLO HELO NOOP count alike: the 10th answered" "$(line 11 "$out")" '^250 '
check_match "junk: the 11th (EXPN) gets 421" "$(line 12 "$out")" '^421 4\.7\.0 .*Too many commands without sending mail'
fk=$(msgfile junkreset "From: <hdr@hdr.example>" "To: <to@example.org>")
steps=(EHLO STARTTLS EHLO "AUTH:hdr:$pw")
for _ in $(seq 10); do steps+=(NOOP); done
steps+=("MAIL FROM:<hdr@hdr.example>" "RCPT TO:<to@example.org>" DATA "MSG:$fk")
for _ in $(seq 10); do steps+=(NOOP); done
out=$(smtp "$a_port" "${steps[@]}" NOOP)
check_match "junk: an accepted message resets the count (message queued)" "$(line 18 "$out")" "$queued"
check_eq "junk: 10 more NOOPs after it answered 250" "$(printf '%s\n' "$out" | sed -n 19,28p | grep -c '^250 ')" 10
check_match "junk: the 11th after it gets 421" "$(line 29 "$out")" '^421 4\.7\.0'
out=$(smtp "$a_port" EHLO FOO FOO FOO FOO FOO READ)
check_eq "errors: 5 errors (max_errors 5) answered 500" "$(printf '%s\n' "$out" | sed -n 2,6p | grep -c '^500 ')" 5
check_eq "errors: then 421" "$(line 7 "$out")" "421 4.7.0 kurier.test Too many errors, closing connection"

# --- clients that leave while policy is asked -----------------------------------------------------------------------
steps=(EHLO STARTTLS EHLO "AUTH:hdr:$pw" "SENDQ:MAIL FROM:<hdr@hdr.example>")
for i in $(seq 30); do steps+=("SENDQ:RCPT TO:<gone$i@example.org>"); done
out=$(smtp "$a_port" "${steps[@]}" CLOSE)
check_match "a client closing with RCPTs waiting for policy: sent and closed" "$(printf '%s' "$out" | tail -1)" '^closed$'
plain=$(printf '\0hdr\0%s' "$pw" | base64 -w0)
out=$(smtp "$a_port" --src 127.0.0.2 EHLO STARTTLS EHLO "SENDQ:AUTH PLAIN $plain" CLOSE)
out=$(smtp "$a_port" EHLO STARTTLS EHLO "SENDQ:AUTH PLAIN $(printf '\0hdr\0wrong' | base64 -w0)" CLOSE)
sleep 1
out=$( { authed hdr; msgs hdr 1 to@example.org; } | run "$a_port")
check_match "after those, kurierd (a) still serves: message queued" "$(line 8 "$out")" "$queued"
sessions_closed() { [ "$(grep -c 'event=connect ' "$1")" = "$(grep -c 'event=disconnect ' "$1")" ]; }
wait_for 5 sessions_closed "$E2E_TMP/a.log"
check_eq "every session of kurierd (a) is closed" "$?" 0

# --- a restart keeps the lock-out and the rate counters ----------------------------------------------------------
stop_k a
start_k a 2
check_eq "kurierd (a) restarts" "$?" 0
out=$(smtp "$a_port" --src 127.0.0.2 EHLO STARTTLS EHLO "AUTH:hdr:$pw")
check_match "after a restart 127.0.0.2 is still locked out (454 4.7.0)" "$(line 4 "$out")" '^454 4\.7\.0'
out=$( { authed dual; printf '%s\n' "MAIL FROM:<dual@dual.example>" "RCPT TO:<to@example.org>"; } | run "$a_port")
check_match "after a restart dual's 2/1h is still used up (450 4.7.1)" "$(line 6 "$out")" '^450 4\.7\.1 '

# --- the rule of each refusal, logged and counted --------------------------------------------------------------------
logs=$(cat "$E2E_TMP"/{a,b,drop,trust}.log)
for rule in rate.messages rate.recipients auth.lockout suppressed sender.envelope sender.header header.from \
	recipient.domain session.junk session.errors trusted_user; do
	check_match "refusal logged with rule=$rule" "$(printf '%s\n' "$logs" | grep 'event=refused')" "rule=$rule "
	check_match "refusal counted in Redis: $rule" "$(rcli hget e2e:refusals "$rule")" '^[1-9][0-9]*$'
done
check_match "a refusal's log line names session, client and user" \
	"$(printf '%s\n' "$logs" | grep 'event=refused' | grep 'rule=rate.messages' | head -1)" 'sid=[0-9a-f]+ client=127\.0\.0\.1 user=rl'

# --- Redis stopped: 451, never an unchecked 250 ------------------------------------------------------------------------
fr=$(msgfile redisdown "From: <hdr@hdr.example>" "To: <to@example.org>")
# Each client says when it has reached its step, and goes on once Redis is gone.
go=$E2E_TMP/redis-stopped
smtp "$a_port" EHLO STARTTLS EHLO "AUTH:hdr:$pw" "MAIL FROM:<hdr@hdr.example>" "PAUSE:$E2E_TMP/here1:$go" "RCPT TO:<to@example.org>" >"$E2E_TMP/down1.out" &
d1=$!
smtp "$a_port" EHLO STARTTLS EHLO "AUTH:hdr:$pw" "MAIL FROM:<hdr@hdr.example>" "RCPT TO:<to@example.org>" DATA "PAUSE:$E2E_TMP/here2:$go" "MSG:$fr" >"$E2E_TMP/down2.out" &
d2=$!
smtp "$trust_port" EHLO "MAIL FROM:<t@t.example>" "PAUSE:$E2E_TMP/here3:$go" "RCPT TO:<to@example.org>" >"$E2E_TMP/down3.out" &
d3=$!
all_here() { [ -e "$E2E_TMP/here1" ] && [ -e "$E2E_TMP/here2" ] && [ -e "$E2E_TMP/here3" ]; }
wait_for 120 all_here
check_eq "Redis stopped: the three clients reached their step" "$?" 0
downs() { grep -c 'event=redis_down' "$E2E_TMP/$1.log"; }
down_a=$(downs a) down_trust=$(downs trust)
rcli shutdown nosave >/dev/null 2>&1
noticed() { [ "$(downs a)" -gt "$down_a" ] && [ "$(downs trust)" -gt "$down_trust" ]; }
wait_for 60 noticed
check_eq "Redis stopped: both kurierd noticed" "$?" 0
touch "$go"
wait "$d1" "$d2" "$d3"
check_match "Redis stopped: RCPT gets 451 4.3.0" "$(line 7 "$(cat "$E2E_TMP/down1.out")")" \
	'^451 4\.3\.0 Policy service unavailable, try again later$'
check_match "Redis stopped: the end of DATA gets 451 4.3.0" "$(line 9 "$(cat "$E2E_TMP/down2.out")")" '^451 4\.3\.0 '
check_match "Redis stopped: RCPT of a trusted client gets 451 4.3.0" "$(line 4 "$(cat "$E2E_TMP/down3.out")")" '^451 4\.3\.0 '

for k in a b drop trust; do
	stop_k "$k"
done
e2e_done
