#!/usr/bin/env bash
# run-inbound-bench.sh - returns accepted per second by the inbound MX,
# end to end (`make bench`, via run-bench.sh; INBOUND_BENCH=0 skips it
# there).
#
# Starts a redis-server of its own from deploy/redis.conf (AOF, fsync on
# every write) on a free 127.0.0.1 port with its data in a temp dir, and
# kurierd (release build, relay role) with the inbound MX on another free
# port.  A user submits one message, which stays in the queue (no
# deliver role), and tests/tools/verp_addr makes the VERP return path a
# delivery of it would carry.  Then tests/bench/smtpload sends returns to
# that address as remote MTAs would: the null sender, STARTTLS, one
# message at a time per session, every body different (-U, so none is a
# repeat).  Each return is SPF of the client's HELO name at MAIL (a
# dnsmasq of its own answers every name NXDOMAIN at once: SPF none), the
# recipient check (a queue read), the parse on the thread pool, the
# effects (the return is class none: the bounce log only) and the append
# to the user's INBOX, with the 250 after Redis's fsync.  Prints smtpload's figures (accepted/s, latency, CPU per
# return of kurierd and redis-server), then stops both by PID.
#
#   tests/bench/run-inbound-bench.sh
#
# Environment:
#   INBOUND_SESSIONS  concurrent sessions (20)
#   INBOUND_SECONDS   measured seconds (10)
#   INBOUND_SIZE      bytes per return (5120)
#   REDIS_SERVER, REDIS_CONF   as run-mailbox-bench.sh
#   DNSMASQ           the dnsmasq binary (/usr/sbin/dnsmasq)
# Exit status: smtpload's, or 1 when something could not be started.

set -u
cd "$(dirname "$0")/../.." || exit 1

KURIERD=build/release/bin/kurierd
KURIERCTL=build/release/bin/kurierctl
SMTPLOAD=build/release/tests/smtpload
VERP_ADDR=build/release/tests/verp_addr
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CONF=${REDIS_CONF:-deploy/redis.conf}
SESSIONS=${INBOUND_SESSIONS:-20}
SECONDS_=${INBOUND_SECONDS:-10}
SIZE=${INBOUND_SIZE:-5120}

BENCH_TMP=
REDIS_PID=
KURIERD_PID=
DNS_PID=
DNSMASQ=${DNSMASQ:-/usr/sbin/dnsmasq}

# stop PID - SIGTERM, at most 10 s, then SIGKILL.
stop() {
	[ -n "$1" ] || return 0
	kill "$1" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
	stop "$KURIERD_PID"
	stop "$REDIS_PID"
	stop "$DNS_PID"
	[ -n "$BENCH_TMP" ] && rm -rf "$BENCH_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
	echo "run-inbound-bench: $*" >&2
	[ -n "$BENCH_TMP" ] && [ -f "$BENCH_TMP/kurierd.log" ] && tail -5 "$BENCH_TMP/kurierd.log" >&2
	exit 1
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_for SECONDS CMD... - until CMD succeeds, bounded.
wait_for() {
	local n=$(($1 * 10))
	shift
	for _ in $(seq "$n"); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

for b in "$KURIERD" "$KURIERCTL" "$SMTPLOAD" "$VERP_ADDR"; do
	[ -x "$b" ] || die "$b not found: make all build/release/tests/smtpload build/release/tests/verp_addr"
done
command -v "$REDIS_SERVER" >/dev/null || die "$REDIS_SERVER not found"
[ -x "$DNSMASQ" ] || die "$DNSMASQ not found (apt-get install dnsmasq-base)"

BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/kurier-ibench.XXXXXX") || die "mktemp failed"
rport=$(free_port) && sub=$(free_port) && subs=$(free_port) && inb=$(free_port) &&
	dnsport=$(free_port) || die "no free port"
"$REDIS_SERVER" "$REDIS_CONF" --port "$rport" --dir "$BENCH_TMP" --bind 127.0.0.1 --save '' \
	>"$BENCH_TMP/redis.log" 2>&1 &
REDIS_PID=$!
wait_for 10 redis-cli -p "$rport" ping || die "redis-server did not start"
"$DNSMASQ" -C /dev/null --no-resolv --no-hosts --keep-in-foreground --listen-address=127.0.0.1 \
	--bind-interfaces --port="$dnsport" --pid-file --local=/#/ >"$BENCH_TMP/dnsmasq.log" 2>&1 &
DNS_PID=$!
sleep 0.5
kill -0 "$DNS_PID" 2>/dev/null || die "dnsmasq did not start: $(tail -2 "$BENCH_TMP/dnsmasq.log")"

mkdir -p "$BENCH_TMP/data"
CONF=$BENCH_TMP/kurier.conf
cat >"$CONF" <<CONF
[server]
hostname = kurier.bench
data_dir = $BENCH_TMP/data
log_level = warn
shutdown_grace = 2s

[redis]
address = 127.0.0.1:$rport
prefix = ib:

[relay]
submission = 127.0.0.1:$sub
submissions = 127.0.0.1:$subs
inbound = 127.0.0.1:$inb

[deliver]
dns_server = 127.0.0.1:$dnsport
dns_timeout = 1s

[mailbox]
postmaster = admin

[domain shop.example]
CONF

password=inbound-bench-password-1
printf '%s\n' "$password" | "$KURIERCTL" -c "$CONF" user add shop --domains shop.example \
	>"$BENCH_TMP/useradd.log" 2>&1 || die "kurierctl user add failed: $(cat "$BENCH_TMP/useradd.log")"
"$KURIERD" -c "$CONF" --roles relay >"$BENCH_TMP/kurierd.log" 2>&1 &
KURIERD_PID=$!
wait_for 15 python3 -c "import socket; socket.create_connection(('127.0.0.1', $inb), 1).close()" ||
	die "kurierd did not listen"

python3 - "$sub" "$password" <<'PY' || die "submitting the message failed"
import smtplib, ssl, sys
port, password = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", port, local_hostname="bench.example", timeout=30)
s.starttls(context=ctx)
s.ehlo("bench.example")
s.login("shop", password)
s.sendmail("orders@shop.example", ["gone@example.net"],
    b"From: orders@shop.example\r\nTo: gone@example.net\r\nSubject: order\r\n\r\nThanks.\r\n")
s.quit()
PY
id=$(redis-cli -p "$rport" zrange ib:active 0 0)
[ -n "$id" ] || die "the message is not in the queue"
verp=$("$VERP_ADDR" -c "$CONF" "$id" 0) || die "verp_addr failed"

echo "inbound MX: returns to $verp, $SESSIONS sessions, $SIZE bytes each, ${SECONDS_}s"
"$SMTPLOAD" -p "$inb" -T starttls -f "" -R "$verp" -U -c "$SESSIONS" -d "$SECONDS_" -W 3 \
	-s "$SIZE" -N inbound -P kurierd="$KURIERD_PID" -P redis="$REDIS_PID"
rc=$?
stored=$(redis-cli -p "$rport" --scan --pattern 'ib:bl:shop' | head -1)
[ -n "$stored" ] && echo "inbound_bounce_log_entries $(redis-cli -p "$rport" zcard ib:bl:shop)"
exit "$rc"
