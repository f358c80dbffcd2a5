#!/usr/bin/env bash
# imap.sh - the IMAP server end to end: kurierd (mailbox role) on free
# loopback ports ([mailbox] imap with STARTTLS, imaps with implicit TLS,
# pop3s for the POP3/IMAP interplay) and a real redis-server, with real
# bounce reports from the corpus (../shared/testdata/bounces) stored in
# the user's INBOX by the mailbox store, read by Python's imaplib
# (STARTTLS and implicit TLS) and by Node's imapflow (implicit TLS and
# STARTTLS).
#
# imap_check.py runs the protocol scenarios (see its header): main
# (every IMAP4rev1 command, FETCH item and SEARCH key, IDLE, UIDPLUS,
# MOVE, NAMESPACE, ID, ENABLE, LITERAL+, UNSELECT, CHILDREN, SASL-IR,
# CONDSTORE; real values: bytes, sizes, envelopes, UIDs from APPENDUID
# and COPYUID, EXPUNGE sequence numbers; UIDs, UIDVALIDITY and flags
# across sessions; user isolation), hostile (literal bombs, nesting,
# bad sequence sets and names, 1 MB lines, every command before login,
# STARTTLS injection), idle (an append by another session, by
# mbox_append, and through a second kurierd on the same Redis), pop3
# (DELE+QUIT seen in IMAP, IMAP EXPUNGE seen in POP3, [IN-USE]),
# lockout and timeout (on the second kurierd, imap_timeout = 3s).  This
# script adds imapflow, the log lines (never a password), a stop with a
# session open and the sanitizer reports.
#
# Environment: KURIER_BIN (kurierd, kurierctl), KURIER_TOOLS
# (mbox_append), KURIER_REDIS_CONF; see lib.sh.  Needs node and npm for
# imapflow (installed from tests/e2e/node's lock file when missing).

source "$(dirname "$0")/lib.sh"

e2e_require KURIER_BIN KURIER_TOOLS KURIER_REDIS_CONF

e2e_init
here=$(cd "$(dirname "$0")" && pwd)
CORPUS=$here/../../../shared/testdata/bounces
[ -d "$CORPUS/bounce" ] || e2e_abort "the bounce corpus at $CORPUS"

npm_log=$E2E_TMP/npm.log
npm_pid=""
if [ ! -d "$here/node/node_modules/imapflow" ]; then
	npm ci --prefix "$here/node" --no-audit --no-fund >"$npm_log" 2>&1 &
	npm_pid=$!
fi

PORT=$(free_port)
start_redis "$E2E_TMP/redis" "$PORT" || e2e_abort "redis-server starts"
read -r I1 I1S < <(port_pair)
read -r I2 I2S < <(port_pair)
P3S=$(free_port)

# mailbox_conf FILE DATA IMAP IMAPS POP3S TIMEOUT - a mailbox-role kurierd.
mailbox_conf() {
	mkdir -p "$2"
	conf_head "$1" "$2" "$PORT" e2e
	cat >>"$1" <<CONF
[relay]
submission =
submissions =
inbound =

[policy]
auth_fail_limit = 5
max_errors = 10

[mailbox]
imap = 127.0.0.1:$3
imaps = 127.0.0.1:$4
imap_timeout = $6
pop3 =
pop3s = $5
max_connections_per_ip = 20
CONF
}
CONF=$E2E_TMP/imap.conf
CONF2=$E2E_TMP/imap2.conf
mailbox_conf "$CONF" "$E2E_TMP/data" "$I1" "$I1S" "127.0.0.1:$P3S" 30m
mailbox_conf "$CONF2" "$E2E_TMP/data2" "$I2" "$I2S" "" 3s

ctl() {
	"$KURIER_BIN/kurierctl" -c "$CONF" "$@"
}

pw_shop=imap-shop-password-1
pw_blog=imap-blog-password-2
pw_pop=imap-pop-password-3
for u in shop:$pw_shop blog:$pw_blog pop:$pw_pop; do
	printf '%s\n' "${u#*:}" | ctl user add "${u%%:*}" --domains "${u%%:*}.example" >>"$E2E_TMP/useradd.log" 2>&1 ||
		e2e_abort "kurierctl user add ${u%%:*}"
done

# Three real reports for shop, one message for blog, four reports for pop
# (the POP3 interplay and the second node's phases use pop).
files=("$CORPUS/bounce/lhost-postfix-35.eml" "$CORPUS/bounce/lhost-exchange2007-01.eml" "$CORPUS/bounce/arf-01.eml")
APPEND=$KURIER_TOOLS/mbox_append
"$APPEND" -c "$CONF" -u shop -q "${files[@]}" || e2e_abort "mbox_append for shop"
printf 'From: a@blog.example\r\nSubject: for blog only\r\n\r\nonly blog reads this\r\n' >"$E2E_TMP/blog.eml"
"$APPEND" -c "$CONF" -u blog -q "$E2E_TMP/blog.eml" || e2e_abort "mbox_append for blog"
"$APPEND" -c "$CONF" -u pop -q "${files[@]}" "$CORPUS/bounce/lhost-exim-54.eml" || e2e_abort "mbox_append for pop"
pass "eight messages stored for three users"

klog=$E2E_TMP/kurierd.log
"$KURIER_BIN/kurierd" -c "$CONF" --roles mailbox >"$klog" 2>&1 &
kpid=$!
track "$kpid"
klog2=$E2E_TMP/kurierd2.log
"$KURIER_BIN/kurierd" -c "$CONF2" --roles mailbox >"$klog2" 2>&1 &
kpid2=$!
track "$kpid2"
wait_for 15 grep -q "event=mailbox_listening .*imap=1 imaps=1" "$klog" ||
	e2e_abort "kurierd listens on imap and imaps" "$(tail -5 "$klog")"
pass "kurierd listens on imap and imaps"
wait_for 15 grep -q "event=mailbox_listening .*imap=1 imaps=1" "$klog2" ||
	e2e_abort "a second kurierd on the same Redis listens" "$(tail -5 "$klog2")"
pass "a second kurierd on the same Redis listens"
# The user directory and the store are up before the first login.
wait_for 15 grep -q "client=kurierd-auth" "$klog"
wait_for 15 grep -q "client=kurierd-auth" "$klog2"

# imap_check.py's lines: "ok NAME" or "not ok NAME: DETAIL".
run_check() {
	local out line
	out=$(python3 "$here/imap_check.py" "$@" 2>&1)
	[ $? -eq 0 ] || fail "imap_check.py $1 ran to its end" "$(printf '%s' "$out" | tail -5)"
	while IFS= read -r line; do
		case $line in
		"ok "*) pass "${line#ok }" ;;
		"not ok "*) fail "${line#not ok }" ;;
		*) [ -n "$line" ] && echo "#   $line" ;;
		esac
	done <<<"$out"
}
node1=(--imap "$I1" --imaps "$I1S")
node2=(--imap "$I2" --imaps "$I2S")

run_check main "${node1[@]}" --user shop --password "$pw_shop" \
	--other-user blog --other-password "$pw_blog" --files "${files[@]}"
run_check hostile "${node1[@]}" --user blog --password "$pw_blog" --max-errors 10

# IDLE: told of an append by another session (with a flag change and an
# expunge), by the store directly (mbox_append publishes), and by an
# APPEND through the second node.
run_check idle "${node1[@]}" --user pop --password "$pw_pop"
printf 'From: late@mx.example\r\nSubject: a late return\r\n\r\nlate\r\n' >"$E2E_TMP/late.eml"
run_check idle "${node1[@]}" --user pop --password "$pw_pop" --label "an mbox_append" \
	--inject "$APPEND -c $CONF2 -u pop -q $E2E_TMP/late.eml"
run_check idle "${node1[@]}" --user pop --password "$pw_pop" --label "an APPEND on another node" \
	--append-port "$I2S"
run_check pop3 "${node1[@]}" --user pop --password "$pw_pop" --pop3s "$P3S"

# imapflow over implicit TLS and over STARTTLS reads a report.
if [ -n "$npm_pid" ]; then
	wait "$npm_pid"
	check_eq "npm ci for imapflow" "$?" 0 || tail -5 "$npm_log"
fi
for mode in tls starttls; do
	port=$I1S
	[ "$mode" = starttls ] && port=$I1
	nout=$(cd "$here/node" && node imap.js "$mode" "$port" shop "$pw_shop" "${files[0]}" 2>"$E2E_TMP/node.err")
	[ -n "$nout" ] || fail "node imap.js $mode ran" "$(tail -3 "$E2E_TMP/node.err")"
	check_match "imapflow $mode: the mailbox opened with its UIDVALIDITY" "$nout" '"exists":3,"uidValidity":"?[0-9]+'
	check_match "imapflow $mode: the envelope of the first report" "$nout" '"subject":"Undelivered Mail Returned to Sender"'
	check_match "imapflow $mode: the source equals the stored report" "$nout" '"sourceEqual":true'
	check_match "imapflow $mode: \\Flagged seen (set by the main phase)" "$nout" '"flags":\[[^]]*\\\\Flagged'
	check_match "imapflow $mode: over TLS" "$nout" '"secure":true'
done

run_check lockout "${node2[@]}" --user blog --password "$pw_blog" --fail-limit 5
run_check timeout "${node2[@]}" --user blog --password "$pw_blog" --idle-wait 30

# Logs: one line per login, never a password.
check_match "login logged with user and TLS" "$(cat "$klog")" \
	'component=imap event=login .*client=127\.0\.0\.1 user=shop result=ok tls=TLSv1\.[23]'
check_match "failed logins logged" "$(cat "$klog")" 'component=imap event=login .*result=failed'
if grep -qE "$pw_shop|$pw_blog|$pw_pop|wrong-password" "$klog" "$klog2"; then
	fail "no password in the log"
else
	pass "no password in the log"
fi

# Stop with a session open: it is told (* BYE), and kurierd exits 0.
exec 7<>/dev/tcp/127.0.0.1/"$I1"
read -r -t 10 greet <&7
kill -TERM "$kpid"
read -r -t 10 bye <&7
check_match "stop: an open session is told before it is closed" "$bye" '^\* BYE '
exec 7<&-
for _ in $(seq 100); do kill -0 "$kpid" 2>/dev/null || break; sleep 0.1; done
wait "$kpid"
check_eq "kurierd exits 0 after SIGTERM" "$?" 0
check_match "greeting names the host" "$greet" '^\* OK \[CAPABILITY [^]]*\] kurier\.test kurier IMAP ready'
kill -TERM "$kpid2"
for _ in $(seq 100); do kill -0 "$kpid2" 2>/dev/null || break; sleep 0.1; done
wait "$kpid2"
check_eq "the second kurierd exits 0 after SIGTERM" "$?" 0
if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$klog" "$klog2"; then
	fail "kurierd: no sanitizer report" "$(grep -h -E -A12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$klog" "$klog2" | head -30)"
else
	pass "kurierd: no sanitizer report"
fi

e2e_done
