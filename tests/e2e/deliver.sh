#!/usr/bin/env bash
# deliver.sh - delivery end to end: kurierd (relay+deliver roles) takes
# mail on submission and delivers it to a sink MX (sink.py) found through
# a test DNS server (dnsmasq), with a real Redis.  Each scenario asserts
# the outcome twice: what the sink received (its spool: one record per
# transaction) and what `kurierctl queue show` says of each recipient.
#
# One sink process listens on one port (the config's mx_port) on several
# loopback addresses, each with its own behaviour:
#   127.0.0.2   accept        MX 10 of mxorder.test; mx.sink.test (dkim.test,
#                             rsa-only.test, verp.test, spfpass.test, ...)
#   127.0.0.3   accept        MX 20 of mxorder.test: must get nothing
#   127.0.0.4   greets 421    MX 10 of mxfail.test
#   127.0.0.5   accept        MX 20 of mxfail.test and mxdown.test
#   127.0.0.6   accept        A record of afallback.test (no MX)
#   127.0.0.7   451 once      tempfail.test (after the data)
#   127.0.0.8   550 5.1.1     for bad@partial.test
#   127.0.0.9   STARTTLS+AUTH the smarthost (route.*)
#   127.0.0.10  drops once    drop.test: closes after the data, no reply
#   127.0.0.11  STARTTLS      tls.test, self-signed certificate
#   127.0.0.12  accept        news1.test ... news5.test (the newsletter)
#   127.0.0.13  (nothing)     MX 10 of mxdown.test: connection refused
#   127.0.0.15  451 once      tempfail-rcpt.test (to the RCPTs)
# DNS also has nullmx.test (MX 0 ".", RFC 7505), broken.test (SERVFAIL),
# and NXDOMAIN for every name not listed.
#
# Three kurierd runs, one after the other, each with its own Redis prefix:
#   main   MX routing, bounces, retries, TLS, DKIM, VERP, the newsletter
#   smart  route.* = 127.0.0.9 with AUTH over TLS
#   spf    spf_preflight = defer
# The messages of a run are submitted in one session, then checked one
# scenario after the other.  Every wait is bounded (see deliver_lib.sh):
# a kurierd that does not deliver makes the checks fail, never the script
# hang.  Environment: KURIER_BIN (default bin/), DELIVER_WAIT (seconds a
# message may take, default 30), KURIER_E2E_KEEP=DIR (keep the logs,
# configs, messages and the sink's spool in DIR).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/deliver_lib.sh"
e2e_init

# KURIER_E2E_KEEP=DIR keeps the logs, configs and the sink's spool there.
trap 'keep_artifacts; e2e_cleanup' EXIT

user=shop
password='Deliver-test.pw1'
relay_user=relayuser
relay_password='Smarthost.pw9'
data=$E2E_TMP/data
verify=$E2E_DIR/dkim_verify.py

find_sink_python || { fail "a python3 with aiosmtpd and dkimpy"; e2e_done; exit 1; }

rport=$(free_port2)
start_redis "$E2E_TMP/redis" "$rport" || { fail "redis-server starts"; e2e_done; exit 1; }
start_servfail_stub || { fail "the SERVFAIL stub starts"; e2e_done; exit 1; }
make_cert "$E2E_TMP/cert" || { fail "openssl makes the sink's certificate"; e2e_done; exit 1; }

# --- DNS -------------------------------------------------------------------------------

dns=()
# mx DOMAIN PREF HOST [IP] - an MX record, and the host's A record.
mx() {
	dns+=("--mx-host=$1,$3,$2")
	[ $# -ge 4 ] && dns+=("--host-record=$3,$4")
	return 0
}
mx mxorder.test 10 mx1.mxorder.test 127.0.0.2
mx mxorder.test 20 mx2.mxorder.test 127.0.0.3
mx mxfail.test 10 mx1.mxfail.test 127.0.0.4
mx mxfail.test 20 mx2.mxfail.test 127.0.0.5
mx mxdown.test 10 mx1.mxdown.test 127.0.0.13
mx mxdown.test 20 mx2.mxdown.test 127.0.0.5
dns+=("--host-record=afallback.test,127.0.0.6")
# kurier.test is the hostname of the kurierd under test: MX records naming
# it are dropped with every less preferred one (RFC 5321 5.1).
dns+=("--host-record=kurier.test,127.0.0.5")
dns+=("--mx-host=loop.test,kurier.test,10")
mx loopbackup.test 10 mx1.loopbackup.test 127.0.0.13
dns+=("--mx-host=loopbackup.test,kurier.test,20")
dns+=("--mx-host=nullmx.test,.,0")
mx tempfail.test 10 mx.tempfail.test 127.0.0.7
mx tempfail-rcpt.test 10 mx.tempfail-rcpt.test 127.0.0.15
mx partial.test 10 mx.partial.test 127.0.0.8
mx drop.test 10 mx.drop.test 127.0.0.10
mx tls.test 10 mx.tls.test 127.0.0.11
dns+=("--host-record=mx.sink.test,127.0.0.2")
for d in dkim.test rsa-only.test verp.test spfpass.test spfheld.test; do
	mx "$d" 10 mx.sink.test
done
dns+=("--host-record=mx.news.test,127.0.0.12")
for i in 1 2 3 4 5; do
	mx "news$i.test" 10 mx.news.test
done
dns+=("--server=/broken.test/127.0.0.1#$SERVFAIL_PORT")
dns+=("--txt-record=bounces.example.com,v=spf1 ip4:127.0.0.1 -all")
dns+=("--txt-record=bounces.letters.example,v=spf1 ip4:127.0.0.1 -all")
dns+=("--txt-record=bounces.spffail.example,v=spf1 -all")
start_dns "${dns[@]}" || { fail "dnsmasq starts"; e2e_done; exit 1; }

# The records the scenarios rely on, as a resolver sees them.
check_eq "dns: mxorder.test has MX 10 and MX 20" "$(dns_query mxorder.test MX | sort)" \
	"$(printf 'mxorder.test. MX 10 mx1.mxorder.test.\nmxorder.test. MX 20 mx2.mxorder.test.\nrcode NOERROR')"
check_match "dns: mx1.mxorder.test is 127.0.0.2" "$(dns_query mx1.mxorder.test A)" "A 127\.0\.0\.2$"
check_eq "dns: nullmx.test is a null MX (MX 0 .)" "$(dns_query nullmx.test MX)" \
	"$(printf 'rcode NOERROR\nnullmx.test. MX 0 .')"
check_eq "dns: afallback.test has no MX (NOERROR, no answer)" "$(dns_query afallback.test MX)" "rcode NOERROR"
check_match "dns: afallback.test has an A record" "$(dns_query afallback.test A)" "A 127\.0\.0\.6$"
check_eq "dns: nx.test is NXDOMAIN" "$(dns_query nx.test MX)" "rcode NXDOMAIN"
check_eq "dns: anywhere.test is NXDOMAIN" "$(dns_query anywhere.test A)" "rcode NXDOMAIN"
check_eq "dns: broken.test answers SERVFAIL" "$(dns_query broken.test MX)" "rcode SERVFAIL"
check_match "dns: SPF of bounces.example.com" "$(dns_query bounces.example.com TXT)" \
	"TXT v=spf1 ip4:127\.0\.0\.1 -all$"
check_match "dns: SPF of bounces.spffail.example" "$(dns_query bounces.spffail.example TXT)" "TXT v=spf1 -all$"

# --- the sink ----------------------------------------------------------------------------

sport=$(free_port2)
cert=("$E2E_TMP/cert/cert.pem" "$E2E_TMP/cert/key.pem")
start_sink sink \
	--listen "127.0.0.2:$sport" \
	--listen "127.0.0.3:$sport" \
	--listen "127.0.0.4:$sport" --greet 421 \
	--listen "127.0.0.5:$sport" \
	--listen "127.0.0.6:$sport" \
	--listen "127.0.0.7:$sport" --tempfail-first 1 \
	--listen "127.0.0.8:$sport" --reject-rcpt bad@partial.test \
	--listen "127.0.0.9:$sport" --starttls "${cert[@]}" --auth "$relay_user:$relay_password" \
	--listen "127.0.0.10:$sport" --drop-after-data \
	--listen "127.0.0.11:$sport" --starttls "${cert[@]}" \
	--listen "127.0.0.12:$sport" \
	--listen "127.0.0.15:$sport" --tempfail-first 1 --tempfail-at rcpt ||
	{ fail "sink.py starts"; e2e_done; exit 1; }
pass "sink.py listens on 12 addresses, port $sport"

# --- configuration ------------------------------------------------------------------------

# dconf NAME DELIVER_LINES [SECTIONS] - a config for one kurierd run: own
# Redis prefix and submission port (NAME_port), the shared data_dir.
dconf() {
	local name=$1 p sp
	p=$(free_port2)
	sp=$(free_port2)
	while [ "$sp" = "$p" ]; do sp=$(free_port2); done
	printf -v "${name}_port" '%s' "$p"
	cat >"$E2E_TMP/$name.conf" <<CONF
[server]
hostname = kurier.test
data_dir = $data
log_level = info
shutdown_grace = 2s

[redis]
address = 127.0.0.1:$rport
prefix = $name:
reconnect_max = 200ms

[relay]
inbound =
submission = 127.0.0.1:$p
submissions = 127.0.0.1:$sp

[deliver]
dns_server = 127.0.0.1:$DNS_PORT
dns_timeout = 2s
mx_port = $sport
outbound_ip = 127.0.0.1
retry = 1s
lifetime = 10m
connect_timeout = 5s
greeting_timeout = 10s
command_timeout = 10s
data_init_timeout = 10s
data_block_timeout = 10s
data_end_timeout = 10s
idle_timeout = 1s
$2

[domain example.com]
dkim_selector = s1, e1

[domain letters.example]
dkim_selector = n1

[destination rsa-only.test]
dkim = rsa
${3:-}
CONF
}

dconf main ""
dconf smart "route.* = 127.0.0.9:$sport
smarthost_user = $relay_user
smarthost_password = $relay_password"
dconf spf "spf_preflight = defer" "
[domain spffail.example]
return_path = bounces.spffail.example"

# --- DKIM keys ------------------------------------------------------------------------------

dkimtxt=$E2E_TMP/dkim.txt
: >"$dkimtxt"
# keygen DOMAIN SELECTOR ALGO
keygen() {
	local out rc k=$1.$2 algo=$3
	out=$(kctl "$E2E_TMP/main.conf" dkim keygen "$1" --selector "$2" --algo "$algo" 2>"$E2E_TMP/keygen-$k.err")
	rc=$?
	check_eq "kurierctl dkim keygen $1 --selector $2 --algo $algo: exit 0" "$rc" 0 ||
		sed 's/^/#   /' "$E2E_TMP/keygen-$k.err" | head -3
	[ -s "$data/dkim/$k.key" ]
	check_eq "dkim keygen: key in data_dir/dkim/$k.key" "$?" 0
	check_match "dkim keygen $k: prints the TXT record (v=DKIM1, k=$algo, p=)" "$out" \
		"v=DKIM1.*k=$algo.*p="
	printf '%s\n' "$out" >>"$dkimtxt"
}
keygen example.com s1 rsa
keygen example.com e1 ed25519
keygen letters.example n1 rsa

# --- messages --------------------------------------------------------------------------------

# mkmsg FILE FROM TO MARKER [HEADER...] - a message with CRLF lines, its
# own Date and Message-ID (so kurierd adds only Received), a line that
# starts with a dot and lines that DKIM canonicalization must not change.
mkmsg() {
	local file=$1 from=$2 to=$3 marker=$4 h
	shift 4
	{
		printf 'From: <%s>\r\nTo: <%s>\r\nSubject: delivery test %s\r\n' "$from" "$to" "$marker"
		printf 'Date: %s\r\nMessage-ID: <%s@deliver.test>\r\nMIME-Version: 1.0\r\n' "$(date -R)" "$marker"
		printf 'Content-Type: text/plain; charset=us-ascii\r\n'
		for h in "$@"; do printf '%s\r\n' "$h"; done
		printf '\r\nHello,\r\n\r\n.a line that starts with a dot\r\n'
		printf 'marker %s\r\n  indented,  with  trailing  space \r\n\r\n' "$marker"
		printf '%s\r\n' "$(printf 'x%.0s' $(seq 200))"
		printf -- '-- \r\nkurier delivery test\r\n\r\n'
	} >"$file"
}

declare -A mid      # scenario -> queue id
declare -A mfile    # scenario -> submitted message file
batch=()            # scenarios to submit with send_batch
# send SCENARIO FROM RCPTS [HEADER...] - write the scenario's message and
# add it to the next batch.
send() {
	local sc=$1 from=$2 rcpts=$3 first
	shift 3
	first=${rcpts%%,*}
	[ "${rcpts:0:1}" = @ ] && first="undisclosed-recipients"
	mfile[$sc]=$E2E_TMP/msg-$sc.eml
	mid[$sc]=""
	mkmsg "${mfile[$sc]}" "$from" "$first" "$sc-$RANDOM$RANDOM" "$@"
	printf '%s\t%s\t%s\t%s\n' "$sc" "$from" "$rcpts" "${mfile[$sc]}" >>"$E2E_TMP/batch"
	batch+=("$sc")
}

# send_batch CONF_NAME - submit the batch in one session; remember the ids.
send_batch() {
	local port_var=${1}_port sc tag id rest out=$E2E_TMP/submit-$1.out
	submit "${!port_var}" "$user" "$password" "$E2E_TMP/batch" >"$out" 2>&1
	while read -r tag id rest; do
		[ -n "${mfile[$tag]:-}" ] && [ "$id" != ERROR ] && mid[$tag]=$id
	done <"$out"
	for sc in "${batch[@]}"; do
		if [ -n "${mid[$sc]}" ]; then
			pass "$sc: submitted"
		else
			fail "$sc: submitted" "$(grep "^$sc " "$out" || tail -3 "$out")"
		fi
	done
	batch=()
	rm -f "$E2E_TMP/batch"
}

# show SCENARIO CONF_NAME - kurierctl queue show of the scenario's message.
show() {
	[ -n "${mid[$1]}" ] || return 0
	kctl "$E2E_TMP/$2.conf" queue show "${mid[$1]}" 2>&1
}

# settled SCENARIO CONF_NAME - wait until every recipient is final.
settled() {
	if [ -z "${mid[$1]}" ]; then
		fail "$1: every recipient final within the wait" "not submitted"
		return
	fi
	if wait_settled "$E2E_TMP/$2.conf" "${mid[$1]}"; then
		pass "$1: every recipient final within the wait"
	else
		fail "$1: every recipient final within the wait" \
			"$(show "$1" "$2" | grep -E '^(recipient|  state|  attempts|  last reply|  [a-z0-9.-]+ \()' | head -12)" \
			"$(kurierd_alive "$2" || echo "kurierd ($2) is not running")"
	fi
}

# state SCENARIO CONF_NAME ADDR WANT - recipient ADDR's state.
check_state() {
	check_eq "$1: <$3> $4" "$(rcpt_field "$(show "$1" "$2")" "$3" state)" "$4"
}

user_add() {
	printf '%s\n' "$password" | kctl "$E2E_TMP/$1.conf" user add "$user" \
		--domains example.com,letters.example,spffail.example >"$E2E_TMP/useradd-$1.log" 2>&1
	check_eq "kurierctl user add ($1)" "$?" 0 || sed 's/^/#   /' "$E2E_TMP/useradd-$1.log"
}

# run_group NAME - user, kurierd; returns 1 (after a failure) if it did not start.
run_group() {
	user_add "$1"
	if start_kurierd "$1" "$E2E_TMP/$1.conf"; then
		pass "kurierd ($1) starts with the relay and deliver roles"
		return 0
	fi
	fail "kurierd ($1) starts with the relay and deliver roles: its scenarios are not run"
	return 1
}

# ============================================================================================
# main: MX routing, bounces, retries, TLS, DKIM, VERP, newsletter
# ============================================================================================
if run_group main; then
	from=alice@example.com
	send mxorder $from u@mxorder.test
	send mxfail $from u@mxfail.test
	send mxdown $from u@mxdown.test
	send afallback $from u@afallback.test
	send loop $from u@loop.test
	send loopbackup $from u@loopbackup.test
	send nullmx $from u@nullmx.test
	send nxdomain $from u@nx.test
	send servfail $from u@broken.test
	send tempfail $from u@tempfail.test
	send tempfail-rcpt $from u@tempfail-rcpt.test
	send partial $from a@partial.test,bad@partial.test,c@partial.test
	send drop $from u@drop.test
	send tls $from u@tls.test
	send dkim $from u@dkim.test
	send rsa-only $from u@rsa-only.test
	for i in 1 2 3; do send verp$i $from "v$i@verp.test"; done
	rcpts=$E2E_TMP/news.rcpts
	for d in 1 2 3 4 5; do for i in $(seq 200); do echo "r$i@news$d.test"; done; done >"$rcpts"
	send news news@letters.example "@$rcpts" \
		"List-Unsubscribe: <mailto:unsubscribe@letters.example>"
	send_batch main

	# --- MX ordering ---
	settled mxorder main
	check_state mxorder main u@mxorder.test delivered
	check_eq "mxorder: accepted once at MX 10 (127.0.0.2)" \
		"$(sink_q --listen 127.0.0.2 --rcpt u@mxorder.test --status accepted --count)" 1
	check_eq "mxorder: MX 20 (127.0.0.3) never contacted" "$(sink_q --listen 127.0.0.3 --count)" 0

	settled mxfail main
	check_state mxfail main u@mxfail.test delivered
	check_eq "mxfail: accepted once at MX 20 (127.0.0.5)" \
		"$(sink_q --listen 127.0.0.5 --rcpt u@mxfail.test --status accepted --count)" 1
	check_match "mxfail: MX 10 (421 greeting) was tried" \
		"$(sink_q --listen 127.0.0.4 --status refused --count)" '^[1-9][0-9]*$'
	first_421=$(sink_q --listen 127.0.0.4 --status refused --field seq | head -1)
	ok_5=$(sink_q --listen 127.0.0.5 --rcpt u@mxfail.test --status accepted --field seq | head -1)
	check_eq "mxfail: MX 10 tried before MX 20" \
		"$([ -n "$first_421" ] && [ -n "$ok_5" ] && [ "$first_421" -lt "$ok_5" ] && echo yes)" yes

	settled mxdown main
	check_state mxdown main u@mxdown.test delivered
	check_eq "mxdown: MX 10 not listening, accepted once at MX 20" \
		"$(sink_q --listen 127.0.0.5 --rcpt u@mxdown.test --status accepted --count)" 1

	# --- A fallback ---
	settled afallback main
	check_state afallback main u@afallback.test delivered
	check_eq "afallback: no MX, accepted once at the A record (127.0.0.6)" \
		"$(sink_q --listen 127.0.0.6 --rcpt u@afallback.test --status accepted --count)" 1

	# --- our own name among the MX hosts (RFC 5321 5.1) ---
	settled loop main
	check_state loop main u@loop.test bounced
	check_match "loop: last reply says the mail loops back (5.4.6)" \
		"$(rcpt_field "$(show loop main)" u@loop.test "last reply")" '5\.4\.6.*loops back'
	if wait_rcpt "$E2E_TMP/main.conf" "${mid[loopbackup]}" u@loopbackup.test 'state +deferred$'; then
		pass "loopbackup: MX 10 down and MX 20 is us: deferred"
	else
		fail "loopbackup: MX 10 down and MX 20 is us: deferred" "$(show loopbackup main | grep -A5 '^recipient')"
	fi
	check_eq "loop, loopbackup: nothing reached a server" \
		"$(sink_q --rcpt u@loop.test --count)$(sink_q --rcpt u@loopbackup.test --count)" 00
	check_exit "loopbackup: queue delete" 0 kctl "$E2E_TMP/main.conf" queue delete "${mid[loopbackup]}"

	# --- null MX, NXDOMAIN, SERVFAIL ---
	settled nullmx main
	s=$(show nullmx main)
	check_state nullmx main u@nullmx.test bounced
	check_match "nullmx: last reply has 5.1.10 (RFC 7505)" "$(rcpt_field "$s" u@nullmx.test "last reply")" '5\.1\.10'
	settled nxdomain main
	check_state nxdomain main u@nx.test bounced
	check_match "nxdomain: last reply is a permanent 5.x.x" \
		"$(rcpt_field "$(show nxdomain main)" u@nx.test "last reply")" '(^|[^0-9])5\.[0-9]+\.[0-9]+'
	# kurier's own DNS result is a hard bounce like a remote 5.1.2: suppressed.
	check_match "nxdomain: suppressed for the sender's domain (hard-bounce)" \
		"$(kctl "$E2E_TMP/main.conf" suppression check u@nx.test --domain example.com)" 'hard-bounce'
	check_match "nullmx: suppressed for the sender's domain (hard-bounce)" \
		"$(kctl "$E2E_TMP/main.conf" suppression check u@nullmx.test --domain example.com)" 'hard-bounce'
	check_eq "nullmx, nxdomain: nothing reached the sink" \
		"$(sink_q --rcpt u@nullmx.test --count)$(sink_q --rcpt u@nx.test --count)" 00
	if wait_rcpt "$E2E_TMP/main.conf" "${mid[servfail]}" u@broken.test 'attempts +([2-9]|[1-9][0-9]+)$'; then
		pass "servfail: retried (2 attempts or more)"
	else
		fail "servfail: retried (2 attempts or more)" "$(show servfail main | grep -A5 '^recipient')"
	fi
	s=$(show servfail main)
	check_eq "servfail: <u@broken.test> deferred, not bounced" "$(rcpt_field "$s" u@broken.test state)" deferred
	check_match "servfail: last reply is temporary (4.x.x)" "$(rcpt_field "$s" u@broken.test "last reply")" \
		'(^|[^0-9])4\.[0-9]+\.[0-9]+'
	if [ -n "${mid[servfail]}" ]; then
		check_exit "servfail: queue delete" 0 kctl "$E2E_TMP/main.conf" queue delete "${mid[servfail]}"
	fi

	# --- 451, then accepted ---
	settled tempfail main
	s=$(show tempfail main)
	check_state tempfail main u@tempfail.test delivered
	check_eq "tempfail: 2 attempts" "$(rcpt_field "$s" u@tempfail.test attempts)" 2
	check_eq "tempfail: sink saw one 451 after the data" \
		"$(sink_q --listen 127.0.0.7 --rcpt u@tempfail.test --status tempfailed --count)" 1
	check_eq "tempfail: accepted exactly once" \
		"$(sink_q --rcpt u@tempfail.test --status accepted --count)" 1
	settled tempfail-rcpt main
	s=$(show tempfail-rcpt main)
	check_state tempfail-rcpt main u@tempfail-rcpt.test delivered
	check_eq "tempfail-rcpt: 2 attempts" "$(rcpt_field "$s" u@tempfail-rcpt.test attempts)" 2
	check_eq "tempfail-rcpt: sink saw a transaction with the RCPT refused 451" \
		"$(sink_q --listen 127.0.0.15 --status tempfailed --field rcpt_refused)" u@tempfail-rcpt.test
	check_eq "tempfail-rcpt: accepted exactly once" \
		"$(sink_q --rcpt u@tempfail-rcpt.test --status accepted --count)" 1

	# --- 550 for one of three ---
	settled partial main
	s=$(show partial main)
	check_state partial main a@partial.test delivered
	check_state partial main c@partial.test delivered
	check_state partial main bad@partial.test bounced
	check_match "partial: bad@ has the 550 5.1.1 in last reply" \
		"$(rcpt_field "$s" bad@partial.test "last reply")" '550.*5\.1\.1'
	check_eq "partial: one transaction at the MX" "$(sink_q --listen 127.0.0.8 --count)" 1
	check_eq "partial: it was accepted for a@ and c@" \
		"$(sink_q --listen 127.0.0.8 --status accepted --field rcpt)" "a@partial.test,c@partial.test"
	check_eq "partial: and carried the refused bad@ too" \
		"$(sink_q --listen 127.0.0.8 --status accepted --field rcpt_refused)" bad@partial.test

	# --- connection dropped after the data ---
	settled drop main
	s=$(show drop main)
	check_state drop main u@drop.test delivered
	check_eq "drop: 2 attempts" "$(rcpt_field "$s" u@drop.test attempts)" 2
	check_eq "drop: sink recorded the dropped copy" \
		"$(sink_q --listen 127.0.0.10 --rcpt u@drop.test --status dropped --count)" 1
	check_eq "drop: exactly one accepted copy" \
		"$(sink_q --rcpt u@drop.test --status accepted --count)" 1

	# --- STARTTLS with a self-signed certificate ---
	settled tls main
	check_state tls main u@tls.test delivered
	check_eq "tls: accepted once over TLS" \
		"$(sink_q --listen 127.0.0.11 --rcpt u@tls.test --status accepted --field tls)" true
	check_match "tls: TLS 1.2 or 1.3" \
		"$(sink_q --listen 127.0.0.11 --rcpt u@tls.test --status accepted --field tls_version)" '^TLSv1\.[23]$'

	# --- DKIM ---
	# dkim_check SCENARIO RCPT NSIG ALGOS(sorted, space-separated)
	dkim_check() {
		local sc=$1 rcpt=$2 n=$3 algos=$4 eml=$E2E_TMP/got-$1.eml sigs names v
		settled "$sc" main
		check_state "$sc" main "$rcpt" delivered
		if ! sink_q --rcpt "$rcpt" --status accepted --data >"$eml" 2>"$eml.err"; then
			fail "$sc: one accepted copy at the sink" "$(cat "$eml.err")"
			return
		fi
		sigs=$(sink_q --rcpt "$rcpt" --status accepted --header DKIM-Signature)
		check_eq "$sc: $n DKIM-Signature header(s)" "$(printf '%s' "$sigs" | grep -c .)" "$n"
		check_eq "$sc: algorithms" "$(while IFS= read -r v; do dkim_tag "$v" a; done <<<"$sigs" | sort | tr '\n' ' ' | sed 's/ $//')" "$algos"
		check_eq "$sc: d=example.com" "$(while IFS= read -r v; do dkim_tag "$v" d; done <<<"$sigs" | sort -u)" example.com
		names=$(msg_without_trace "$eml" "$eml.rest")
		check_match "$sc: the added fields are the signatures and Received" "$names" \
			'^(dkim-signature |received )*(dkim-signature|received)$'
		if cmp -s "$eml.rest" "${mfile[$sc]}"; then
			pass "$sc: the rest is byte-identical to what was submitted"
		else
			fail "$sc: the rest is byte-identical to what was submitted" "$(cmp "$eml.rest" "${mfile[$sc]}" 2>&1)"
		fi
		check_exit "$sc: dkim_verify.py: $n signature(s), each passes" 0 \
			"$SINK_PY" "$verify" --expect "$n" "$dkimtxt" "$eml"
	}
	dkim_check dkim u@dkim.test 2 "ed25519-sha256 rsa-sha256"
	check_eq "dkim: selectors s1 and e1" \
		"$(sink_q --rcpt u@dkim.test --status accepted --header DKIM-Signature | while IFS= read -r v; do dkim_tag "$v" s; done | sort | tr '\n' ' ')" "e1 s1 "
	dkim_check rsa-only u@rsa-only.test 1 rsa-sha256
	check_eq "rsa-only: selector s1" \
		"$(dkim_tag "$(sink_q --rcpt u@rsa-only.test --status accepted --header DKIM-Signature)" s)" s1

	# --- VERP ---
	for i in 1 2 3; do settled "verp$i" main; done
	verps=$(for i in 1 2 3; do sink_q --rcpt "v$i@verp.test" --status accepted --field mail_from; done)
	check_eq "verp: three messages delivered once each" "$(printf '%s\n' "$verps" | grep -c .)" 3
	check_eq "verp: all three MAIL FROM are b+TOKEN@bounces.example.com" \
		"$(printf '%s\n' "$verps" | grep -Eic '^b\+[0-9a-z.]+@bounces\.example\.com$')" 3
	check_eq "verp: a different MAIL FROM per message" "$(printf '%s\n' "$verps" | sort -fu | grep -c .)" 3

	# --- the newsletter: 1,000 recipients, 5 domains ---
	settled news main
	s=$(show news main)
	check_eq "news: 1000 recipients delivered" "$(printf '%s\n' "$s" | grep -Ec '^  state +delivered$')" 1000
	counts=$(sink_q --listen 127.0.0.12 --status accepted --rcpt-counts)
	check_eq "news: 1000 distinct recipients at the sink" "$(printf '%s\n' "$counts" | grep -c .)" 1000
	check_eq "news: each exactly once" "$(printf '%s\n' "$counts" | awk '$1 != 1' | grep -c .)" 0
	check_eq "news: 5 transactions in all" "$(sink_q --listen 127.0.0.12 --count)" 5
	for d in 1 2 3 4 5; do
		check_eq "news: one transaction for news$d.test, 200 recipients" \
			"$(sink_q --listen 127.0.0.12 --rcpt-domain "news$d.test" --status accepted --field rcpt | tr ',' '\n' | grep -c "@news$d\.test$")" 200
	done
	sigs=$(sink_q --listen 127.0.0.12 --status accepted --header DKIM-Signature)
	check_eq "news: one DKIM-Signature per copy" "$(printf '%s' "$sigs" | grep -c .)" 5
	check_eq "news: the same b= in every copy (signed once)" \
		"$(while IFS= read -r v; do dkim_tag "$v" b; done <<<"$sigs" | sort -u | grep -c .)" 1
	check_eq "news: d=letters.example s=n1" \
		"$(while IFS= read -r v; do echo "$(dkim_tag "$v" d) $(dkim_tag "$v" s)"; done <<<"$sigs" | sort -u)" "letters.example n1"
	check_eq "news: all 5 MAIL FROM are b+TOKEN@bounces.letters.example" \
		"$(sink_q --listen 127.0.0.12 --status accepted --field mail_from | grep -Eic '^b\+[0-9a-z.]+@bounces\.letters\.example$')" 5
	sink_q --rcpt r1@news3.test --status accepted --data >"$E2E_TMP/got-news.eml" 2>/dev/null
	check_exit "news: dkim_verify.py: the copy for news3.test passes" 0 \
		"$SINK_PY" "$verify" --expect 1 "$dkimtxt" "$E2E_TMP/got-news.eml"

	# --- the whole group ---
	check_eq "main: every session greeted kurier.test" \
		"$(sink_q --status accepted,tempfailed,dropped,aborted --field ehlo | sort -u)" kurier.test
	st=$(kctl "$E2E_TMP/main.conf" queue stats 2>&1)
	check_match "main: queue stats: 1015 delivered" "$st" '^  delivered +1015$'
	check_match "main: queue stats: 4 bounced" "$st" '^  bounced +4$'
	check_match "main: queue stats: nothing active" "$st" '^  active +0$'
	check_match "main: queue stats: no destination has work" "$st" 'none: nothing queued or in flight'
	check_eq "main: SPF of bounces.example.com and bounces.letters.example passes (no spf_preflight warning)" \
		"$(grep -c 'event=spf_preflight' "$E2E_TMP/main.log")" 0
	stop_kurierd main
fi

# ============================================================================================
# smart: every delivery through the smarthost, AUTH over TLS
# ============================================================================================
if run_group smart; then
	send smart1 alice@example.com u@anywhere.test
	send smart2 alice@example.com u2@mxorder.test
	send_batch smart
	for sc in smart1 smart2; do
		settled "$sc" smart
	done
	check_state smart1 smart u@anywhere.test delivered
	check_state smart2 smart u2@mxorder.test delivered
	for r in u@anywhere.test u2@mxorder.test; do
		check_eq "smart: $r accepted once at the smarthost" \
			"$(sink_q --listen 127.0.0.9 --rcpt "$r" --status accepted --count)" 1
		check_eq "smart: $r over TLS, authenticated as $relay_user" \
			"$(sink_q --listen 127.0.0.9 --rcpt "$r" --status accepted --field tls) $(sink_q --listen 127.0.0.9 --rcpt "$r" --status accepted --field auth_user)" \
			"true $relay_user"
	done
	check_eq "smart: the MX of mxorder.test not used" "$(sink_q --listen 127.0.0.2 --rcpt u2@mxorder.test --count)" 0
	check_match "smart: the smarthost password is not logged" \
		"$(grep -c -- "$relay_password" "$E2E_TMP/smart.log")" '^0$'
	stop_kurierd smart
fi

# ============================================================================================
# spf: spf_preflight = defer
# ============================================================================================
if run_group spf; then
	send spfpass alice@example.com u@spfpass.test
	send spfheld x@spffail.example u@spfheld.test
	send_batch spf
	settled spfpass spf
	check_state spfpass spf u@spfpass.test delivered
	check_eq "spfpass: SPF of bounces.example.com passes: accepted once" \
		"$(sink_q --rcpt u@spfpass.test --status accepted --count)" 1
	if wait_rcpt "$E2E_TMP/spf.conf" "${mid[spfheld]}" u@spfheld.test 'last reply +.*[Ss][Pp][Ff]'; then
		pass "spfheld: queue show gives the SPF reason"
	else
		fail "spfheld: queue show gives the SPF reason" "$(show spfheld spf | grep -A5 '^recipient')"
	fi
	check_state spfheld spf u@spfheld.test deferred
	check_eq "spfheld: nothing reached the sink" "$(sink_q --rcpt u@spfheld.test --count)" 0
	check_eq "spfheld: no MAIL FROM of bounces.spffail.example at the sink" \
		"$(sink_q --field mail_from | grep -Eic '@bounces\.spffail\.example$')" 0
	stop_kurierd spf
fi

# --- across everything ---------------------------------------------------------------------------
check_eq "no recipient accepted twice, in any run" \
	"$(sink_q --status accepted --rcpt-counts | awk '$1 != 1' | head -5)" ""
kill -0 "$SINK_PID" 2>/dev/null
check_eq "sink.py still running" "$?" 0
check_eq "sink.py logged no Python error" "$(grep -c Traceback "$E2E_TMP/sink.err")" 0

e2e_done
