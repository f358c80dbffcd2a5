#!/usr/bin/env bash
# inbound.sh - the inbound MX for bounce domains end to end: kurierd
# (relay role, the inbound sink wired to mailbox/ingest) and a real Redis,
# a dnsmasq for the SPF records, and Python's smtplib as the remote MTA.
#
#   - EHLO: PIPELINING, SIZE [mailbox] max_bounce_size, STARTTLS; no AUTH
#     (AUTH gets 502 5.5.1)
#   - a forged VERP address of a bounce domain: 550 5.1.1
#   - a foreign domain: 550 5.7.1, and nothing is queued (relayed)
#   - postmaster@ and abuse@ of a bounce domain from the null sender: 250,
#     stored in [mailbox] postmaster's INBOX with Authentication-Results,
#     Received-SPF and Received on top
#   - STARTTLS, then a return over TLS
#   - SIZE above max_bounce_size and an oversize DATA: 552 5.3.4
#   - [mailbox] spf_fail = reject on a second kurierd: 550 5.7.23 at MAIL
#   - [relay] inbound_rate = 3/min on a third kurierd (a prefix of its
#     own, so the other nodes' MAILs from 127.0.0.1 are not counted):
#     three returns stored, the fourth MAIL 450 4.7.1, and a MAIL for
#     postmaster@ after it too, logged with rule inbound.rate
#   - Redis down: 451 4.3.0, never a 250
# The content side of returns (VERP returns marking recipients bounced,
# complaints, auto-replies) is mailbox/ingest's, tested by its own e2e script.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/deliver_lib.sh"
e2e_init

find_sink_python || e2e_abort "a python3 with aiosmtpd and dkim"
start_dns "--txt-record=mx.sender.test,v=spf1 ip4:127.0.0.1 -all" \
	"--txt-record=fail.test,v=spf1 ip4:192.0.2.1 -all" || e2e_abort "dnsmasq starts"

rport=$(free_port)
start_redis "$E2E_TMP/redis" "$rport" || e2e_abort "redis-server starts"

# conf NAME SPF_FAIL [PREFIX [RELAY_LINE]] - a config; its inbound port in NAME_port.
conf() {
	local name=$1 p sp
	read -r p sp < <(port_pair)
	printf -v "${name}_port" '%s' "$p"
	conf_head "$E2E_TMP/$name.conf" "$E2E_TMP/data-$name" "$rport" "${3:-e2e}"
	cat >>"$E2E_TMP/$name.conf" <<CONF
[relay]
inbound = 127.0.0.1:$p
submission = 127.0.0.1:$sp
submissions =
${4:-}

[deliver]
dns_server = 127.0.0.1:$DNS_PORT
dns_timeout = 2s

[domain shop.test]
return_path = bounces.shop.test

[mailbox]
postmaster = admin
max_bounce_size = 65536
spf_fail = $2
CONF
}
conf main mark
conf strict reject
conf rated mark e2e-rate "inbound_rate = 3/min"

ctl() { "$KURIER_BIN/kurierctl" -c "$E2E_TMP/main.conf" "$@"; }
printf '%s\n' 'admin-password-1' | ctl user add admin --domains shop.test >"$E2E_TMP/useradd.log" 2>&1
check_eq "kurierctl user add admin" "$?" 0
printf '%s\n' 'admin-password-1' | "$KURIER_BIN/kurierctl" -c "$E2E_TMP/rated.conf" user add admin \
	--domains shop.test >>"$E2E_TMP/useradd.log" 2>&1
check_eq "kurierctl user add admin (rated)" "$?" 0

declare -A kpid
for name in main strict rated; do
	"$KURIER_BIN/kurierd" -c "$E2E_TMP/$name.conf" --roles relay >"$E2E_TMP/$name.log" 2>&1 &
	kpid[$name]=$!
	track "${kpid[$name]}"
done
for name in main strict rated; do
	wait_for 30 grep -q "event=relay_listening.*inbound=1" "$E2E_TMP/$name.log"
	check_eq "kurierd ($name) listens on the inbound port" "$?" 0
	wait_for 30 grep -q "event=redis_up client=kurierd " "$E2E_TMP/$name.log"
	check_eq "kurierd ($name) reaches Redis" "$?" 0
done

# The remote MTA: one scenario per argument, "ok - ..." / "not ok - ..." lines.
mta() {
	timeout 120 python3 - "$@" <<'PY'
import os, smtplib, ssl, sys

port, scenario = int(sys.argv[1]), sys.argv[2]
# A body of its own: ingest stores a return once per body and recipient.
RETURN = (b"Message-ID: <" + scenario.encode() + os.urandom(6).hex().encode() + b"@mx.sender.test>\r\n"
          b"From: MAILER-DAEMON@mx.sender.test\r\nTo: postmaster@bounces.shop.test\r\n"
          b"Subject: Undelivered Mail Returned to Sender\r\n\r\n"
          b"The mail system said: 550 5.1.1 user unknown (" + scenario.encode() + b")\r\n")
failed = 0

def check(name, got, want_prefix):
    global failed
    code, text = got
    line = "%d %s" % (code, text.decode("utf-8", "replace").replace("\r\n", " | "))
    if line.startswith(want_prefix):
        print("ok - %s" % name)
    else:
        failed += 1
        print("not ok - %s" % name)
        print("#   got %r, want %r..." % (line, want_prefix))

def session(tls=False):
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="mx.sender.test", timeout=30)
    s.ehlo()
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        check("STARTTLS: 220", s.starttls(context=ctx), "220 2.0.0")
        s.ehlo()
    return s

def data(s, body):
    code, text = s.docmd("DATA")
    if code != 354:
        return code, text
    s.send(body.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
    return s.getreply()

if scenario == "ehlo":
    s = session()
    check("EHLO: 250", (s.ehlo_resp and 250 or 0, b""), "250")
    f = s.esmtp_features
    check("EHLO offers SIZE max_bounce_size", (250, f.get("size", "").encode()), "250 65536")
    for ext in ("pipelining", "starttls", "8bitmime", "enhancedstatuscodes", "smtputf8"):
        check("EHLO offers %s" % ext.upper(), (250 if ext in f else 0, b""), "250")
    check("EHLO offers no AUTH", (0 if "auth" in f else 250, b""), "250")
    check("AUTH: 502 5.5.1", s.docmd("AUTH", "PLAIN AGFkbWluAHg="), "502 5.5.1")
    s.quit()
elif scenario == "refusals":
    s = session()
    check("null sender: 250", s.docmd("MAIL", "FROM:<>"), "250 2.1.0")
    check("forged VERP address: 550 5.1.1",
          s.docmd("RCPT", "TO:<b+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@bounces.shop.test>"), "550 5.1.1")
    check("unknown local part of a bounce domain: 550 5.1.1",
          s.docmd("RCPT", "TO:<nobody@bounces.shop.test>"), "550 5.1.1")
    check("foreign domain: 550 5.7.1", s.docmd("RCPT", "TO:<victim@elsewhere.test>"), "550 5.7.1")
    check("the sending domain itself: 550 5.7.1", s.docmd("RCPT", "TO:<info@shop.test>"), "550 5.7.1")
    check("DATA without a recipient: 554", s.docmd("DATA"), "554 5.5.1")
    s.quit()
elif scenario == "postmaster":
    s = session()
    check("postmaster: MAIL FROM:<>", s.docmd("MAIL", "FROM:<> SIZE=%d" % len(RETURN)), "250 2.1.0")
    check("postmaster@ of the bounce domain: 250", s.docmd("RCPT", "TO:<postmaster@bounces.shop.test>"), "250 2.1.5")
    check("abuse@ of the bounce domain: 250", s.docmd("RCPT", "TO:<abuse@bounces.shop.test>"), "250 2.1.5")
    check("postmaster: stored", data(s, RETURN), "250 2.0.0")
    s.quit()
elif scenario == "starttls":
    s = session(tls=True)
    check("after STARTTLS no STARTTLS offered", (0 if "starttls" in s.esmtp_features else 250, b""), "250")
    check("TLS: MAIL FROM:<>", s.docmd("MAIL", "FROM:<>"), "250 2.1.0")
    check("TLS: RCPT postmaster@", s.docmd("RCPT", "TO:<postmaster@bounces.shop.test>"), "250 2.1.5")
    check("TLS: stored", data(s, RETURN.replace(b"Undelivered", b"TLS Undelivered")), "250 2.0.0")
    s.quit()
elif scenario == "size":
    s = session()
    check("SIZE above max_bounce_size: 552 5.3.4", s.docmd("MAIL", "FROM:<> SIZE=65537"), "552 5.3.4")
    check("size: MAIL FROM:<>", s.docmd("MAIL", "FROM:<>"), "250 2.1.0")
    check("size: RCPT postmaster@", s.docmd("RCPT", "TO:<postmaster@bounces.shop.test>"), "250 2.1.5")
    big = RETURN + (b"x" * 76 + b"\r\n") * 1000
    check("oversize DATA: 552 5.3.4", data(s, big), "552 5.3.4")
    check("the session goes on: NOOP", s.docmd("NOOP"), "250")
    s.quit()
elif scenario == "smuggling":
    s = session()
    check("smuggling: MAIL FROM:<>", s.docmd("MAIL", "FROM:<>"), "250 2.1.0")
    check("smuggling: RCPT postmaster@", s.docmd("RCPT", "TO:<postmaster@bounces.shop.test>"), "250 2.1.5")
    code, text = s.docmd("DATA")
    s.send(b"Subject: x\r\n\r\nbody\n.\nMAIL FROM:<evil@elsewhere.test>\r\n.\r\n")
    check("a bare LF and a smuggled command: 550 5.6.0", s.getreply(), "550 5.6.0")
    s.quit()
elif scenario == "spf_reject":
    s = session()
    check("spf_fail = reject: 550 5.7.23 at MAIL", s.docmd("MAIL", "FROM:<bounce@fail.test>"), "550 5.7.23")
    check("spf_fail = reject: a passing null sender goes on", s.docmd("MAIL", "FROM:<>"), "250 2.1.0")
    s.quit()
elif scenario == "spf_mark":
    s = session()
    check("spf_fail = mark: MAIL FROM a failing domain: 250", s.docmd("MAIL", "FROM:<bounce@fail.test>"), "250 2.1.0")
    check("spf_fail = mark: RCPT postmaster@", s.docmd("RCPT", "TO:<postmaster@bounces.shop.test>"), "250 2.1.5")
    check("spf_fail = mark: stored", data(s, RETURN.replace(b"Undelivered", b"SPF-fail Undelivered")), "250 2.0.0")
    s.quit()
elif scenario == "rate":
    s = session()
    for i in range(3):
        check("rate: MAIL %d of 3/min: 250" % (i + 1), s.docmd("MAIL", "FROM:<>"), "250 2.1.0")
        check("rate: RCPT %d postmaster@" % (i + 1), s.docmd("RCPT", "TO:<postmaster@bounces.shop.test>"), "250 2.1.5")
        check("rate: return %d stored" % (i + 1),
              data(s, RETURN.replace(b"Undelivered", b"Rate%d Undelivered" % i)), "250 2.0.0")
    check("rate: the 4th MAIL: 450 4.7.1",
          s.docmd("MAIL", "FROM:<>"), "450 4.7.1 Too many messages from your address 127.0.0.1: 3 messages per minute; try again in ")
    check("rate: a MAIL for postmaster@ after it: still 450 4.7.1",
          s.docmd("MAIL", "FROM:<bounce@mx.sender.test>"), "450 4.7.1")
    check("rate: its RCPT postmaster@ has no transaction: 503", s.docmd("RCPT", "TO:<postmaster@bounces.shop.test>"), "503 5.5.1")
    s.quit()
elif scenario == "redis_down":
    s = session()
    # The first step that needs Redis answers 451: MAIL (the rate), RCPT or DATA.
    replies = [s.docmd("MAIL", "FROM:<>")]
    if replies[-1][0] == 250:
        replies.append(s.docmd("RCPT", "TO:<postmaster@bounces.shop.test>"))
    if replies[-1][0] == 250:
        replies.append(data(s, RETURN))
    final = replies[-1]
    check("Redis down: 451 4.3.0", final, "451 4.3.0")
    ok = all(c != 250 for c, _ in replies[2:])
    check("Redis down: no 250 after DATA", (250 if ok else 0, b""), "250")
    s.quit()
print("%d failed" % failed)
PY
}

# collect - turn the mta lines into this script's checks.
collect() {
	local line
	while IFS= read -r line; do
		case $line in
		"ok - "*) pass "${line#ok - }" ;;
		"not ok - "*) fail "${line#not ok - }" ;;
		"#"*) echo "$line" ;;
		esac
	done
}

for sc in ehlo refusals postmaster starttls size smuggling spf_mark; do
	mta "$main_port" "$sc" >"$E2E_TMP/mta-$sc.out" 2>&1
	grep -q '^[0-9]* failed$' "$E2E_TMP/mta-$sc.out" || fail "mta $sc ran to the end" "$(tail -5 "$E2E_TMP/mta-$sc.out")"
	collect <"$E2E_TMP/mta-$sc.out"
done
mta "$strict_port" spf_reject >"$E2E_TMP/mta-spf_reject.out" 2>&1
collect <"$E2E_TMP/mta-spf_reject.out"
mta "$rated_port" rate >"$E2E_TMP/mta-rate.out" 2>&1
grep -q '^[0-9]* failed$' "$E2E_TMP/mta-rate.out" || fail "mta rate ran to the end" "$(tail -5 "$E2E_TMP/mta-rate.out")"
collect <"$E2E_TMP/mta-rate.out"
check_eq "rate: two refusals logged with rule inbound.rate" \
	"$(grep -c 'event=refused rule=inbound.rate reply="450 4.7.1 ' "$E2E_TMP/rated.log")" 2

# Nothing was relayed: the queue holds no message.
out=$(ctl queue list 2>&1)
check_eq "nothing queued (relayed)" "$(printf '%s\n' "$out" | tail -1)" "0 messages"

# The returns to postmaster@ and abuse@ are in admin's INBOX, traced.
wait_for 10 sh -c "'$KURIER_BIN/kurierctl' -c '$E2E_TMP/main.conf' mailbox list admin | grep -q 'SPF-fail'"
list=$(ctl mailbox list admin 2>&1)
check_match "admin's INBOX holds the returns" "$list" "Undelivered Mail"
check_match "admin's INBOX holds the return from the SPF-failing sender" "$list" "SPF-fail"
uid=$(printf '%s\n' "$list" | awk '/SPF-fail/ {print $1; exit}')
msg=$(ctl mailbox show admin "$uid" 2>&1)
# ingest's X-Kurier-* fields on top, then the inbound MX's, then the return's own.
check_match "stored: Authentication-Results first after X-Kurier-*, spf=fail" \
	"$(printf '%s\n' "$msg" | grep -v '^X-Kurier-' | head -2 | tr -d '\r' | tr '\n' ' ')" \
	"^Authentication-Results: kurier.test; spf=fail"
check_match "stored: dkim=none" "$msg" "dkim=none"
check_match "stored: Received-SPF: fail" "$msg" "Received-SPF: fail \(kurier.test: "
check_match "stored: Received by the inbound listener" "$msg" "by kurier.test \(kurier\) with ESMTP id "
log=$E2E_TMP/main.log
check_match "log: inbound_accepted with from, rcpt, size, spf, dkim" "$(grep event=inbound_accepted "$log" | head -1)" \
	'id=[0-9A-Z]+ .*from="" rcpt="postmaster@bounces.shop.test" nrcpt=2 size=[0-9]+ spf=pass dkim=none'
check_match "log: the foreign domain refused" "$(grep 'rule=inbound.relay' "$log")" 'rcpt="victim@elsewhere.test"'
check_match "log: connect names the inbound listener" "$(grep event=connect "$log" | head -1)" "listener=inbound"

# Redis down: nothing is accepted.
kill "$REDIS_PID"
wait_for 10 sh -c "! kill -0 $REDIS_PID 2>/dev/null"
wait_for 10 grep -q "event=redis_down" "$log"
mta "$main_port" redis_down >"$E2E_TMP/mta-redis_down.out" 2>&1
collect <"$E2E_TMP/mta-redis_down.out"

for name in main strict rated; do
	kill -TERM "${kpid[$name]}"
	status=124
	for _ in $(seq 100); do
		if ! kill -0 "${kpid[$name]}" 2>/dev/null; then
			wait "${kpid[$name]}"
			status=$?
			break
		fi
		sleep 0.1
	done
	check_eq "kurierd ($name) exits 0 on SIGTERM" "$status" 0
	if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$E2E_TMP/$name.log"; then
		fail "kurierd ($name): no sanitizer report" "$(grep -E -A12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$E2E_TMP/$name.log" | head -30)"
	else
		pass "kurierd ($name): no sanitizer report"
	fi
done
e2e_done
