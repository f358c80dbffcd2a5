#!/usr/bin/env bash
# returns.sh - end to end: returns that come back to the inbound MX for
# bounce domains ([relay] inbound), with kurierd (relay, deliver and
# mailbox roles), a redis-server, dnsmasq and a sink MX (sink.py) that
# accepts everything, all on loopback.
#
# A user submits two messages (one to a single recipient, one to three
# recipients of one domain: a job's VERP token); kurierd delivers them to
# the sink, whose spool shows each VERP return path (MAIL FROM).  Then,
# as a remote MTA would, the test sends to the inbound port with the
# null sender: an RFC 3464 report (hard: 5.1.1) -> the recipient is
# bounced in `kurierctl queue show` and suppressed (hard-bounce), and
# the report is in the user's INBOX with the X-Kurier fields; an ARF
# complaint -> suppressed with reason complaint; an out-of-office reply
# -> stored as auto-reply, nothing suppressed; soft bounces -> suppressed
# (soft-bounce-limit) at [mailbox] soft_bounce_limit, not before, and a
# return delivered twice counts once; a forged VERP address -> 550
# 5.1.1; a foreign domain -> 550 5.7.1 and nothing relayed; postmaster@
# -> [mailbox] postmaster's INBOX; `kurierctl bounce list` lists them;
# the user reads the stored report over POP3 ([mailbox] pop3s).
#
# Environment: KURIER_BIN (kurierd, kurierctl), KURIER_REDIS_CONF; see
# lib.sh.  Needs python3 with aiosmtpd (sink.py) and dnsmasq.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/deliver_lib.sh"

e2e_require KURIER_BIN KURIER_REDIS_CONF

e2e_init
find_sink_python || e2e_abort "a python3 with aiosmtpd"

rport=$(free_port2)
start_redis "$E2E_TMP/redis" "$rport" || e2e_abort "redis-server starts"
start_dns || e2e_abort "dnsmasq starts"
sport=$(free_port2)
start_sink sink --listen "127.0.0.1:$sport" || e2e_abort "sink.py starts"
pass "redis-server, dnsmasq and sink.py run"

sub=$(free_port2)
subs=$(free_port2)
inb=$(free_port2)
p3s=$(free_port2)
CONF=$E2E_TMP/returns.conf
mkdir -p "$E2E_TMP/data"
conf_head "$CONF" "$E2E_TMP/data" "$rport" ret
cat >>"$CONF" <<CONF
[relay]
submission = 127.0.0.1:$sub
submissions = 127.0.0.1:$subs
inbound = 127.0.0.1:$inb

[deliver]
dns_server = 127.0.0.1:$DNS_PORT
dns_timeout = 2s
route.* = 127.0.0.1:$sport
spf_preflight = off
retry = 1s
lifetime = 10m
idle_timeout = 1s

[policy]
suppress_bounces = yes

[mailbox]
postmaster = admin
soft_bounce_limit = 3
pop3 =
pop3s = 127.0.0.1:$p3s
imap =
imaps =

[domain shop.example]
CONF

ctl() {
	"$KURIER_BIN/kurierctl" -c "$CONF" "$@"
}

password=return-test-password-1
printf '%s\n' "$password" | ctl user add shop --domains shop.example >"$E2E_TMP/useradd.log" 2>&1
check_eq "kurierctl user add shop" "$?" 0

# kurierd with the relay, deliver and mailbox roles.
klog=$E2E_TMP/kurierd.log
"$KURIER_BIN/kurierd" -c "$CONF" --roles relay,deliver,mailbox >"$klog" 2>&1 &
kpid=$!
track "$kpid"
if wait_for 15 grep -q "event=relay_listening.*inbound=1" "$klog"; then
	pass "kurierd listens on submission and inbound"
else
	fail "kurierd listens on submission and inbound" "$(tail -5 "$klog")"
	e2e_done
	exit 1
fi

# --- two messages out, to the sink ---------------------------------------------------

mkmsg() {
	printf 'From: Shop <orders@shop.example>\r\nTo: <%s>\r\nSubject: Your order %s\r\nMessage-ID: <%s@shop.example>\r\n\r\nThanks for your order.\r\n' \
		"$2" "$3" "$3" >"$1"
}
mkmsg "$E2E_TMP/a.eml" gone@example.net a-$RANDOM
mkmsg "$E2E_TMP/b.eml" full@example.org b-$RANDOM
printf 'a\torders@shop.example\tgone@example.net\t%s\n' "$E2E_TMP/a.eml" >"$E2E_TMP/spec"
printf 'b\torders@shop.example\tfull@example.org,angry@example.org,away@example.org\t%s\n' "$E2E_TMP/b.eml" >>"$E2E_TMP/spec"
submit "$sub" shop "$password" "$E2E_TMP/spec" >"$E2E_TMP/submit.out" 2>&1
ida=$(awk '$1 == "a" && $2 != "ERROR" { print $2 }' "$E2E_TMP/submit.out")
idb=$(awk '$1 == "b" && $2 != "ERROR" { print $2 }' "$E2E_TMP/submit.out")
check_match "message a submitted" "$ida" '^[0-9A-Z]{16}$'
check_match "message b submitted" "$idb" '^[0-9A-Z]{16}$'
if wait_settled "$CONF" "$ida" && wait_settled "$CONF" "$idb"; then
	pass "both delivered to the sink"
else
	fail "both delivered to the sink" "$(ctl queue show "$ida"; ctl queue show "$idb")"
fi
verpa=$(sink_q --rcpt gone@example.net --field mail_from | head -1)
verpb=$(sink_q --rcpt full@example.org --field mail_from | head -1)
check_match "a went out with a VERP return path" "$verpa" '^b\+[0-9A-Z]+@bounces\.shop\.example$'
check_match "b (three recipients, one job) went out with one" "$verpb" '^b\+[0-9A-Z]+@bounces\.shop\.example$'
sunk=$(sink_q --count)

# --- returns to the inbound port --------------------------------------------------------

SEND_PY='
import smtplib, sys
port, rcpt, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = smtplib.SMTP("127.0.0.1", port, local_hostname="mx.example.net", timeout=30)
s.ehlo("mx.example.net")
code, text = s.mail("")
if code != 250:
    print("MAIL", code, text.decode()); sys.exit(0)
code, text = s.rcpt(rcpt)
if code != 250:
    print("RCPT", code, text.decode()); s.quit(); sys.exit(0)
with open(path, "rb") as f:
    msg = f.read()
code, text = s.data(msg)
print("DATA", code, text.decode())
s.quit()
'
# ret RCPT FILE - one return; prints "DATA 250 ..." or where it was refused.
ret() {
	"$SINK_PY" -c "$SEND_PY" "$inb" "$1" "$2" 2>&1
}

dsn() {
	local file=$1 verp=$2 rcpt=$3 status=$4 diag=$5 n=$6
	{
		printf 'From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\nTo: %s\r\n' "$verp"
		printf 'Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <r%s@mx.example.net>\r\n' "$n"
		printf 'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="BB"\r\n\r\n'
		printf -- '--BB\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered (%s).\r\n\r\n' "$n"
		printf -- '--BB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n'
		printf 'Final-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: %s\r\nDiagnostic-Code: smtp; %s\r\n\r\n' \
			"$rcpt" "$status" "$diag"
		printf -- '--BB\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: orders@shop.example\r\nTo: %s\r\n\r\n--BB--\r\n' "$rcpt"
	} >"$file"
}

# state ID ADDR - the recipient's state in `kurierctl queue show`.
state() {
	rcpt_field "$(ctl queue show "$1")" "$2" state
}

# suppressed ADDR - the suppression entries of ADDR for shop.example.
suppressed() {
	ctl suppression check "$1" --domain shop.example 2>&1
}

# inbox USER - kurierctl mailbox list USER.
inbox() {
	ctl mailbox list "$1" 2>&1
}

# hard bounce
dsn "$E2E_TMP/hard.eml" "$verpa" gone@example.net 5.1.1 \
	"550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown" 1
check_match "hard: the report is taken (250 once stored)" "$(ret "$verpa" "$E2E_TMP/hard.eml")" '^DATA 250 '
check_eq "hard: the recipient is bounced in the queue" "$(state "$ida" gone@example.net)" bounced
check_match "hard: its last reply is the return's" "$(rcpt_field "$(ctl queue show "$ida")" gone@example.net "last reply")" \
	'returned: 5\.1\.1'
check_match "hard: suppressed for shop.example (hard-bounce)" "$(suppressed gone@example.net)" 'hard-bounce'
out=$(inbox shop)
check_match "hard: the report is in shop's INBOX, class hard" "$out" ' hard '
uid=$(printf '%s\n' "$out" | awk '$0 ~ / hard / { print $1; exit }')
show=$(ctl mailbox show shop "$uid" 2>&1)
check_match "hard: X-Kurier-Class on top" "$(printf '%s' "$show" | head -1)" '^X-Kurier-Class: hard'
check_match "hard: X-Kurier-Reason" "$show" 'X-Kurier-Reason: user-unknown'
check_match "hard: X-Kurier-Recipient" "$show" 'X-Kurier-Recipient: gone@example\.net'
check_match "hard: X-Kurier-Queue-Id" "$show" "X-Kurier-Queue-Id: $ida"
check_match "hard: the inbound MX's SPF verdict recorded" "$show" 'Received-SPF: '
check_match "hard: one return_stored log line" "$(grep -c "event=return_stored id=$ida" "$klog")" '^1$'
check_match "hard: the same return delivered again is taken" "$(ret "$verpa" "$E2E_TMP/hard.eml")" '^DATA 250 '
check_eq "hard: ... and stored once" "$(inbox shop | grep -c ' hard ')" 1

# complaint, to the job's VERP address
{
	printf 'From: Feedback Loop <fbl@isp.example>\r\nTo: %s\r\nSubject: Abuse report\r\n' "$verpb"
	printf 'Message-ID: <c1@isp.example>\r\nMIME-Version: 1.0\r\n'
	printf 'Content-Type: multipart/report; report-type=feedback-report; boundary="CC"\r\n\r\n'
	printf -- '--CC\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n'
	printf -- '--CC\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n'
	printf 'User-Agent: isp-fbl/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: <angry@example.org>\r\n'
	printf 'Original-Mail-From: <%s>\r\n\r\n' "$verpb"
	printf -- '--CC\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: orders@shop.example\r\nTo: angry@example.org\r\n\r\n--CC--\r\n'
} >"$E2E_TMP/complaint.eml"
check_match "complaint: taken" "$(ret "$verpb" "$E2E_TMP/complaint.eml")" '^DATA 250 '
check_match "complaint: suppressed with reason complaint" "$(suppressed angry@example.org)" 'complaint'
check_eq "complaint: the recipient stays delivered" "$(state "$idb" angry@example.org)" delivered
check_match "complaint: in the INBOX, class complaint" "$(inbox shop)" ' complaint '

# out-of-office
printf 'From: Ann <away@example.org>\r\nTo: %s\r\nSubject: Out of Office: Your order\r\nAuto-Submitted: auto-replied\r\nMessage-ID: <o1@example.org>\r\n\r\nI am out of the office until Monday.\r\n' \
	"$verpb" >"$E2E_TMP/ooo.eml"
check_match "auto-reply: taken" "$(ret "$verpb" "$E2E_TMP/ooo.eml")" '^DATA 250 '
check_match "auto-reply: in the INBOX, class auto-reply" "$(inbox shop)" ' auto-reply '
check_match "auto-reply: nothing suppressed" "$(suppressed away@example.org)" 'not suppressed'
check_eq "auto-reply: the recipient stays delivered" "$(state "$idb" away@example.org)" delivered

# soft bounces up to the limit (3)
for n in 1 2 3; do
	dsn "$E2E_TMP/soft$n.eml" "$verpb" full@example.org 4.2.2 "452 4.2.2 Mailbox full, over quota" "s$n"
	check_match "soft $n: taken" "$(ret "$verpb" "$E2E_TMP/soft$n.eml")" '^DATA 250 '
	if [ "$n" = 2 ]; then
		check_match "soft 2 again: taken" "$(ret "$verpb" "$E2E_TMP/soft2.eml")" '^DATA 250 '
		check_match "soft: two of three, not suppressed (a repeat counts once)" "$(suppressed full@example.org)" 'not suppressed'
	fi
done
check_match "soft: the third suppresses (soft-bounce-limit)" "$(suppressed full@example.org)" 'soft-bounce-limit'
check_eq "soft: the recipient stays delivered" "$(state "$idb" full@example.org)" delivered

# what is refused
forged=$(printf '%s' "$verpa" | "$SINK_PY" -c '
import sys
a = sys.stdin.read().strip()
l, d = a.split("@")
c = l[-1]
print(l[:-1] + ("0" if c != "0" else "1") + "@" + d)')
check_match "forged VERP address: 550 5.1.1" "$(ret "$forged" "$E2E_TMP/hard.eml")" '^RCPT 550 .*5\.1\.1'
check_match "foreign domain: 550 5.7.1" "$(ret someone@example.org "$E2E_TMP/hard.eml")" '^RCPT 550 .*5\.7\.1'
check_match "the sending domain itself: 550 5.7.1" "$(ret orders@shop.example "$E2E_TMP/hard.eml")" '^RCPT 550 .*5\.7\.1'
sleep 1
check_eq "nothing relayed to the sink" "$(sink_q --count)" "$sunk"

# postmaster@
printf 'From: Someone <someone@example.org>\r\nTo: postmaster@bounces.shop.example\r\nSubject: Hello postmaster\r\nMessage-ID: <p1@example.org>\r\n\r\nA question.\r\n' \
	>"$E2E_TMP/pm.eml"
check_match "postmaster@: taken" "$(ret postmaster@bounces.shop.example "$E2E_TMP/pm.eml")" '^DATA 250 '
check_match "postmaster@: in admin's INBOX" "$(inbox admin)" '^1 message'

# the bounce log
out=$(ctl bounce list --class hard 2>&1)
check_match "bounce list --class hard: gone@example.net" "$out" 'shop +hard +user-unknown +5\.1\.1 +gone@example\.net'
check_match "bounce list --class hard: only hard" "$(printf '%s\n' "$out" | tail -1)" '^1 return$'
check_match "bounce list --class complaint: angry@example.org" "$(ctl bounce list --class complaint 2>&1)" 'angry@example\.org'
check_match "bounce list --user shop --since 1h: six returns" "$(ctl bounce list --user shop --since 1h 2>&1 | tail -1)" '^6 returns$'
check_exit "bounce list --class nonsense: usage error" 2 ctl bounce list --class nonsense

# --- the site owner reads the returns over POP3 ----------------------------------------

got=$(python3 - "$p3s" "$password" <<'PY' 2>&1
import poplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
p = poplib.POP3_SSL("127.0.0.1", int(sys.argv[1]), context=ctx, timeout=20)
p.user("shop"); p.pass_(sys.argv[2])
n, _ = p.stat()
hard = 0
for i in range(1, n + 1):
    body = b"\r\n".join(p.retr(i)[1])
    if body.startswith(b"X-Kurier-Class: hard") and b"gone@example.net" in body and b"5.1.1" in body:
        hard += 1
p.quit()
print("messages=%d hard=%d" % (n, hard))
PY
)
check_match "POP3 (implicit TLS): the user reads the stored hard-bounce report" "$got" '^messages=[1-9][0-9]* hard=1$'

# --- stop -------------------------------------------------------------------------------

kill -TERM "$kpid"
for _ in $(seq 100); do kill -0 "$kpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$kpid" 2>/dev/null; then
	fail "kurierd exits within 10 s of SIGTERM"
	kill -KILL "$kpid"
fi
wait "$kpid" 2>/dev/null
check_eq "kurierd exits 0" "$?" 0
if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$klog"; then
	fail "kurierd: no sanitizer report" "$(grep -E -A12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$klog" | head -30)"
else
	pass "kurierd: no sanitizer report"
fi
keep_artifacts
e2e_done
