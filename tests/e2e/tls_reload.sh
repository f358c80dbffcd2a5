#!/usr/bin/env bash
# tls_reload.sh - SIGHUP loads a new certificate and key: new sessions
# get it (SMTP submission and POP3 over implicit TLS), a session open
# across the reload goes on and submits, and a broken certificate is
# reported while the running one stays.
source "$(dirname "$0")/lib.sh"
e2e_init

rport=$(free_port)
sport=$(free_port)
p3s=$(free_port)
while [ "$p3s" = "$sport" ]; do p3s=$(free_port); done
conf=$E2E_TMP/kurier.conf
tls=$E2E_TMP/tls
mkdir -p "$tls"

make_cert() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=$1" -keyout "$tls/key.pem" -out "$tls/cert.pem" >/dev/null 2>&1
}

# The SHA-256 fingerprint a new POP3 session over implicit TLS is shown.
pop3_fingerprint() {
	openssl s_client -connect "127.0.0.1:$p3s" </dev/null 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2
}

# The SHA-256 fingerprint a new STARTTLS session is shown.
served_fingerprint() {
	openssl s_client -connect "127.0.0.1:$sport" -starttls smtp </dev/null 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2
}

file_fingerprint() {
	openssl x509 -in "$tls/cert.pem" -noout -fingerprint -sha256 | cut -d= -f2
}

make_cert first.test
write_conf "$conf" "$rport" "[tls]
cert = $tls/cert.pem
key = $tls/key.pem
[relay]
inbound =
submission = 127.0.0.1:$sport
submissions =
[mailbox]
pop3 =
pop3s = 127.0.0.1:$p3s
imap =
imaps ="
start_redis "$E2E_TMP/redis" "$rport"
echo 'reload-password-1' | "$KURIER_BIN/kurierctl" -c "$conf" user add shop --domains shop.example >/dev/null
log=$E2E_TMP/kurierd.log
"$KURIER_BIN/kurierd" -c "$conf" >"$log" 2>&1 &
kpid=$!
track "$kpid"
wait_for 30 grep -q "event=relay_listening" "$log"
check_eq "kurierd listens" "$?" 0
first=$(file_fingerprint)
check_eq "new sessions get the configured certificate" "$(served_fingerprint)" "$first"
wait_for 30 grep -q "event=mailbox_listening" "$log"
check_eq "POP3 sessions get it too" "$(pop3_fingerprint)" "$first"

# A session that stays open across the reload (python, stdlib only).
fifo=$E2E_TMP/go
mkfifo "$fifo"
python3 - "$sport" "$fifo" >"$E2E_TMP/session.out" 2>&1 <<'PY' &
import smtplib, ssl, sys
port, fifo = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", port, timeout=20)
s.starttls(context=ctx); s.ehlo()
s.login("shop", "reload-password-1")
print("ready", flush=True)
open(fifo).read()            # wait until the reload happened
code, _ = s.docmd("NOOP")
s.sendmail("a@shop.example", ["x@example.net"], b"From: a@shop.example\r\nSubject: across reload\r\n\r\nbody\r\n")
print("sent", code, flush=True)
s.quit()
PY
spid=$!
track "$spid"
wait_for 30 grep -q ready "$E2E_TMP/session.out"
check_eq "a session is open before the reload" "$?" 0

make_cert second.test
second=$(file_fingerprint)
kill -HUP "$kpid"
wait_for 30 grep -q "event=tls_reloaded" "$log"
check_eq "SIGHUP reloads the certificate" "$?" 0
check_eq "new sessions get the new certificate" "$(served_fingerprint)" "$second"
wait_for 30 grep -q "event=tls_reloaded listeners=pop3,pop3s" "$log"
check_eq "new POP3 sessions get the new certificate" "$(pop3_fingerprint)" "$second"
[ "$first" != "$second" ]
check_eq "the two certificates differ" "$?" 0

echo go >"$fifo"
wait "$spid"
check_eq "the session open across the reload finished cleanly" "$?" 0
check_match "and submitted its message" "$(cat "$E2E_TMP/session.out")" "sent 250"
check_match "kurierd queued it" "$(grep event=queued "$log")" "nrcpt=1"

# A broken certificate: reported, and the running one stays.
echo "not a certificate" >"$tls/cert.pem"
kill -HUP "$kpid"
wait_for 30 grep -q "event=tls_reload_failed" "$log"
check_eq "a broken certificate is reported" "$?" 0
check_match "naming the file" "$(grep event=tls_reload_failed "$log")" "cert.pem"
check_eq "and new sessions still get the last good one" "$(served_fingerprint)" "$second"
check_eq "POP3 sessions too" "$(pop3_fingerprint)" "$second"

kill -TERM "$kpid"
status=0
wait "$kpid" || status=$?
check_eq "kurierd exits 0 on SIGTERM" "$status" 0
if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log"; then
	fail "no sanitizer report" "$(grep -E -m3 'ERROR:|runtime error:' "$log")"
else
	pass "no sanitizer report"
fi
e2e_done
