#!/usr/bin/env bash
# reports.sh - delivery status notifications end to end: kurierd with the
# relay, deliver and mailbox roles, a real Redis (deploy/redis.conf) and
# a sink MX (sink.py) reached through [deliver] route.* entries; reports
# are read back from the user's INBOX with `kurierctl mailbox list/show`
# and parsed with Python's email package, field by field.
#
# The sink listens on one port on two addresses:
#   127.0.0.2  dest.test: accepts, 550 5.1.1 to bad@ and bad2@dest.test
#   127.0.0.3  slow.test: 451 4.7.1 to every transaction (never delivers)
# Scenarios (run "one"):
#   a 550: one report, Action failed, Status 5.1.1, Remote-MTA, Diagnostic-Code,
#     text/rfc822-headers without the body; two bad recipients of one
#     message share one report, also when they are of two domains (two
#     jobs); ORCPT and ENVID come back
#   NOTIFY=NEVER: no report; NOTIFY=SUCCESS: Action delivered
#   RET=FULL: the whole message as message/rfc822, body included
#   slow.test (two recipients) with delay_warning = 2s and lifetime = 8s:
#     one delay warning naming both (Action delayed, Will-Retry-Until),
#     however often deferred, then the expiry (Action failed, Status 4.4.7)
#   dsn_to_sender = yes: the report also reaches the sender (the sink, via
#     route.shop.example) once, with a null reverse-path; not a suppressed
#     sender; a copy that bounces (gone@shop.example) makes no report
#   the mailbox trim: messages of two other users dated 40 days back
#     (past the default 30d retention), appended before kurierd starts,
#     are expunged by the running kurierd's first trim (a few seconds
#     after start) without any new append; a recent one stays
# Run "two": one node takes and delivers mail, two nodes with only the
# mailbox role report: exactly one report per failure; a consumer that
# read events and died (its events pending, never acknowledged) loses
# none: a reporter claims them after 2 x [queue] lease (2 s here) and
# makes each report once; kill -9 of a reporting node while failures come
# in loses none and duplicates none; after Redis is restarted the reporter
# goes on.
#
# Environment: KURIER_BIN (kurierd, kurierctl), KURIER_TOOLS (mbox_append),
# KURIER_REDIS_CONF; see lib.sh.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/deliver_lib.sh"
e2e_init
trap 'keep_artifacts; e2e_cleanup' EXIT

user=shop
password='Reports-test.pw1'

find_sink_python || e2e_abort "a python3 with aiosmtpd"
rport=$(free_port)
start_redis "$E2E_TMP/redis" "$rport" || e2e_abort "redis-server starts"
sport=$(free_port)
start_sink sink \
	--listen "127.0.0.2:$sport" --reject-rcpt bad@dest.test --reject-rcpt bad2@dest.test \
	--reject-rcpt gone@shop.example --reject-rcpt bad@other.test \
	--listen "127.0.0.3:$sport" --tempfail-first 100000 --tempfail-at rcpt ||
	e2e_abort "sink.py starts"

# rconf NAME PREFIX EXTRA - a config; sets NAME_port (submission).
rconf() {
	local name=$1 p sp
	p=$(free_port)
	sp=$(free_port)
	printf -v "${name}_port" '%s' "$p"
	conf_head "$E2E_TMP/$name.conf" "$E2E_TMP/data" "$rport" "$2"
	cat >>"$E2E_TMP/$name.conf" <<CONF
[relay]
submission = 127.0.0.1:$p
submissions = 127.0.0.1:$sp
inbound =

[queue]
lease = 2s

[policy]
suppress_bounces = no

[deliver]
outbound_ip = 127.0.0.1
spf_preflight = off
retry = 1s
lifetime = 8s
idle_timeout = 1s
connect_timeout = 5s
route.dest.test = [127.0.0.2]:$sport
route.slow.test = [127.0.0.3]:$sport
route.shop.example = [127.0.0.2]:$sport
route.other.test = [127.0.0.2]:$sport

[mailbox]
delay_warning = 2s
pop3 =
pop3s =
imap =
imaps =
$3
CONF
}

# start_node NAME CONF [ROLES] - kurierd (default: every role); waits until it
# listens (relay) and its reporter started (mailbox).
start_node() {
	local name=$1 conf=$2 roles=${3:-relay,deliver,mailbox} log=$E2E_TMP/$1.log i
	"$KURIER_BIN/kurierd" -c "$conf" --roles "$roles" >"$log" 2>&1 &
	KPID[$name]=$!
	track "${KPID[$name]}"
	for i in $(seq 150); do
		kill -0 "${KPID[$name]}" 2>/dev/null || { tail -5 "$log" | sed 's/^/#   /'; return 1; }
		{ [[ $roles != *relay* ]] || grep -q "event=relay_listening" "$log" 2>/dev/null; } &&
			{ [[ $roles != *mailbox* ]] || grep -q "component=report event=started" "$log" 2>/dev/null; } &&
			return 0
		sleep 0.1
	done
	tail -5 "$log" | sed 's/^/#   /'
	return 1
}

# send CONF PORT TAG FROM RCPTS [MAIL_OPTS [RCPT_OPTS]] - submit one message with
# DSN parameters over STARTTLS + AUTH; prints the queue id (or ERROR ...).
SEND_PY='
import smtplib, ssl, sys
port, user, password, tag, sender, rcpts, mopts, ropts = sys.argv[1:9]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", int(port), local_hostname="reports-test.example", timeout=30)
s.starttls(context=ctx); s.ehlo("reports-test.example"); s.login(user, password)
msg = ("From: Shop <%s>\r\nTo: <%s>\r\nSubject: order %s\r\nMessage-ID: <%s@shop.example>\r\n\r\n"
       "Hello, this is message %s.\r\nBODY-MARKER-%s\r\n" % (sender or "orders@shop.example",
       rcpts.split(",")[0], tag, tag, tag, tag))
code, text = s.mail(sender, mopts.split() if mopts else [])
assert code == 250, (code, text)
for r in rcpts.split(","):
    code, text = s.rcpt(r, ropts.split() if ropts else [])
    assert code == 250, (r, code, text)
code, text = s.data(msg.encode())
text = text.decode()
print(text.rsplit("queued as ", 1)[1].split()[0] if code == 250 and "queued as " in text else "ERROR %d %s" % (code, text))
s.quit()
'
send() {
	"$SINK_PY" -c "$SEND_PY" "$1" "$user" "$password" "$2" "$3" "$4" "${5:-}" "${6:-}" 2>&1 | tail -1
}

# inbox CONF - `kurierctl mailbox list shop`.
inbox() {
	kctl "$1" mailbox list "$user" 2>/dev/null
}

# reports_for CONF ID - UIDs of reports about queue id ID (X-Kurier-Queue-Id), one a line.
reports_for() {
	local conf=$1 id=$2 uid
	for uid in $(inbox "$conf" | awk 'NR > 1 && $1 ~ /^[0-9]+$/ && $2 ~ /^[0-9][0-9][0-9][0-9]-/ { print $1 }'); do
		kctl "$conf" mailbox show "$user" "$uid" 2>/dev/null | grep -q "^X-Kurier-Queue-Id: $id" && echo "$uid"
	done
}
nreports() {
	reports_for "$1" "$2" | grep -c .
}
has_reports() {
	[ "$(nreports "$1" "$2")" -ge "$3" ]
}

# field CONF UID WHAT - a field of a stored report, read with Python's email package:
# WHAT is a header name, "ds:NAME[:N]" (the N-th recipient block's field of
# message/delivery-status, N from 0), "part3" (the third part's type), "text",
# "orig" (the third part's content), "nrcpt", "lines" (OK when every line ends in
# CRLF and is at most 998 octets).
FIELD_PY='
import email, email.policy, sys
raw = sys.stdin.buffer.read()
what = sys.argv[1]
if what == "lines":
    lines = raw.split(b"\r\n")
    ok = all(b"\n" not in l and b"\r" not in l and len(l) <= 998 for l in lines)
    print("OK" if ok else "BAD"); sys.exit(0)
m = email.message_from_bytes(raw, policy=email.policy.compat32)
parts = m.get_payload() if m.is_multipart() else []
if what == "ctype":
    print(m.get_content_type(), m.get_param("report-type")); sys.exit(0)
if what == "part3":
    print(parts[2].get_content_type() if len(parts) > 2 else "none"); sys.exit(0)
if what == "text":
    print(parts[0].get_payload().replace("\r\n", " ").replace("\n", " ")); sys.exit(0)
if what == "orig":
    p = parts[2]
    print(p.as_string() if p.is_multipart() or p.get_content_type() == "message/rfc822" else p.get_payload()); sys.exit(0)
if what.startswith("ds:") or what == "nrcpt":
    ds = parts[1]
    blocks = ds.get_payload()          # per-message block, then one per recipient
    if what == "nrcpt":
        print(len(blocks) - 1); sys.exit(0)
    bits = what.split(":")
    name, n = bits[1], (int(bits[2]) + 1 if len(bits) > 2 else None)
    b = blocks[n] if n is not None else blocks[0]
    v = b.get(name)
    print(" ".join(v.split()) if v else ""); sys.exit(0)
v = m.get(what)
print(" ".join(v.split()) if v else "")
'
field() {
	kctl "$1" mailbox show "$user" "$2" 2>/dev/null | "$SINK_PY" -c "$FIELD_PY" "$3"
}

# --- run one: every kind of report ------------------------------------------------------

rconf one one "dsn_to_sender = yes"
printf '%s\n' "$password" | kctl "$E2E_TMP/one.conf" user add "$user" --domains shop.example \
	>"$E2E_TMP/useradd.log" 2>&1
check_eq "kurierctl user add" "$?" 0
printf 'From: a@example.com\r\nSubject: old\r\n\r\nold\r\n' >"$E2E_TMP/old.eml"
printf 'From: a@example.com\r\nSubject: new\r\n\r\nnew\r\n' >"$E2E_TMP/new.eml"
# The recent one first: an append enforces retention for its user, except on what it stores.
old_ms=$((($(date +%s) - 40 * 86400) * 1000))
"$KURIER_TOOLS/mbox_append" -q -c "$E2E_TMP/one.conf" -u keeper "$E2E_TMP/new.eml" 2>>"$E2E_TMP/useradd.log" &&
	"$KURIER_TOOLS/mbox_append" -q -c "$E2E_TMP/one.conf" -u keeper -d "$old_ms" "$E2E_TMP/old.eml" \
		2>>"$E2E_TMP/useradd.log" &&
	"$KURIER_TOOLS/mbox_append" -q -c "$E2E_TMP/one.conf" -u keeper2 -d "$old_ms" "$E2E_TMP/old.eml" \
		2>>"$E2E_TMP/useradd.log"
check_eq "mbox_append: messages dated 40 days back for keeper and keeper2" "$?" 0
start_node one "$E2E_TMP/one.conf" || e2e_abort "kurierd (one) starts"
C=$E2E_TMP/one.conf

# The first trim runs a few seconds after start (cmd/kurierd.c TRIM_FIRST_MS).
if wait_for 30 grep -q "event=mailbox_trim expunged=2" "$E2E_TMP/one.log"; then
	pass "trim: the running kurierd expunges the two old messages"
else
	fail "trim: the running kurierd expunges the two old messages" "$(grep -E 'mailbox_(trim|expired)|trim_failed' "$E2E_TMP/one.log")"
fi
check_eq "trim: keeper's logged with reason retention" \
	"$(grep -c 'event=mailbox_expired user="keeper" folder="INBOX" uid=2 reason=retention' "$E2E_TMP/one.log")" 1
check_eq "trim: keeper2's logged with reason retention" \
	"$(grep -c 'event=mailbox_expired user="keeper2" folder="INBOX" uid=1 reason=retention' "$E2E_TMP/one.log")" 1
check_match "trim: keeper's recent message stays" "$(kctl "$C" mailbox list keeper 2>&1 | tail -1)" \
	"^1 messages? in INBOX of keeper"

id_fail=$(send "$one_port" fail orders@shop.example bad@dest.test "ENVID=order+2B1234" "ORCPT=rfc822;Bad+2BAlias@dest.test")
id_two=$(send "$one_port" two orders@shop.example bad@dest.test,bad2@dest.test,good@dest.test)
id_dom=$(send "$one_port" dom orders@shop.example bad@dest.test,bad@other.test)
id_never=$(send "$one_port" never orders@shop.example bad@dest.test "" "NOTIFY=NEVER")
id_ok=$(send "$one_port" ok orders@shop.example good@dest.test "" "NOTIFY=SUCCESS,FAILURE")
id_plain=$(send "$one_port" plain orders@shop.example good@dest.test)
id_full=$(send "$one_port" full orders@shop.example bad@dest.test "RET=FULL")
id_slow=$(send "$one_port" slow orders@shop.example late@slow.test,late2@slow.test)
id_gone=$(send "$one_port" gone gone@shop.example bad@dest.test)
kctl "$E2E_TMP/one.conf" suppression add blocked@shop.example >/dev/null 2>&1
id_sup=$(send "$one_port" sup blocked@shop.example bad@dest.test)
for v in id_fail id_two id_dom id_never id_ok id_plain id_full id_slow id_gone id_sup; do
	check_match "submitted ($v)" "${!v}" '^[0-9A-Za-z]{16}$'
done

wait_until 30 has_reports "$C" "$id_fail" 1
check_eq "550: one report in the INBOX" "$(nreports "$C" "$id_fail")" 1
u=$(reports_for "$C" "$id_fail" | head -1)
check_eq "550: multipart/report; report-type=delivery-status" "$(field "$C" "$u" ctype)" "multipart/report delivery-status"
check_eq "550: lines CRLF, <= 998" "$(field "$C" "$u" lines)" OK
check_eq "550: From" "$(field "$C" "$u" From)" "Mail Delivery System <MAILER-DAEMON@kurier.test>"
check_eq "550: To the envelope sender" "$(field "$C" "$u" To)" "<orders@shop.example>"
check_eq "550: Subject" "$(field "$C" "$u" Subject)" "Undelivered Mail Returned to Sender"
check_eq "550: Auto-Submitted" "$(field "$C" "$u" Auto-Submitted)" "auto-replied"
check_match "550: Message-ID" "$(field "$C" "$u" Message-ID)" '^<[^ ]+@kurier\.test>$'
check_match "550: Date" "$(field "$C" "$u" Date)" '^[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} \+0000$'
check_eq "550: Reporting-MTA" "$(field "$C" "$u" ds:Reporting-MTA)" "dns; kurier.test"
check_eq "550: Original-Envelope-Id (xtext decoded)" "$(field "$C" "$u" ds:Original-Envelope-Id)" "order+2B1234"
check_match "550: Arrival-Date" "$(field "$C" "$u" ds:Arrival-Date)" '\+0000$'
check_eq "550: one recipient" "$(field "$C" "$u" nrcpt)" 1
check_eq "550: Original-Recipient from ORCPT" "$(field "$C" "$u" ds:Original-Recipient:0)" "rfc822;Bad+Alias@dest.test"
check_eq "550: Final-Recipient" "$(field "$C" "$u" ds:Final-Recipient:0)" "rfc822; bad@dest.test"
check_eq "550: Action" "$(field "$C" "$u" ds:Action:0)" failed
check_eq "550: Status" "$(field "$C" "$u" ds:Status:0)" 5.1.1
check_match "550: Remote-MTA" "$(field "$C" "$u" ds:Remote-MTA:0)" '^dns; .*127\.0\.0\.2|^dns; [^ ]+$'
check_match "550: Diagnostic-Code" "$(field "$C" "$u" ds:Diagnostic-Code:0)" '^smtp; 550 5\.1\.1'
check_match "550: Last-Attempt-Date" "$(field "$C" "$u" ds:Last-Attempt-Date:0)" '\+0000$'
check_match "550: the text names the address and what to do" "$(field "$C" "$u" text)" 'bad@dest\.test.*Check the address'
check_eq "550: headers only (RET absent)" "$(field "$C" "$u" part3)" "text/rfc822-headers"
o=$(field "$C" "$u" orig)
check_match "550: the original header section" "$o" 'Subject: order fail'
check_eq "550: no body" "$(printf '%s' "$o" | grep -c BODY-MARKER)" 0

wait_until 30 has_reports "$C" "$id_two" 1
check_eq "two bad recipients: one report" "$(nreports "$C" "$id_two")" 1
u=$(reports_for "$C" "$id_two" | head -1)
check_eq "two bad recipients: both in it" "$(field "$C" "$u" nrcpt)" 2
check_eq "two bad recipients: the first" "$(field "$C" "$u" ds:Final-Recipient:0)" "rfc822; bad@dest.test"
check_eq "two bad recipients: the second" "$(field "$C" "$u" ds:Final-Recipient:1)" "rfc822; bad2@dest.test"

wait_until 30 has_reports "$C" "$id_dom" 1
sleep 2
check_eq "two domains (two jobs) failing together: one report" "$(nreports "$C" "$id_dom")" 1
u=$(reports_for "$C" "$id_dom" | head -1)
check_eq "two domains failing together: both recipients in it" "$(field "$C" "$u" nrcpt)" 2

wait_until 30 has_reports "$C" "$id_ok" 1
u=$(reports_for "$C" "$id_ok" | head -1)
check_eq "NOTIFY=SUCCESS: Subject" "$(field "$C" "$u" Subject)" "Delivery Status Notification (Success)"
check_eq "NOTIFY=SUCCESS: Action delivered" "$(field "$C" "$u" ds:Action:0)" delivered
check_match "NOTIFY=SUCCESS: Status 2.x.x" "$(field "$C" "$u" ds:Status:0)" '^2\.[0-9]+\.[0-9]+$'

wait_until 30 has_reports "$C" "$id_full" 1
u=$(reports_for "$C" "$id_full" | head -1)
check_eq "RET=FULL: message/rfc822" "$(field "$C" "$u" part3)" "message/rfc822"
check_match "RET=FULL: the body is in it" "$(field "$C" "$u" orig)" "BODY-MARKER-full"
check_eq "RET=FULL: the kept body is dropped after the report" \
	"$(wait_until 10 sh -c "[ \"\$(redis-cli -p $rport hexists one:m:$id_full body)\" = 0 ]" && echo gone)" gone

# The slow one: a delay warning after 2 s, the expiry after 8 s.
wait_until 30 has_reports "$C" "$id_slow" 2
n=$(nreports "$C" "$id_slow")
check_eq "slow.test: a delay warning and an expiry report" "$n" 2
for u in $(reports_for "$C" "$id_slow"); do
	case $(field "$C" "$u" ds:Action:0) in
	delayed)
		check_eq "delay: Subject" "$(field "$C" "$u" Subject)" "Delivery Status Notification (Delay)"
		check_match "delay: Status 4.x.x" "$(field "$C" "$u" ds:Status:0)" '^4\.[0-9]+\.[0-9]+$'
		check_match "delay: Will-Retry-Until" "$(field "$C" "$u" ds:Will-Retry-Until:0)" '\+0000$'
		check_eq "delay: both recipients deferred together, one warning" "$(field "$C" "$u" nrcpt)" 2
		;;
	failed)
		check_eq "expiry: Status 4.4.7" "$(field "$C" "$u" ds:Status:0)" 4.4.7
		check_eq "expiry: both recipients" "$(field "$C" "$u" nrcpt)" 2
		check_eq "expiry: Subject" "$(field "$C" "$u" Subject)" "Undelivered Mail Returned to Sender"
		;;
	*) fail "slow.test: unexpected report" "$(kctl "$C" mailbox show "$user" "$u" | head -40)" ;;
	esac
done

# dsn_to_sender = yes: a copy to the sender with a null reverse-path, none
# to a suppressed sender, none for a null sender (their reports are stored).
wait_until 30 sink_has 1 --rcpt orders@shop.example --contains "X-Kurier-Queue-Id: $id_fail"
check_eq "dsn_to_sender: the report reaches the sender once" \
	"$(sink_q --rcpt orders@shop.example --contains "X-Kurier-Queue-Id: $id_fail" --count)" 1
check_eq "dsn_to_sender: with a null reverse-path" \
	"$(sink_q --rcpt orders@shop.example --contains "X-Kurier-Queue-Id: $id_fail" --field mail_from)" "<>"
check_match "dsn_to_sender: it is the report" \
	"$(sink_q --rcpt orders@shop.example --contains "X-Kurier-Queue-Id: $id_fail" --data)" \
	'report-type=delivery-status'
wait_until 30 has_reports "$C" "$id_sup" 1
# The copy to gone@shop.example bounces: a null-sender message with
# NOTIFY=NEVER, so no report of it, and no copy of a copy.
wait_until 30 has_reports "$C" "$id_gone" 1
copy=$(sed -n "s/.*event=report_sent id=$id_gone to=<gone@shop.example> report_id=\([0-9A-Za-z]*\).*/\1/p" "$E2E_TMP/one.log" | head -1)
check_match "dsn_to_sender: the copy to gone@ was queued" "$copy" '^[0-9A-Za-z]{16}$'
wait_settled "$C" "$copy"
check_eq "dsn_to_sender: the copy bounced" "$(rcpt_field "$(kctl "$C" queue show "$copy")" gone@shop.example state)" bounced
check_eq "dsn_to_sender: the copy has a null sender" \
	"$(kctl "$C" queue show "$copy" | sed -n 's/^sender  *//p' | head -1)" "<>"
check_eq "suppressed sender: report stored" "$(nreports "$C" "$id_sup")" 1
check_match "suppressed sender: not sent, logged" \
	"$(grep "event=report_not_sent id=$id_sup" "$E2E_TMP/one.log")" 'to=<blocked@shop\.example> reason=suppressed'
sleep 2
check_eq "suppressed sender: nothing reached it" "$(sink_q --rcpt blocked@shop.example --count)" 0
sleep 1
check_eq "a bounced report makes no report" "$(nreports "$C" "$copy")" 0
check_eq "no report about a report" "$(grep -c "event=report_stored" "$E2E_TMP/one.log")" \
	"$(grep "event=report_stored" "$E2E_TMP/one.log" | grep -Ec "id=($id_fail|$id_two|$id_dom|$id_ok|$id_full|$id_slow|$id_gone|$id_sup) ")"

# Nothing for NOTIFY=NEVER, nor for a plain delivery: by now (the later
# reports are stored) their events were handled long ago.
wait_settled "$C" "$id_never"
wait_settled "$C" "$id_plain"
check_eq "NOTIFY=NEVER: no report" "$(nreports "$C" "$id_never")" 0
check_eq "plain delivery: no report" "$(nreports "$C" "$id_plain")" 0
check_match "report_stored log line" "$(grep "event=report_stored id=$id_two" "$E2E_TMP/one.log")" \
	"user=$user rcpts=2 action=failed uid=[0-9]+"
stop_kurierd one

# --- run two: two reporting nodes, a node that dies holding events ---------------------

# Node "d" takes and delivers the mail; nodes "two" and "three" only report.
rconf two two ""
printf '%s\n' "$password" | kctl "$E2E_TMP/two.conf" user add "$user" --domains shop.example >/dev/null 2>&1
start_node d "$E2E_TMP/two.conf" relay,deliver || e2e_abort "kurierd (d) starts"
start_node two "$E2E_TMP/two.conf" mailbox || e2e_abort "kurierd (two) starts"
start_node three "$E2E_TMP/two.conf" mailbox || e2e_abort "kurierd (three) starts"
C=$E2E_TMP/two.conf

# once_each IDS... - how many of the ids do not have exactly one report.
once_each() {
	local id bad=0
	for id in "$@"; do
		[ "$(nreports "$C" "$id")" = 1 ] || bad=$((bad + 1))
	done
	echo "$bad"
}

ids=()
for i in 1 2 3 4 5 6; do
	ids+=("$(send "$two_port" "n$i" orders@shop.example bad@dest.test)")
done
for id in "${ids[@]}"; do
	wait_until 30 has_reports "$C" "$id" 1
done
sleep 3   # a second report, if any were made, would be stored by now
check_eq "two nodes: exactly one report per failure (6 messages)" "$(once_each "${ids[@]}")" 0
check_eq "two nodes: every event acknowledged" \
	"$(redis-cli -p "$rport" xpending two:events reports | head -1)" 0
check_match "two nodes: both took part or one took all" \
	"$(cat "$E2E_TMP/two.log" "$E2E_TMP/three.log" | grep -c 'event=report_stored')" '^[6-9]$|^[1-9][0-9]+$'

# A node killed right after it read events (it never acknowledges them):
# the reporters are held (SIGSTOP) while the failures happen, a consumer
# "dead" of the group reads every event and is never heard of again.
kill -STOP "${KPID[two]}" "${KPID[three]}"
ids2=()
for i in 1 2 3 4; do
	ids2+=("$(send "$two_port" "k$i" orders@shop.example bad@dest.test)")
done
for id in "${ids2[@]}"; do
	wait_settled "$C" "$id"
done
redis-cli -p "$rport" xreadgroup group reports dead count 1000 streams two:events '>' >/dev/null
pending=$(redis-cli -p "$rport" xpending two:events reports | head -1)
check_match "dead consumer: holds the events" "$pending" '^[4-9]$|^[1-9][0-9]+$'
kill -CONT "${KPID[two]}" "${KPID[three]}"
for id in "${ids2[@]}"; do
	wait_until 40 has_reports "$C" "$id" 1
done
sleep 3
check_eq "dead consumer: every failure reported once (4 messages)" "$(once_each "${ids2[@]}")" 0
check_match "dead consumer: its events were claimed" \
	"$(cat "$E2E_TMP/two.log" "$E2E_TMP/three.log" | grep 'event=events_claimed')" 'count=[0-9]+'
check_eq "dead consumer: nothing left pending" \
	"$(redis-cli -p "$rport" xpending two:events reports | head -1)" 0

# kill -9 of a reporting node while failures come in: none lost, none twice.
ids3=()
for i in 1 2 3 4 5; do
	ids3+=("$(send "$two_port" "x$i" orders@shop.example bad@dest.test)")
	if [ "$i" = 2 ]; then
		kill -KILL "${KPID[three]}"
		wait "${KPID[three]}" 2>/dev/null
	fi
done
KPID[three]=""
for id in "${ids3[@]}"; do
	wait_until 40 has_reports "$C" "$id" 1
done
sleep 3
check_eq "kill -9: every failure reported once (5 messages)" "$(once_each "${ids3[@]}")" 0
check_eq "kill -9: earlier reports not made again" "$(once_each "${ids[@]}" "${ids2[@]}")" 0
# A Redis outage: redis-server stopped and started again (its AOF keeps
# everything); the reporter waits, does not crash, and reports what fails
# afterwards, once.
kill -TERM "$REDIS_PID"
for _ in $(seq 100); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.1; done
wait "$REDIS_PID" 2>/dev/null
sleep 2
start_redis "$E2E_TMP/redis" "$rport" || fail "redis-server starts again"
wait_until 20 grep -q "event=redis_up client=kurierd " "$E2E_TMP/two.log"
sleep 1
id_after=$(send "$two_port" after orders@shop.example bad@dest.test)
check_match "after the outage: submitted" "$id_after" '^[0-9A-Za-z]{16}$'
wait_until 40 has_reports "$C" "$id_after" 1
sleep 2
check_eq "after the outage: reported once" "$(once_each "$id_after")" 0
check_eq "after the outage: nothing reported twice" "$(once_each "${ids[@]}" "${ids2[@]}" "${ids3[@]}")" 0
stop_kurierd two
stop_kurierd d
e2e_done
