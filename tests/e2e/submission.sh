#!/usr/bin/env bash
# submission.sh - the submission server end to end: real clients (Python
# smtplib, swaks, curl, nodemailer) against kurierd and a real Redis,
# every reply code, limits, timeouts, DATA smuggling, hostile input,
# 1,000 concurrent connections, Redis going away, and a clean SIGTERM.
#
# Three kurierd (relay role), each with its own data_dir (so its own
# self-signed certificate) and ports, sharing one redis-server:
#   main    max_message_size 1 MiB, max_recipients 3, command_timeout 2s,
#           data_timeout 3s: most cases
#   limits  max_connections 3, max_connections_per_ip 2
#   many    max_connections and max_connections_per_ip 2000
# The protocol-level cases are in smtp_client.py (stdlib Python); this
# script runs them, the other clients, and checks the queue with
# kurierctl and redis-cli.
source "$(dirname "$0")/lib.sh"
e2e_init

here=$(cd "$(dirname "$0")" && pwd)
user=alice
password='Sup3r-secret.pw'
client=(timeout 180 python3 "$here/smtp_client.py")

# 1,000 clients and as many server sockets: raise the soft limit, which
# kurierd inherits.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
	ulimit -n 4096 2>/dev/null || echo "# could not raise ulimit -n to 4096 (hard limit $(ulimit -Hn))"
fi
check_match "ulimit -n is at least 4096" "$(ulimit -n)" '^(unlimited|[4-9][0-9]{3}|[0-9]{5,})$'

# nodemailer: installed from the committed lock file when missing.
npm_log=$E2E_TMP/npm.log
npm_pid=""
if [ ! -d "$here/node/node_modules/nodemailer" ]; then
	npm ci --prefix "$here/node" --no-audit --no-fund >"$npm_log" 2>&1 &
	npm_pid=$!
fi

rport=$(free_port)
start_redis "$E2E_TMP/redis" "$rport" || e2e_abort "redis-server starts"

# conf NAME EXTRA_RELAY_LINES - a config for one kurierd; sets its ports
# in NAME_port and NAME_sport.
conf() {
	local name=$1 extra=$2 p sp
	read -r p sp < <(port_pair)
	printf -v "${name}_port" '%s' "$p"
	printf -v "${name}_sport" '%s' "$sp"
	conf_head "$E2E_TMP/$name.conf" "$E2E_TMP/data-$name" "$rport" e2e
	cat >>"$E2E_TMP/$name.conf" <<CONF
[relay]
inbound =
submission = 127.0.0.1:$p
submissions = 127.0.0.1:$sp
$extra

[policy]
# The cases guess passwords and flood commands from one address; the
# lock-out and junk-command limits at their boundaries are policy.sh's.
auth_fail_limit = 1000000
max_junk_commands = 1000000
CONF
}

conf main "max_message_size = 1048576
max_recipients = 3
max_connections = 200
max_connections_per_ip = 100
command_timeout = 2s
data_timeout = 3s"
conf limits "max_connections = 3
max_connections_per_ip = 2"
conf many "max_connections = 2000
max_connections_per_ip = 2000"

ctl() { "$KURIER_BIN/kurierctl" -c "$E2E_TMP/main.conf" "$@"; }

printf '%s\n' "$password" | ctl user add "$user" --domains shop.example >"$E2E_TMP/useradd.log" 2>&1
check_eq "kurierctl user add" "$?" 0

declare -A kpid
for name in main limits many; do
	"$KURIER_BIN/kurierd" -c "$E2E_TMP/$name.conf" --roles relay >"$E2E_TMP/$name.log" 2>&1 &
	kpid[$name]=$!
	track "${kpid[$name]}"
done
for name in main limits many; do
	wait_for 30 grep -q "event=relay_listening" "$E2E_TMP/$name.log"
	check_eq "kurierd ($name) listens" "$?" 0
	wait_for 30 grep -q "event=redis_up client=kurierd " "$E2E_TMP/$name.log"
	check_eq "kurierd ($name) reaches Redis" "$?" 0
done
nofile=$(awk '/^Max open files/ {print $4}' "/proc/${kpid[many]}/limits" 2>/dev/null)
check_match "kurierd's soft RLIMIT_NOFILE allows 2,000 sessions (is $nofile)" "$nofile" '^(unlimited|[3-9][0-9]{3}|[0-9]{5,})$'

ids=$E2E_TMP/ids
: >"$ids"
args=(--port "$main_port" --sport "$main_sport" --redis "$rport" --prefix e2e:
	--user "$user" --password "$password" --ids "$ids" --log "$E2E_TMP/main.log")

# collect FILE - count the ok/not ok lines of a smtp_client.py run.
collect() {
	local line name
	grep -Eq '^[0-9]+ passed, [0-9]+ failed$' "$1" ||
		fail "smtp_client.py ran to the end ($(basename "$1"))" "$(tail -5 "$1")"
	while IFS= read -r line; do
		case $line in
		"ok - "*) pass "${line#ok - }" ;;
		"not ok - "*)
			name=${line#not ok - }
			E2E_FAIL=$((E2E_FAIL + 1))
			echo "not ok - $E2E_NAME: $name"
			;;
		"#"*) echo "$line" ;;
		esac
	done <"$1"
}

# --- protocol cases: the slow ones (timeouts) in parallel with the rest ------
"${client[@]}" "${args[@]}" --parallel slow >"$E2E_TMP/slow.out" 2>&1 &
slow_pid=$!
"${client[@]}" "${args[@]}" fast >"$E2E_TMP/fast.out" 2>&1
check_eq "smtp_client.py fast cases exit 0" "$?" 0
collect "$E2E_TMP/fast.out"

# --- real clients ---------------------------------------------------------------

# queued_id TEXT - the id from "250 2.0.0 Ok: queued as ID" in TEXT.
queued_id() {
	printf '%s\n' "$1" | grep -oE '2\.0\.0 Ok: queued as [0-9A-Z]{16}' | tail -1 | awk '{print $NF}'
}

# check_queued CLIENT ID MARKER [RCPT] - the message is in the queue with
# its envelope, the user, and its body.
check_queued() {
	local who=$1 id=$2 marker=$3 rcpt=${4:-bob@example.org} show body
	if [ -z "$id" ]; then
		fail "$who: queued (no id)"
		return
	fi
	show=$(ctl queue show "$id" 2>&1)
	check_match "$who: queue show has the sender" "$show" "sender +<alice@shop\.example>"
	check_match "$who: queue show has the recipient" "$show" "recipient <$rcpt>"
	check_match "$who: queue show has the user" "$show" "user +$user"
	check_match "$who: queue show has the client" "$show" "client +127\.0\.0\.1"
	body=$(redis-cli -p "$rport" hget "e2e:m:$id" body)
	check_match "$who: body in Redis has the marker" "$body" "$marker"
	check_match "$who: head in Redis has Received with TLS and the user" \
		"$(redis-cli -p "$rport" hget "e2e:m:$id" head | tr -d '\r' | tr '\n\t' '  ')" \
		"^Received: from .*by kurier\.test \(kurier\) with ESMTPSA id $id.*\(version=TLSv1\.[23] cipher=[A-Z0-9_-]+ bits=[0-9]+\).*\(authenticated user $user\)"
}

if command -v swaks >/dev/null; then
	for mode in starttls implicit; do
		marker="swaks-$mode-$RANDOM$RANDOM"
		if [ $mode = starttls ]; then
			tlsopt=(--tls --server "127.0.0.1:$main_port" --auth PLAIN)
		else
			tlsopt=(--tlsc --server "127.0.0.1:$main_sport" --auth LOGIN)
		fi
		out=$(swaks "${tlsopt[@]}" --auth-user "$user" --auth-password "$password" \
			--from alice@shop.example --to bob@example.org --helo swaks.test \
			--header "Subject: swaks $mode" --body "sent by swaks $marker" \
			--timeout 10 2>&1)
		check_eq "swaks ($mode): exit 0" "$?" 0
		check_match "swaks ($mode): 235 after AUTH" "$out" "<~ +235 2\.7\.0"
		check_queued "swaks ($mode)" "$(queued_id "$out")" "$marker"
	done
	out=$(swaks --tls --server "127.0.0.1:$main_port" --auth PLAIN --auth-user "$user" \
		--auth-password wrong-password --from alice@shop.example --to bob@example.org --timeout 10 2>&1)
	check_match "swaks: a wrong password gets 535 5.7.8" "$out" "<~\*? +535 5\.7\.8"
	out=$(swaks --server "127.0.0.1:$main_port" --auth PLAIN --auth-user "$user" \
		--auth-password "$password" --from alice@shop.example --to bob@example.org --timeout 10 2>&1)
	check_match "swaks: AUTH without TLS is not offered" "$out" "(did not advertise authentication|538 5\.7\.11)"
else
	fail "swaks is installed (deploy/install-deps.sh)"
fi

if command -v curl >/dev/null; then
	for mode in starttls implicit; do
		marker="curl-$mode-$RANDOM$RANDOM"
		printf 'From: alice@shop.example\r\nTo: bob@example.org\r\nSubject: curl %s\r\n\r\nsent by curl %s\r\n' \
			"$mode" "$marker" >"$E2E_TMP/curl.msg"
		if [ $mode = starttls ]; then
			url=smtp://127.0.0.1:$main_port/curl.test
		else
			url=smtps://127.0.0.1:$main_sport/curl.test
		fi
		out=$(curl -sS -v --ssl-reqd --insecure --max-time 15 "$url" --user "$user:$password" \
			--mail-from alice@shop.example --mail-rcpt bob@example.org --mail-rcpt carol@example.net \
			--upload-file "$E2E_TMP/curl.msg" 2>&1)
		check_eq "curl ($mode): exit 0" "$?" 0
		check_queued "curl ($mode)" "$(queued_id "$out")" "$marker"
		check_match "curl ($mode): both recipients" "$(ctl queue show "$(queued_id "$out")" 2>&1)" "recipients +2"
		check_match "curl ($mode): no password in the client's transcript" \
			"$(printf '%s' "$out" | grep -c -- "$password")" '^0$'
	done
	out=$(curl -sS -v --insecure --max-time 15 "smtp://127.0.0.1:$main_port/curl.test" --user "$user:$password" \
		--mail-from alice@shop.example --mail-rcpt bob@example.org --upload-file "$E2E_TMP/curl.msg" 2>&1)
	check_match "curl without TLS cannot log in" "$out" "(530 5\.7\.0|No known authentication|Login denied|538)"
else
	fail "curl is installed (deploy/install-deps.sh)"
fi

if [ -n "$npm_pid" ]; then
	wait "$npm_pid"
	check_eq "npm ci for nodemailer" "$?" 0 || tail -5 "$npm_log"
fi
if [ -d "$here/node/node_modules/nodemailer" ]; then
	for mode in starttls implicit; do
		marker="node-$mode-$RANDOM$RANDOM"
		port=$main_port
		[ $mode = implicit ] && port=$main_sport
		out=$(timeout 30 node "$here/node/submit.js" "$port" $mode "$user" "$password" \
			alice@shop.example bob@example.org "$marker" 2>&1)
		check_eq "nodemailer ($mode): exit 0" "$?" 0
		check_queued "nodemailer ($mode)" "$(queued_id "$out")" "$marker"
	done
else
	fail "nodemailer installed in tests/e2e/node/node_modules"
fi

# --- what smtp_client.py queued ----------------------------------------------------
idof() { awk -v n="$1" '$1 == n {print $2}' "$ids" | tail -1; }
for who in smtplib-starttls smtplib-ssl; do
	id=$(idof "$who")
	if [ -n "$id" ]; then
		check_queued "$who" "$id" "kurier-e2e-$who-"
	else
		fail "$who: queued"
	fi
done
show=$(ctl queue show "$(idof rcpt3)" 2>&1)
check_match "max_recipients: the message has the 3 accepted recipients" "$show" "recipients +3"
check_match "max_recipients: not the refused fourth" "$(printf '%s' "$show" | grep -c 'r3@example.org')" '^0$'
show=$(ctl queue show "$(idof utf8)" 2>&1)
check_match "SMTPUTF8: envelope flag" "$show" "flags +SMTPUTF8"
check_match "SMTPUTF8: UTF-8 recipient kept" "$show" "recipient <j(ö|\\\\xc3\\\\xb6|\\\\u00f6)rg@example\.org>"
show=$(ctl queue show "$(idof dsn)" 2>&1)
check_match "DSN: ENVID in the envelope (xtext decoded)" "$show" "envid +order\+4711"
check_match "DSN: RET in the envelope" "$show" "ret +HDRS"
check_match "DSN: ORCPT of the first recipient" "$show" "orcpt +rfc822;bob\+x@example\.org"
check_match "DSN: NOTIFY of the first recipient" "$show" "notify +SUCCESS,FAILURE"
check_match "DSN: NOTIFY=NEVER of the second" "$show" "notify +NEVER"

# --- connection limits and 1,000 connections (their own kurierd) --------------------
"${client[@]}" "${args[@]}" --limit-port "$limits_port" limits >"$E2E_TMP/limits.out" 2>&1
collect "$E2E_TMP/limits.out"
"${client[@]}" "${args[@]}" --many-port "$many_port" --many 1000 concurrency >"$E2E_TMP/many.out" 2>&1
collect "$E2E_TMP/many.out"
kill -0 "${kpid[many]}" 2>/dev/null
check_eq "kurierd survives 1,000 connections" "$?" 0
out=$(printf 'EHLO x\r\nQUIT\r\n' | timeout 5 python3 -c '
import socket,sys
s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),timeout=5)
s.sendall(sys.stdin.buffer.read()); d=b""
while True:
    c=s.recv(4096)
    if not c: break
    d+=c
print(d.decode())' "$many_port" 2>&1)
check_match "after 1,000 connections a new session works" "$out" "221 2\.0\.0"
sessions_closed() {
	[ "$(grep -c 'event=connect ' "$1")" = "$(grep -c 'event=disconnect ' "$1")" ]
}
wait_for 30 sessions_closed "$E2E_TMP/many.log"
check_eq "after 1,000 connections every session is closed ($(grep -c 'event=connect ' "$E2E_TMP/many.log") connects)" "$?" 0

# --- the slow cases ------------------------------------------------------------------
wait "$slow_pid"
check_eq "smtp_client.py slow cases exit 0" "$?" 0
collect "$E2E_TMP/slow.out"

# --- an answer after the 421 (Redis paused for all: alone) ------------------------
"${client[@]}" "${args[@]}" closing_is_final >"$E2E_TMP/closing.out" 2>&1
collect "$E2E_TMP/closing.out"

# --- Redis goes away mid-session, comes back ----------------------------------------
ups=$(grep -c 'event=redis_up client=kurierd ' "$E2E_TMP/main.log")
"${client[@]}" "${args[@]}" redis_down >"$E2E_TMP/redis.out" 2>&1
collect "$E2E_TMP/redis.out"
check_match "the refusal is logged (policy_unavailable or queue_failed)" \
	"$(grep -E 'event=(policy_unavailable|queue_failed)' "$E2E_TMP/main.log")" "hint="
start_redis "$E2E_TMP/redis" "$rport"
wait_for 30 sh -c "[ \$(grep -c 'event=redis_up client=kurierd ' '$E2E_TMP/main.log') -gt $ups ]"
check_eq "kurierd reconnects to Redis" "$?" 0
"${client[@]}" "${args[@]}" normal >"$E2E_TMP/normal.out" 2>&1
collect "$E2E_TMP/normal.out"

# --- logs, sanitizers, SIGTERM ---------------------------------------------------------
for name in main limits many; do
	log=$E2E_TMP/$name.log
	check_match "kurierd ($name): the password is not logged" "$(grep -c -- "$password" "$log")" '^0$'
	if [ "$name" = main ]; then
		# SIGTERM with one idle session and one in DATA.
		"${client[@]}" "${args[@]}" --kurierd-pid "${kpid[main]}" shutdown >"$E2E_TMP/shutdown.out" 2>&1
		collect "$E2E_TMP/shutdown.out"
	else
		kill -TERM "${kpid[$name]}"
	fi
	status=0
	for _ in $(seq 80); do kill -0 "${kpid[$name]}" 2>/dev/null || break; sleep 0.1; done
	wait "${kpid[$name]}" 2>/dev/null || status=$?
	check_eq "kurierd ($name): exits 0 on SIGTERM" "$status" 0
	if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log"; then
		fail "kurierd ($name): no sanitizer report" "$(grep -E -A12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log" | head -30)"
	else
		pass "kurierd ($name): no sanitizer report"
	fi
done

e2e_done
