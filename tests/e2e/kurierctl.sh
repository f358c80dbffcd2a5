#!/usr/bin/env bash
# kurierctl.sh - end-to-end test of kurierctl: "check" without a network
# (including its [relay]/[policy] summary), then every queue command
# against a real redis-server on a free port, with messages enqueued by
# qload.  Corruption is made with redis-cli on the key layout of
# queue/lua/*.lua (PREFIX m:ID hash, active/corrupt sorted sets); the
# throttle and refusal records queue stats shows, on that of
# policy/policy.h (PREFIX throttle, PREFIX refusals).
#
# Environment: KURIER_BIN (kurierctl), KURIER_TOOLS (qload),
# KURIER_REDIS_CONF (deploy/redis.conf); see lib.sh.

source "$(dirname "$0")/lib.sh"

e2e_require KURIER_BIN KURIER_TOOLS KURIER_REDIS_CONF

e2e_init

QLOAD=$KURIER_TOOLS/qload
UNKNOWN=01M3250V00NTPCQX   # well-formed, from 2021: never in this queue

# ids IN - the queue ids (first column) of kurierctl queue list output, sorted.
ids() {
	printf '%s\n' "$1" | awk 'length($1) == 16 && $1 ~ /^[0-9A-Z]+$/ { print $1 }' | sort
}

# --- check: no network --------------------------------------------------------

ctl_conf

check_exit "check: good config exits 0" 0 "$CTL" -c "$CONF" check
check_match "check: good config prints FILE: ok" "$E2E_OUT" "kurier\.conf: ok"
check_match "check: summary names the redis address and prefix" "$E2E_OUT" \
	"127\.0\.0\.1:$PORT \(prefix \"e2e:\""
check_match "check: summary gives the retry schedule" "$E2E_OUT" "retry +5m, 10m, 30m"
check_exit "check: -c after the command" 0 "$CTL" check -c "$CONF"
check_match "check: no trusted networks by default" "$E2E_OUT" "trusted networks +none$"
check_match "check: default rates" "$E2E_OUT" "rate +none \(no limit\) per user$"
check_match "check: default suppressed mode" "$E2E_OUT" "suppressed +reject \(550 5\.7\.1 at RCPT\); hard bounces added to the list$"
check_match "check: default lock-out" "$E2E_OUT" "auth lock-out +5 failures from one address within 10m lock it out for 30m$"

POLCONF=$E2E_TMP/policy.conf
write_conf "$POLCONF" "$PORT" "
[relay]
inbound =
trusted_networks = 127.0.0.1/32, 10.1.0.0/16, ::1
trusted_user = app

[policy]
rate = 500/h, 20/min
rcpt_rate = 5000/d
suppressed = drop
suppress_bounces = no
auth_fail_limit = 3
auth_fail_window = 5m
auth_lockout = 1h"
check_exit "check: policy config exits 0" 0 "$CTL" -c "$POLCONF" check
check_match "check: trusted networks and the user they act as" "$E2E_OUT" \
	"trusted networks +127\.0\.0\.1/32, 10\.1\.0\.0/16, ::1/128 \(no TLS or AUTH needed; they act as user app\)$"
check_match "check: [policy] rate" "$E2E_OUT" "^  rate +500/h, 20/min per user$"
check_match "check: [policy] rcpt_rate" "$E2E_OUT" "^  rcpt rate +5000/d per user$"
check_match "check: suppressed = drop, bounces not added" "$E2E_OUT" \
	"suppressed +drop \(accepted with 250, never delivered\); hard bounces not added$"
check_match "check: lock-out settings" "$E2E_OUT" "auth lock-out +3 failures from one address within 5m lock it out for 1h$"

BAD=$E2E_TMP/badkey.conf
printf '[server]\nhostname = kurier.test\nfrobnicate = yes\n' >"$BAD"
check_exit "check: unknown key exits 1" 1 "$CTL" -c "$BAD" check
check_match "check: unknown key names FILE:3" "$E2E_OUT" \
	"^kurierctl: .*badkey\.conf:3: unknown key \"frobnicate\" in \[server\]"

BAD=$E2E_TMP/baddur.conf
printf '[redis]\nconnect_timeout = soonish\n' >"$BAD"
check_exit "check: bad duration exits 1" 1 "$CTL" -c "$BAD" check
check_match "check: bad duration names FILE:2" "$E2E_OUT" \
	"baddur\.conf:2: \[redis\] connect_timeout: \"soonish\" is not a duration"

BAD=$E2E_TMP/badsect.conf
printf '[server]\nhostname = kurier.test\n\n[nosuch]\nkey = 1\n' >"$BAD"
check_exit "check: unknown section exits 1" 1 "$CTL" -c "$BAD" check
check_match "check: unknown section names FILE:4 (its header)" "$E2E_OUT" \
	"badsect\.conf:4: unknown section \[nosuch\]"

check_exit "check: missing file exits 1" 1 "$CTL" -c "$E2E_TMP/missing.conf" check
check_match "check: missing file says so" "$E2E_OUT" "missing\.conf: cannot open: No such file"

check_exit "queue command with a bad config exits 1" 1 "$CTL" -c "$E2E_TMP/badkey.conf" queue stats

# --- usage ----------------------------------------------------------------------

check_exit "help exits 0" 0 "$CTL" help
check_match "help lists the queue commands" "$E2E_OUT" "queue flush .*same as retry --all"
check_exit "--help exits 0" 0 "$CTL" --help
check_exit "unknown command exits 2" 2 "$CTL" -c "$CONF" frobnicate
check_match "unknown command: one line with a hint" "$E2E_OUT" \
	"^kurierctl: unknown command \"frobnicate\": see kurierctl help$"
check_exit "unknown queue command exits 2" 2 "$CTL" -c "$CONF" queue frobnicate
check_exit "unknown option exits 2" 2 "$CTL" --frobnicate
check_exit "queue show without an id exits 2" 2 "$CTL" -c "$CONF" queue show
check_exit "queue list --state bogus exits 2" 2 "$CTL" -c "$CONF" queue list --state bogus
check_exit "queue list --limit without a value exits 2" 2 "$CTL" -c "$CONF" queue list --limit
check_exit "malformed id exits 1" 1 "$CTL" -c "$CONF" queue show not-an-id
check_match "malformed id: says what an id is" "$E2E_OUT" \
	"^kurierctl: \"not-an-id\" is not a queue id \(16 characters, e\.g\. 01M3250V00NTPCQX\)$"

# --- Redis unreachable ------------------------------------------------------------

DEAD=$(free_port)
write_conf "$E2E_TMP/dead.conf" "$DEAD" "connect_timeout = 500ms"
# Under a 60 s guard: exit 1 (not timeout's 124) means kurierctl gave up
# by itself instead of retrying, however slow the machine.
check_exit "redis unreachable: gives up by itself and exits 1" 1 \
	timeout 60 "$CTL" -c "$E2E_TMP/dead.conf" queue stats
check_match "redis unreachable: says so, with the cause and the file" "$E2E_OUT" \
	"^kurierctl: cannot reach Redis at 127\.0\.0\.1:$DEAD \(.+\): is redis-server running\? check \[redis\] address in .*dead\.conf$"

# --- queue commands against Redis -----------------------------------------------------

start_redis "$E2E_TMP/redis" "$PORT" || e2e_abort "redis-server starts"

# 3 messages to alpha+beta, 2 to beta only: 5 messages, 8 jobs.
AB=$("$QLOAD" -c "$CONF" -n 3 -r a@alpha.example -r b@beta.example -d 10)
B=$("$QLOAD" -c "$CONF" -n 2 -r c@beta.example -d 10)
ALL=$(printf '%s\n%s\n' "$AB" "$B" | sort)
check_eq "qload enqueued 5 messages" "$(printf '%s\n' "$ALL" | grep -c .)" 5
AB1=$(printf '%s\n' "$AB" | sed -n 1p)
AB2=$(printf '%s\n' "$AB" | sed -n 2p)
AB3=$(printf '%s\n' "$AB" | sed -n 3p)
B1=$(printf '%s\n' "$B" | sed -n 1p)
B2=$(printf '%s\n' "$B" | sed -n 2p)

check_exit "queue stats exits 0" 0 "$CTL" -c "$CONF" queue stats
check_match "queue stats: 5 active" "$E2E_OUT" "active +5$"
check_match "queue stats: 5 enqueued" "$E2E_OUT" "enqueued +5$"
check_match "queue stats: alpha.example row" "$E2E_OUT" "alpha\.example +transactional +3 +0 +0$"
check_match "queue stats: beta.example row" "$E2E_OUT" "beta\.example +transactional +5 +0 +0$"
check_match "queue stats: busiest destination first" \
	"$(printf '%s\n' "$E2E_OUT" | grep -A1 'DOMAIN' | tail -1)" "^  beta\.example "
check_eq "queue stats: no throttled destination yet" \
	"$(printf '%s\n' "$E2E_OUT" | grep -A1 '^throttled destinations$' | tail -1)" "  (none)"
check_eq "queue stats: no refusal yet" \
	"$(printf '%s\n' "$E2E_OUT" | grep -A1 '^policy refusals by rule$' | tail -1)" "  (none)"

# A group suspended for 5 more minutes, one whose suspension ended (its
# level still remembered), and refusals counted by rule, as the policy
# module stores them (the Redis clock: TIME).
NOW=$(redis-cli -p "$PORT" time | { read -r s; read -r us; echo $((s * 1000 + us / 1000)); })
redis-cli -p "$PORT" hset e2e:throttle gmail.com "$((NOW + 300000)) 2 421 4.7.28 unusual rate of mail" \
	yahoo.com "$((NOW - 60000)) 1 421 4.7.0 [TSS04] temporarily deferred" >/dev/null
redis-cli -p "$PORT" hset e2e:refusals rate.messages 12 auth.lockout 3 suppressed 1 >/dev/null
check_exit "queue stats with throttles and refusals exits 0" 0 "$CTL" -c "$CONF" queue stats
check_match "queue stats: throttled header" "$E2E_OUT" "^  GROUP +LEVEL +STATE \(UTC\) +REPLY$"
check_match "queue stats: suspended group, level, until, reply" "$E2E_OUT" \
	"^  gmail\.com +2 +suspended until 20[0-9-]+ [0-9:]+ \(in (5m|4m[0-9]+s)\) +421 4\.7\.28 unusual rate of mail$"
check_match "queue stats: resumed group" "$E2E_OUT" \
	"^  yahoo\.com +1 +resumed at 20[0-9-]+ [0-9:]+ +421 4\.7\.0 \[TSS04\] temporarily deferred$"
check_eq "queue stats: refusals by rule, sorted, after their header" \
	"$(printf '%s\n' "$E2E_OUT" | sed -n '/^policy refusals by rule$/,$p' | tr -s ' ' | tr '\n' ';')" \
	"policy refusals by rule; auth.lockout 3; rate.messages 12; suppressed 1;"
redis-cli -p "$PORT" del e2e:throttle e2e:refusals >/dev/null

check_exit "queue list exits 0" 0 "$CTL" -c "$CONF" queue list
check_eq "queue list: the 5 enqueued ids" "$(ids "$E2E_OUT")" "$ALL"
check_match "queue list: header first" "$(printf '%s\n' "$E2E_OUT" | head -1)" "^ID +ARRIVAL"
check_eq "queue list: total last" "$(printf '%s\n' "$E2E_OUT" | tail -1)" "5 messages"
check_match "queue list: sender, recipients, state, domains" "$E2E_OUT" \
	"$AB1 .* <load@shop\.example> +2 +2 queued +alpha\.example,beta\.example"

check_exit "queue list --domain exits 0" 0 "$CTL" -c "$CONF" queue list --domain ALPHA.example
check_eq "queue list --domain: only that domain (case-insensitive)" "$(ids "$E2E_OUT")" \
	"$(printf '%s\n' "$AB" | sort)"
check_exit "queue list --limit exits 0" 0 "$CTL" queue list --limit 2 -c "$CONF"
check_eq "queue list --limit 2: two messages" "$(ids "$E2E_OUT" | grep -c .)" 2
check_exit "queue list --state deferred exits 0" 0 "$CTL" -c "$CONF" queue list --state deferred
check_eq "queue list --state deferred: none yet" "$(printf '%s\n' "$E2E_OUT" | tail -1)" "0 messages"

check_exit "queue show exits 0" 0 "$CTL" -c "$CONF" queue show "$AB1"
check_match "queue show: id" "$E2E_OUT" "^id +$AB1$"
check_match "queue show: sender" "$E2E_OUT" "sender +<load@shop\.example>"
check_match "queue show: first recipient" "$E2E_OUT" "recipient <a@alpha\.example>"
check_match "queue show: second recipient" "$E2E_OUT" "recipient <b@beta\.example>"
check_match "queue show: recipient state" "$E2E_OUT" "state +queued"
check_match "queue show: job queued" "$E2E_OUT" "beta\.example \(1 recipient\): queued"
check_exit "queue show: lower-case id accepted" 0 "$CTL" -c "$CONF" queue show "${AB1,,}"

for cmd in show retry delete; do
	check_exit "queue $cmd of an unknown id exits 1" 1 "$CTL" -c "$CONF" queue "$cmd" "$UNKNOWN"
	check_match "queue $cmd of an unknown id says so" "$E2E_OUT" \
		"^kurierctl: no message $UNKNOWN in the queue \(delivered messages are kept for \[queue\] retention, then removed\)$"
done

check_exit "queue retry ID exits 0" 0 "$CTL" -c "$CONF" queue retry "$AB1"
check_eq "queue retry ID: its deliveries" "$E2E_OUT" "$AB1: 2 deliveries due now"
check_exit "queue retry --all exits 0" 0 "$CTL" -c "$CONF" queue retry --all
check_eq "queue retry --all: every delivery" "$E2E_OUT" "8 deliveries due now"
check_exit "queue flush exits 0" 0 "$CTL" -c "$CONF" queue flush
check_eq "queue flush: every delivery" "$E2E_OUT" "8 deliveries due now"

check_exit "queue delete exits 0" 0 "$CTL" -c "$CONF" queue delete "$B1"
check_eq "queue delete: says deleted" "$E2E_OUT" "$B1: deleted"
check_exit "queue show after delete exits 1" 1 "$CTL" -c "$CONF" queue show "$B1"
check_exit "queue delete twice exits 1" 1 "$CTL" -c "$CONF" queue delete "$B1"
check_exit "queue stats after delete exits 0" 0 "$CTL" -c "$CONF" queue stats
check_match "queue stats after delete: 4 active" "$E2E_OUT" "active +4$"
check_match "queue stats after delete: 1 deleted" "$E2E_OUT" "deleted +1$"

# An envelope that cannot be read: shown as corrupt (workers quarantine it
# when they claim it; kurierctl only reads).
redis-cli -p "$PORT" HSET "e2e:m:$B2" env garbage >/dev/null
check_exit "queue show of a corrupt record exits 0" 0 "$CTL" -c "$CONF" queue show "$B2"
check_match "queue show of a corrupt record: state" "$E2E_OUT" "state +corrupt"
check_match "queue show of a corrupt record: reason" "$E2E_OUT" "reason +envelope record unreadable"
check_match "queue show of a corrupt record: what is readable" "$E2E_OUT" "header +[0-9]+ bytes"
check_exit "queue list with a corrupt record exits 0" 0 "$CTL" -c "$CONF" queue list
check_match "queue list: corrupt record marked" "$E2E_OUT" "$B2 .* corrupt: envelope record unreadable"

# A quarantined record, as quarantine.lua leaves it, with a reason that
# holds terminal control bytes.
redis-cli -p "$PORT" HSET "e2e:m:$AB3" state corrupt why $'bad \x1b[2J record' >/dev/null
redis-cli -p "$PORT" ZREM e2e:active "$AB3" >/dev/null
redis-cli -p "$PORT" ZADD e2e:corrupt 1 "$AB3" >/dev/null
check_exit "queue list --state corrupt exits 0" 0 "$CTL" -c "$CONF" queue list --state corrupt
check_eq "queue list --state corrupt: the quarantined message" "$(ids "$E2E_OUT")" "$AB3"
check_exit "queue show of a quarantined record exits 0" 0 "$CTL" -c "$CONF" queue show "$AB3"
check_match "queue show of a quarantined record: reason escaped" "$E2E_OUT" 'reason +bad \\x1b\[2J record'
check_eq "queue show never prints a raw control byte" \
	"$(printf '%s' "$E2E_OUT" | tr -d '\n' | LC_ALL=C grep -c '[[:cntrl:]]')" 0
check_exit "queue retry of a quarantined record exits 1" 1 "$CTL" -c "$CONF" queue retry "$AB3"
check_match "queue retry of a quarantined record: says why" "$E2E_OUT" "$AB3 is corrupt"

e2e_done
