#!/usr/bin/env bash
# pop3.sh - the POP3 server end to end: kurierd (mailbox role) on free
# loopback ports ([mailbox] pop3 with STLS, pop3s with implicit TLS) and
# a real redis-server, with real bounce reports from the corpus
# (../shared/testdata/bounces) stored in the user's INBOX by the
# mailbox store, read by Python's poplib (STLS and implicit TLS) and by
# Node's node-pop3 (implicit TLS).
#
# pop3_check.py runs the protocol scenarios: CAPA before and after TLS,
# every command before login, USER/PASS and AUTH PLAIN only over TLS,
# STLS command injection, a 1 MB line and a NUL byte, STAT/LIST/UIDL/
# RETR (byte for byte)/TOP/DELE/RSET/QUIT, bad message numbers, the
# maildrop lock ([IN-USE], released on QUIT and on disconnect), UIDL
# stable across sessions, DELE+QUIT seen in the store (kurierctl
# mailbox list: what IMAP sees) with \Seen on retrieved messages, user
# isolation, dot-stuffing, SASL-IR and continuation, wrong passwords;
# then the address lock-out, the per-address connection limit,
# [policy] max_errors and the idle timeout; RETR and TOP pipelined.  This script adds a
# disabled user, node-pop3, a stop with a session open, and the log
# lines (one per login and logout, never a password).
#
# Environment: KURIER_BIN (kurierd, kurierctl), KURIER_TOOLS
# (mbox_append), KURIER_REDIS_CONF; see lib.sh.  Needs node and npm for
# node-pop3 (installed from tests/e2e/node's lock file when missing).

source "$(dirname "$0")/lib.sh"

e2e_require KURIER_BIN KURIER_TOOLS KURIER_REDIS_CONF

e2e_init
here=$(cd "$(dirname "$0")" && pwd)
CORPUS=$here/../../../shared/testdata/bounces
[ -d "$CORPUS/bounce" ] || e2e_abort "the bounce corpus at $CORPUS"

npm_log=$E2E_TMP/npm.log
npm_pid=""
if [ ! -d "$here/node/node_modules/node-pop3" ]; then
	npm ci --prefix "$here/node" --no-audit --no-fund >"$npm_log" 2>&1 &
	npm_pid=$!
fi

PORT=$(free_port)
start_redis "$E2E_TMP/redis" "$PORT" || e2e_abort "redis-server starts"
read -r P3 P3S < <(port_pair)
CONF=$E2E_TMP/pop3.conf
mkdir -p "$E2E_TMP/data"
conf_head "$CONF" "$E2E_TMP/data" "$PORT" e2e
cat >>"$CONF" <<CONF
[relay]
submission =
submissions =
inbound =

[policy]
auth_fail_limit = 5
max_errors = 10

[mailbox]
pop3 = 127.0.0.1:$P3
pop3s = 127.0.0.1:$P3S
max_connections_per_ip = 5
pop3_timeout = 3s
imap =
imaps =
CONF

ctl() {
	"$KURIER_BIN/kurierctl" -c "$CONF" "$@"
}

pw_shop=pop3-shop-password-1
pw_blog=pop3-blog-password-2
pw_dots=pop3-dots-password-3
for u in shop:$pw_shop blog:$pw_blog dots:$pw_dots gone:pop3-gone-password-4; do
	printf '%s\n' "${u#*:}" | ctl user add "${u%%:*}" --domains "${u%%:*}.example" >>"$E2E_TMP/useradd.log" 2>&1 ||
		e2e_abort "kurierctl user add ${u%%:*}"
done
ctl user set gone --disable >>"$E2E_TMP/useradd.log" 2>&1 || e2e_abort "kurierctl user set gone --disable"

# Three real reports for shop, one message for blog, one with dot lines for dots.
files=("$CORPUS/bounce/lhost-postfix-35.eml" "$CORPUS/bounce/lhost-exchange2007-01.eml" "$CORPUS/bounce/arf-01.eml")
APPEND=$KURIER_TOOLS/mbox_append
"$APPEND" -c "$CONF" -u shop -q "${files[@]}" || e2e_abort "mbox_append for shop"
printf 'From: a@blog.example\r\nSubject: for blog only\r\n\r\nonly blog reads this\r\n' >"$E2E_TMP/blog.eml"
"$APPEND" -c "$CONF" -u blog -q "$E2E_TMP/blog.eml" || e2e_abort "mbox_append for blog"
printf 'Subject: dots\r\n\r\n.\r\n..two\r\n.leading dot\r\nlast line without a line end' >"$E2E_TMP/dots.eml"
"$APPEND" -c "$CONF" -u dots -q "$E2E_TMP/dots.eml" || e2e_abort "mbox_append for dots"
"$APPEND" -c "$CONF" -u gone -q "$E2E_TMP/blog.eml" || e2e_abort "mbox_append for gone"
pass "five messages stored for four users"

klog=$E2E_TMP/kurierd.log
"$KURIER_BIN/kurierd" -c "$CONF" --roles mailbox >"$klog" 2>&1 &
kpid=$!
track "$kpid"
wait_for 15 grep -q "event=mailbox_listening pop3=1 pop3s=1" "$klog" ||
	e2e_abort "kurierd listens on pop3 and pop3s" "$(tail -5 "$klog")"
pass "kurierd listens on pop3 and pop3s"
# The user directory and the store are up before the first login.
wait_for 15 grep -q "client=kurierd-auth" "$klog"

# pop3_check.py's lines: "ok NAME" or "not ok NAME: DETAIL".
run_check() {
	local out line
	out=$(python3 "$here/pop3_check.py" "$@" --pop3 "$P3" --pop3s "$P3S" 2>&1)
	[ $? -eq 0 ] || fail "pop3_check.py $1 ran to its end" "$(printf '%s' "$out" | tail -5)"
	while IFS= read -r line; do
		case $line in
		"ok "*) pass "${line#ok }" ;;
		"not ok "*) fail "${line#not ok }" ;;
		*) [ -n "$line" ] && echo "#   $line" ;;
		esac
	done <<<"$out"
}

run_check main --user shop --password "$pw_shop" --other-user blog --other-password "$pw_blog" \
	--dot-user dots --dot-password "$pw_dots" --dot-file "$E2E_TMP/dots.eml" \
	--files "${files[@]}" --ctl "$KURIER_BIN/kurierctl -c $CONF"

# A disabled user cannot log in, whatever the password.
got=$(python3 - "$P3S" <<'PY' 2>&1
import poplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
p = poplib.POP3_SSL("127.0.0.1", int(sys.argv[1]), context=ctx, timeout=20)
p.user("gone")
try:
    p.pass_("pop3-gone-password-4")
    print("logged in")
except poplib.error_proto as e:
    print(e.args[0].decode())
PY
)
check_eq "a disabled user cannot log in" "$got" "-ERR [AUTH] Authentication failed"

# node-pop3 over implicit TLS reads the reports too.
if [ -n "$npm_pid" ]; then
	wait "$npm_pid"
	check_eq "npm ci for node-pop3" "$?" 0 || tail -5 "$npm_log"
fi
nout=$(cd "$here/node" && node pop3.js "$P3S" shop "$pw_shop" 2>"$E2E_TMP/node.err")
[ -n "$nout" ] || fail "node pop3.js ran" "$(tail -3 "$E2E_TMP/node.err")"
check_match "node-pop3: STAT over implicit TLS" "$nout" '"stat":"2 [0-9]+"'
check_match "node-pop3: UIDL gives UIDVALIDITY.UID" "$nout" '"uidl":\[\["1","[0-9]+\.2"\]'
check_match "node-pop3: RETR returns the stored report" "$nout" 'Microsoft Exchange|exchange'

# The reports left in shop's INBOX after main (the first was deleted), pipelined.
run_check pipeline --user shop --password "$pw_shop" --files "${files[@]:1}"
run_check lockout --user shop --password "$pw_shop" --fail-limit 5
run_check limits --user shop --password "$pw_shop" --per-ip 5 --max-errors 10
run_check idle --user shop --password "$pw_shop" --idle-wait 30

# Logs: one line per login and logout, never a password.
check_match "login logged with user and TLS version" "$(cat "$klog")" \
	'component=pop3 event=login sid=P[0-9a-f]+ client=127\.0\.0\.1 user=shop result=ok tls=TLSv1\.[23] messages=3'
check_match "logout logged with the counts" "$(cat "$klog")" \
	'component=pop3 event=logout .*user=shop retrieved=3 deleted=1 reason=quit'
check_match "failed logins logged" "$(cat "$klog")" 'component=pop3 event=login .*result=failed failures=1'
check_match "a refused second session logged" "$(cat "$klog")" 'event=login .*user=shop result=in_use'
if grep -qE "$pw_shop|$pw_blog|$pw_dots|wrong-password" "$klog"; then
	fail "no password in the log"
else
	pass "no password in the log"
fi

# Stop with a session open: it is told, and kurierd exits 0.
exec 7<>/dev/tcp/127.0.0.1/"$P3"
read -r -t 10 greet <&7
kill -TERM "$kpid"
read -r -t 10 bye <&7
check_match "stop: an open session is told before it is closed" "$bye" '^-ERR \[SYS/TEMP\] Server shutting down'
exec 7<&-
for _ in $(seq 100); do kill -0 "$kpid" 2>/dev/null || break; sleep 0.1; done
wait "$kpid"
check_eq "kurierd exits 0 after SIGTERM" "$?" 0
check_match "greeting names the host" "$greet" '^\+OK kurier\.test kurier POP3 ready'
if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$klog"; then
	fail "kurierd: no sanitizer report" "$(grep -E -A12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$klog" | head -30)"
else
	pass "kurierd: no sanitizer report"
fi

e2e_done
