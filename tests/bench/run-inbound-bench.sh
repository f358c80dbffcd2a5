#!/usr/bin/env bash
# run-inbound-bench.sh - inbound returns accepted per second end to end,
# kurier's inbound MX side by side with Postfix on the same machine
# (`make bench`, via run-bench.sh; INBOUND_BENCH=0 skips it there).
#
# Starts, each on a free 127.0.0.1 port with its data in one temp dir:
#   - a redis-server from deploy/redis.conf (AOF, appendfsync always);
#   - a dnsmasq that knows no name (--local=/#/) as kurierd's DNS server,
#     so the SPF check of the client and the DKIM key lookup of every
#     signed return get a fast NXDOMAIN from loopback rather than
#     depending on the machine's resolver and the Internet (without
#     dnsmasq the system resolver is used, and the script says so);
#   - kurierd --roles relay with [relay] inbound on, submission off, one
#     [domain shop.example] (return_path bounces.shop.example) and
#     [mailbox] postmaster = a user added with kurierctl: the inbound MX
#     and its sink, mailbox/ingest (parse, classify, mark bounced or
#     suppress, store in the INBOX; the 250 once the store is durable);
#   - Postfix (`postfix -c DIR`, templates in tests/bench/postfix-inbound/):
#     smtpd accepting mail for bounces.shop.example only, its queue
#     fsync'd before the 250, then virtual(8) writing every message into
#     one Maildir in the temp dir: what a site would otherwise run to
#     receive its returns.
# Then smtpload (tests/bench/smtpload.c) sends RETURNS messages over
# SESSIONS sessions, each the content of a real bounce from the corpus
# (in rotation, made unique with -U), from the null sender, plain SMTP as
# most remote MTAs send:
#   postfix_pm      Postfix, to postmaster@bounces.shop.example; then the
#                   wait until the Maildir holds every accepted message
#   kurier_pm       kurierd, to postmaster@bounces.shop.example (no VERP
#                   token: parse, classify, store in postmaster's INBOX)
#   kurier_pm_tls   the same over STARTTLS (TLS_RUN=0 skips it)
#   kurier_verp     kurierd, to the VERP return paths of RETURNS messages
#                   enqueued first (tests/tools/qload, their addresses from
#                   tests/tools/verp_addr with kurierd's key): the whole
#                   path, VERP MAC, queue lookup at RCPT and again at the
#                   end of DATA, parse, classify, mark the recipient
#                   bounced and suppress it (hard) or count it (soft),
#                   store in the submitting user's INBOX (VERP_RUN=0 skips)
# and prints the machine, every figure as "name value unit" and a
# Markdown table.  Everything it started is stopped by PID (Postfix with
# `postfix -c DIR stop`) and the temp dir removed; every wait is bounded.
#
#   tests/bench/run-inbound-bench.sh
#
# Environment:
#   SMTPLOAD      the load generator (build/release/tests/smtpload)
#   QLOAD         build/release/tests/qload; VERP_ADDR build/release/tests/verp_addr
#   KURIERD       kurierd (bin/kurierd); KURIERCTL kurierctl (bin/kurierctl)
#   REDIS_SERVER  redis-server (redis-server); REDIS_CONF (deploy/redis.conf)
#   DNSMASQ       dnsmasq (dnsmasq)
#   BOUNCE_CORPUS the messages sent (../shared/testdata/bounces/bounce)
#   RETURNS       messages per run (20000)
#   SESSIONS      concurrent sessions (20)
#   WARMUP        seconds of load before the measured window opens (1)
#   TLS_RUN       0: skip kurier_pm_tls
#   VERP_RUN      0: skip kurier_verp
#   SKIP_POSTFIX  1: kurier only
#   NICE          run every server and smtpload with nice -n NICE (0)
#
# Exit status: 0 when the kurier runs completed without errors and every
# accepted return was stored, 1 otherwise.  A Postfix that is not
# installed or does not start is reported and skipped.

set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/bench/lib.sh

SMTPLOAD=${SMTPLOAD:-build/release/tests/smtpload}
QLOAD=${QLOAD:-build/release/tests/qload}
VERP_ADDR=${VERP_ADDR:-build/release/tests/verp_addr}
KURIERD=${KURIERD:-bin/kurierd}
KURIERCTL=${KURIERCTL:-bin/kurierctl}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CONF=${REDIS_CONF:-deploy/redis.conf}
DNSMASQ=${DNSMASQ:-dnsmasq}
BOUNCE_CORPUS=${BOUNCE_CORPUS:-../shared/testdata/bounces/bounce}
RETURNS=${RETURNS:-20000}
SESSIONS=${SESSIONS:-20}
WARMUP=${WARMUP:-1}
TLS_RUN=${TLS_RUN:-1}
VERP_RUN=${VERP_RUN:-1}
SKIP_POSTFIX=${SKIP_POSTFIX:-0}
NICE=${NICE:-0}
PF_TEMPLATES=tests/bench/postfix-inbound
DOMAIN=shop.example
RDOMAIN=bounces.shop.example
PM_USER=pm
PREFIX=ibench:

BENCH_TMP=
REDIS_PID=
DNS_PID=
KURIERD_PID=
PF_CONF=
PF_UP=0
RESULTS=
RC=0

NICELY=()
[ "$NICE" != 0 ] && NICELY=(nice -n "$NICE")

# --- start and stop ---------------------------------------------------------

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
	postfix_stop
	stop_pid "$KURIERD_PID" 15
	stop_pid "$REDIS_PID" 10
	stop_pid "$DNS_PID" 5
	[ -n "$BENCH_TMP" ] && rm -rf "$BENCH_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# tree_cpu PID - CPU seconds of PID and every process under it, live
# (utime + stime) and reaped (cutime + cstime), as smtpload's -P counts.
tree_cpu() {
	local hz
	hz=$(getconf CLK_TCK)
	# /proc/N/stat: the name in parentheses may hold spaces; fields after it.
	for f in /proc/[0-9]*/stat; do
		sed -n 's/^\([0-9]*\) (.*) \(.*\)$/\1 \2/p' "$f" 2>/dev/null
	done | awk -v root="$1" -v hz="$hz" '
		{ pid = $1; ppid[pid] = $3; t[pid] = $13 + $14 + $15 + $16 }
		END {
			for (p in t) {
				q = p
				while (q != "" && q != 0 && q != root)
					q = ppid[q]
				if (q == root)
					sum += t[p]
			}
			printf "%.2f\n", sum / hz
		}'
}

# --- figures ----------------------------------------------------------------

# run_load NAME SMTPLOAD-ARGS... - one run of RETURNS returns from the null
# sender; its figures go to stdout and RESULTS.
run_load() {
	local name=$1 rc
	shift
	echo "# $name: smtpload $*"
	timeout --kill-after=10 900 ${NICELY[@]+"${NICELY[@]}"} "$SMTPLOAD" -N "$name" \
		-c "$SESSIONS" -n "$RETURNS" -W "$WARMUP" -d 600 -t 800 -f '' -U \
		-D "$BOUNCE_CORPUS" "$@" \
		2> >(grep -v ': skipped: ' | sed "s/^/# $name: /" >&2) | tee -a "$RESULTS"
	rc=${PIPESTATUS[0]}
	[ "$rc" = 0 ] || echo "run-inbound-bench: $name: smtpload failed ($rc)" >&2
	return "$rc"
}

# inbox_count USER - messages in USER's INBOX (mailbox/README.md's keys).
inbox_count() {
	local mid
	mid=$(redis-cli -p "$RPORT" hget "${PREFIX}mbx:u:$1" INBOX 2>/dev/null)
	[ -n "$mid" ] || { echo 0; return; }
	redis-cli -p "$RPORT" hget "${PREFIX}mbx:b:$mid" exists 2>/dev/null | grep -E '^[0-9]+$' || echo 0
}

# --- Postfix ----------------------------------------------------------------

# postfix_setup PORT - write the instance's config and start it; 0 when up.
postfix_setup() {
	local port=$1 dir=$BENCH_TMP/pf procs uid gid
	if [ "$SKIP_POSTFIX" = 1 ]; then
		echo "# postfix: skipped (SKIP_POSTFIX=1)"
		return 1
	fi
	if ! command -v postfix >/dev/null || [ ! -x /usr/lib/postfix/sbin/master ] ||
		[ ! -x /usr/lib/postfix/sbin/virtual ]; then
		echo "run-inbound-bench: POSTFIX NOT INSTALLED: the comparison is skipped (deploy/install-deps.sh --bench installs it)" >&2
		return 1
	fi
	if ! getent passwd postfix >/dev/null || ! getent group postdrop >/dev/null ||
		! uid=$(id -u nobody 2>/dev/null) || ! gid=$(getent group nogroup | cut -d: -f3) || [ -z "$gid" ]; then
		echo "run-inbound-bench: POSTFIX NOT USABLE: no postfix user, postdrop group or nobody:nogroup; the comparison is skipped" >&2
		return 1
	fi
	procs=$((SESSIONS + 100))
	mkdir -p "$dir/conf" "$dir/queue" "$dir/data" "$dir/log" "$dir/vmail" || return 1
	chmod 755 "$BENCH_TMP" "$dir"
	chown postfix "$dir/data"
	# virtual(8) delivers as nobody:nogroup, who must create the Maildir.
	chown "$uid:$gid" "$dir/vmail"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=mx.bench -keyout "$dir/tls.key" -out "$dir/tls.crt" \
		>/dev/null 2>&1 || { echo "run-inbound-bench: openssl could not make Postfix's certificate" >&2; return 1; }
	sed -e "s#@DIR@#$dir#g" -e "s#@DOMAIN@#$RDOMAIN#" -e "s#@UID@#$uid#" -e "s#@GID@#$gid#" \
		-e "s#@PROCS@#$procs#" "$PF_TEMPLATES/main.cf.in" >"$dir/conf/main.cf" || return 1
	sed -e "s#@PORT@#$port#g" "$PF_TEMPLATES/master.cf.in" >"$dir/conf/master.cf" || return 1
	postfix_start "$dir" "$port" ${NICELY[@]+"${NICELY[@]}"}
}

maildir_count() {
	find "$BENCH_TMP/pf/vmail/returns/new" -type f 2>/dev/null | wc -l
}

# --- set up -----------------------------------------------------------------

for b in "$SMTPLOAD" "$QLOAD" "$VERP_ADDR"; do
	[ -x "$b" ] || die "$b not found: make build/release/tests/$(basename "$b")"
done
[ -x "$KURIERD" ] || die "$KURIERD not found: make bin/kurierd"
[ -x "$KURIERCTL" ] || die "$KURIERCTL not found: make bin/kurierctl"
[ -r "$REDIS_CONF" ] || die "$REDIS_CONF not found"
[ -d "$BOUNCE_CORPUS" ] || die "$BOUNCE_CORPUS not found: set BOUNCE_CORPUS"
command -v "$REDIS_SERVER" >/dev/null || die "$REDIS_SERVER not found"
command -v redis-cli >/dev/null || die "redis-cli not found"

bench_tmp kurier-ibench
PF_DIR=$BENCH_TMP/pf
RESULTS=$BENCH_TMP/results
: >"$RESULTS"
ulimit -n "$(ulimit -Hn)" 2>/dev/null

RPORT=$(free_port) || die "no free port"
bench_redis "$BENCH_TMP" "$RPORT" ${NICELY[@]+"${NICELY[@]}"} ||
	die "redis-server did not start on 127.0.0.1:$RPORT"

# dns_answers PORT - true when a DNS server on 127.0.0.1:PORT answers a query.
dns_answers() {
	python3 - "$1" <<'PY'
import socket, sys
q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ready\x07invalid\x00\x00\x01\x00\x01"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
try:
    s.sendto(q, ("127.0.0.1", int(sys.argv[1])))
    sys.exit(0 if s.recv(512)[:2] == b"\x12\x34" else 1)
except OSError:
    sys.exit(1)
PY
}

DNS_CONF=
if command -v "$DNSMASQ" >/dev/null; then
	DPORT=$(free_port) || die "no free port"
	"$DNSMASQ" -C /dev/null --no-resolv --no-hosts --keep-in-foreground \
		--listen-address=127.0.0.1 --bind-interfaces --port="$DPORT" --pid-file \
		--local=/#/ --log-facility=- >"$BENCH_TMP/dnsmasq.log" 2>&1 &
	DNS_PID=$!
	for _ in $(seq 50); do
		dns_answers "$DPORT" && break
		kill -0 "$DNS_PID" 2>/dev/null || break
		sleep 0.1
	done
	if dns_answers "$DPORT"; then
		DNS_CONF="dns_server = 127.0.0.1:$DPORT"
	else
		tail -3 "$BENCH_TMP/dnsmasq.log" >&2
		echo "run-inbound-bench: dnsmasq did not answer: SPF and DKIM lookups go to the system resolver" >&2
		stop_pid "$DNS_PID" 5
		DNS_PID=
	fi
else
	echo "run-inbound-bench: $DNSMASQ not found: SPF and DKIM lookups go to the system resolver" >&2
fi

IPORT=$(free_port) || die "no free port"
CONF=$BENCH_TMP/kurier.conf
# max_messages above every run's returns: no trimming during the runs.
cat >"$CONF" <<CONF
[server]
hostname = mx.kurier.bench
data_dir = $BENCH_TMP/data
log_level = warn

[redis]
address = 127.0.0.1:$RPORT
prefix = $PREFIX
reconnect_max = 500ms

[relay]
inbound = 127.0.0.1:$IPORT
submission =
submissions =
max_connections = $((SESSIONS + 100))
max_connections_per_ip = $((SESSIONS + 100))
; Every session comes from 127.0.0.1: the per-address rate would cap the figure.
inbound_rate = none

[deliver]
$DNS_CONF
dns_timeout = 2s

[domain $DOMAIN]
return_path = $RDOMAIN

[mailbox]
postmaster = $PM_USER
max_messages = 10000000
CONF
mkdir -p "$BENCH_TMP/data" && chmod 700 "$BENCH_TMP/data"

# The postmaster, and qload's user, who submitted the returned messages.
for u in "$PM_USER" qload; do
	head -c 18 /dev/urandom | base64 | timeout 30 "$KURIERCTL" -c "$CONF" \
		user add "$u" --domains "$DOMAIN" >"$BENCH_TMP/kurierctl.out" 2>&1 ||
		{ cat "$BENCH_TMP/kurierctl.out" >&2; die "kurierctl user add $u failed"; }
done

${NICELY[@]+"${NICELY[@]}"} "$KURIERD" -c "$CONF" --roles relay >>"$BENCH_TMP/kurierd.log" 2>&1 &
KURIERD_PID=$!
if ! wait_banner "$IPORT" "$KURIERD_PID" 20; then
	tail -20 "$BENCH_TMP/kurierd.log" >&2
	die "kurierd did not start its inbound MX on 127.0.0.1:$IPORT"
fi

PPORT=$(free_port) || die "no free port"
postfix_setup "$PPORT" && PF_OK=1 || PF_OK=0

echo "# kurier inbound benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
bench_machine
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# kurierd: $KURIERD (pid $KURIERD_PID), --roles relay, inbound 127.0.0.1:$IPORT, log_level warn"
echo "# redis: $("$REDIS_SERVER" --version | cut -d' ' -f1-3), $REDIS_CONF (appendfsync always), port $RPORT"
echo "# dns: ${DNS_CONF:-the system resolver} (SPF of the client, DKIM keys of signed returns)"
if [ "$PF_OK" = 1 ]; then
	echo "# postfix: $(postconf -c "$PF_CONF" -h mail_version) on 127.0.0.1:$PPORT, config $PF_CONF, virtual(8) into a Maildir"
else
	echo "# postfix: NOT RUN (see above)"
fi
echo "# load: $RETURNS returns per run from $BOUNCE_CORPUS (in rotation, each made unique), null sender, $SESSIONS sessions, ${WARMUP}s warm-up, nice $NICE"
echo

# --- runs -------------------------------------------------------------------

if [ "$PF_OK" = 1 ]; then
	mp=$(postfix_master_pid)
	c0=$(tree_cpu "$mp")
	t0=$(date +%s.%N)
	run_load postfix_pm -p "$PPORT" -T plain -r "postmaster@$RDOMAIN" -P "postfix=$mp"
	want=$(fig postfix_pm_accepted_total)
	# Bounded: every accepted message in the Maildir, or 600 s.
	got=0
	for _ in $(seq 3000); do
		got=$(maildir_count)
		[ "$got" -ge "${want:-0}" ] && break
		sleep 0.2
	done
	t1=$(date +%s.%N)
	c1=$(tree_cpu "$mp")
	emit postfix_pm_delivered "$got" count
	emit postfix_pm_delivered_rate "$(awk -v n="$got" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')" msg/s
	emit postfix_pm_cpu_per_delivered "$(awk -v n="$got" -v a="$c0" -v b="$c1" 'BEGIN { if (n > 0) printf "%.3f", (b - a) * 1e3 / n; else print 0 }')" ms
	[ "$got" -ge "${want:-0}" ] || echo "run-inbound-bench: Postfix delivered $got of $want in 600 s" >&2
	postfix_stop
fi

# kurier: accepted means stored, so accepted/s is delivered/s.
run_load kurier_pm -p "$IPORT" -T plain -r "postmaster@$RDOMAIN" \
	-P "kurierd=$KURIERD_PID" -P "redis=$REDIS_PID" || RC=1
if [ "$TLS_RUN" = 1 ]; then
	run_load kurier_pm_tls -p "$IPORT" -T starttls -r "postmaster@$RDOMAIN" \
		-P "kurierd=$KURIERD_PID" -P "redis=$REDIS_PID" || RC=1
fi
stored=$(inbox_count "$PM_USER")
a1=$(fig kurier_pm_accepted_total)
a2=$(fig kurier_pm_tls_accepted_total)
want=$((${a1:-0} + ${a2:-0}))
emit kurier_pm_stored "$stored" count
[ "$stored" = "$want" ] || { echo "run-inbound-bench: postmaster's INBOX holds $stored returns, $want were accepted" >&2; RC=1; }

if [ "$VERP_RUN" = 1 ]; then
	# The returned messages: RETURNS in the queue, one recipient each,
	# submitted by qload's user; nothing delivers them (relay role only).
	echo "# kurier_verp: enqueueing $RETURNS messages (qload)"
	if timeout 300 "$QLOAD" -c "$CONF" -n "$RETURNS" -s 2048 -r bounced@example.net -d 240 \
		>"$BENCH_TMP/ids" 2>"$BENCH_TMP/qload.err" &&
		timeout 60 "$VERP_ADDR" -c "$CONF" -d "$RDOMAIN" <"$BENCH_TMP/ids" >"$BENCH_TMP/verp" 2>>"$BENCH_TMP/qload.err" &&
		[ "$(wc -l <"$BENCH_TMP/verp")" = "$RETURNS" ]; then
		run_load kurier_verp -p "$IPORT" -T plain -R "$BENCH_TMP/verp" \
			-P "kurierd=$KURIERD_PID" -P "redis=$REDIS_PID" || RC=1
		stored=$(inbox_count qload)
		emit kurier_verp_stored "$stored" count
		[ "$stored" = "$(fig kurier_verp_accepted_total)" ] ||
			{ echo "run-inbound-bench: qload's INBOX holds $stored returns, $(fig kurier_verp_accepted_total) were accepted" >&2; RC=1; }
		emit kurier_verp_suppressed "$(redis-cli -p "$RPORT" hlen "${PREFIX}sup:$DOMAIN" 2>/dev/null | grep -E '^[0-9]+$' || echo 0)" count
	else
		tail -5 "$BENCH_TMP/qload.err" >&2
		echo "run-inbound-bench: could not enqueue the returned messages or make their VERP addresses" >&2
		RC=1
	fi
fi
kill -0 "$KURIERD_PID" 2>/dev/null || { echo "run-inbound-bench: kurierd died" >&2; RC=1; }
grep -E 'level=(error|fatal|panic)' "$BENCH_TMP/kurierd.log" | head -5 >&2
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- table ------------------------------------------------------------------

row() {
	local p=$2 cpu delivered
	[ -n "$(fig "${p}_rate")" ] || { echo "| $1 | not run | | | | | |"; return; }
	cpu=$(fig "${p}_kurierd_cpu_per_msg")
	[ -n "$cpu" ] || cpu=$(fig "${p}_postfix_cpu_per_msg")
	delivered=$(fig "${p}_delivered_rate")
	printf '| %s | %s | %s / %s | %s | %s | %s |\n' "$1" "$(fig "${p}_rate")" \
		"$(fig "${p}_lat_p50")" "$(fig "${p}_lat_p99")" "${cpu:--}" \
		"$(fig "${p}_redis_cpu_per_msg" || true)" "${delivered:-same}"
}

echo
echo "## Returns in ($RETURNS per run, $SESSIONS sessions, null sender, real bounces)"
echo
echo "| Run | Accepted returns/s | end of DATA to 250, p50 / p99 ms | Server CPU ms/return | Redis CPU ms/return | In the mailbox, returns/s |"
echo "|---|---:|---:|---:|---:|---:|"
row "Postfix 250 (queue fsync), virtual(8) to a Maildir, postmaster@" postfix_pm
row "kurier, postmaster@ (parse, classify, store)" kurier_pm
row "kurier, postmaster@, STARTTLS" kurier_pm_tls
row "kurier, VERP addresses (+ queue lookups, mark bounced, suppress)" kurier_verp
echo
echo "Server CPU over the measured window: kurierd, or Postfix's master and every descendant."
echo "kurier's 250 comes after the return is stored in the INBOX, so accepted/s is in-the-mailbox/s."
if [ -n "$(fig postfix_pm_delivered_rate)" ]; then
	echo "Postfix in the mailbox: from the start of the run until the Maildir held all"
	echo "$(fig postfix_pm_delivered) messages; its CPU over that time: $(fig postfix_pm_cpu_per_delivered) ms per message."
fi

echo
echo "## All figures"
echo
echo "| Figure | Value | Unit |"
echo "|---|---:|---|"
awk '{ printf "| %s | %s | %s |\n", $1, $2, $3 }' "$RESULTS"

exit "$RC"
