#!/usr/bin/env bash
# run-deliver-onedest.sh - end-to-end rate to a single destination, kurier
# against Postfix on the same machine, with Postfix's own load generator
# and sink so that the figures compare with what Postfix users measure
# (docs/bench-deliver.md, "One destination").
#
# The load: smtp-source, SESSIONS sessions, MESSAGES messages of MSG_SIZE
# bytes, all to one recipient domain, plain SMTP from 127.0.0.1 (kurier
# accepts it through [relay] trusted_networks, Postfix through
# mynetworks).  The sink: one smtp-sink on a free port; both MTAs relay
# every message to it (kurier: route.* =; Postfix: relayhost =), no TLS,
# no DKIM.  Figure: messages / (start of smtp-source to the sink's last
# message), read from smtp-sink's running counter.  kurier: kurierd
# --roles relay,deliver and a redis-server from deploy/redis.conf (AOF,
# appendfsync always); Postfix: `postfix -c DIR` from the templates in
# tests/bench/postfix-dkim/ (fsync per queue file, as always).
#
#   tests/bench/run-deliver-onedest.sh
#
# Environment: SESSIONS (50), MESSAGES (20000), MSG_SIZE (5120),
# PER_DESTINATION (kurier's [deliver] per_destination, 20), RUNS
# (postfix kurier), DRAIN_TIMEOUT (600 s), KURIERD (bin/kurierd), KURIERCTL
# (bin/kurierctl),
# REDIS_CONF (deploy/redis.conf).  Every server is stopped by PID.
# Exit status 0 when every run asked for delivered every message.

set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/bench/lib.sh

SESSIONS=${SESSIONS:-50}
MESSAGES=${MESSAGES:-20000}
MSG_SIZE=${MSG_SIZE:-5120}
PER_DESTINATION=${PER_DESTINATION:-20}
RUNS=${RUNS:-postfix kurier}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
KURIERD=${KURIERD:-bin/kurierd}
KURIERCTL=${KURIERCTL:-bin/kurierctl}
REDIS_CONF=${REDIS_CONF:-deploy/redis.conf}
SOURCE=/usr/sbin/smtp-source
SINK=/usr/sbin/smtp-sink
PF_TEMPLATES=tests/bench/postfix-dkim
RCPT=user@dest.example
FROM=bench@bench.example

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kurier-onedest.XXXXXX")
chmod 755 "$TMP"   # Postfix runs as its own user under it
PIDS=()
PF_CONF=
RC=0

stop_all() {
	local p
	[ -n "$PF_CONF" ] && timeout 30 postfix -c "$PF_CONF" stop >/dev/null 2>&1
	PF_CONF=
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	PIDS=()
}
trap 'stop_all; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

# sink_count FILE - messages received, from smtp-sink -c's last counter
# line ("sess=N quit=N mesg=N").  Only the file's tail is read: smtp-sink
# rewrites the counter line for every message, and scanning the whole
# file 20 times a second would take CPU from the servers being measured.
sink_count() {
	tail -c 512 "$1" 2>/dev/null | tr '\r' '\n' |
		sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1 | awk '{ n = $1 } END { print n + 0 }'
}

# drain NAME SINKOUT T0 - wait for MESSAGES at the sink; print the rate.
drain() {
	local name=$1 out=$2 t0=$3 got last=-1 since now
	since=$(now_ms)
	while :; do
		got=$(sink_count "$out")
		now=$(now_ms)
		if [ "$got" -ge "$MESSAGES" ]; then
			echo "${name}_delivered $got count"
			echo "${name}_e2e_seconds $(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.1f", (b - a) / 1000 }') s"
			echo "${name}_e2e_rate $(awk -v n="$got" -v a="$t0" -v b="$now" 'BEGIN { printf "%.0f", n * 1000 / (b - a) }') msg/s"
			return 0
		fi
		[ "$got" != "$last" ] && { last=$got; since=$now; }
		if [ $((now - since)) -ge 30000 ] || [ $((now - t0)) -ge $((DRAIN_TIMEOUT * 1000)) ]; then
			echo "${name}_delivered $got count (of $MESSAGES: FAILED)"
			return 1
		fi
		sleep 0.05
	done
}

# load NAME PORT - smtp-source against PORT, then drain.
load() {
	local name=$1 port=$2 out=$3 t0 rc=0
	t0=$(now_ms)
	timeout "$DRAIN_TIMEOUT" "$SOURCE" -s "$SESSIONS" -m "$MESSAGES" -l "$MSG_SIZE" \
		-f "$FROM" -t "$RCPT" -M load.bench "127.0.0.1:$port" >"$TMP/$name.source" 2>&1 || rc=$?
	[ "$rc" = 0 ] || echo "# $name: smtp-source exited $rc: $(tail -2 "$TMP/$name.source")"
	echo "${name}_submit_seconds $(awk -v a="$t0" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }') s"
	drain "$name" "$out" "$t0"
}

# start_sink NAME - smtp-sink on a free port; sets SINK_PORT.
start_sink() {
	SINK_PORT=$(free_port)
	"$SINK" -c -u postfix "127.0.0.1:$SINK_PORT" 1024 >"$TMP/$1.sink" 2>&1 &
	PIDS+=($!)
	wait_port "$SINK_PORT" || { echo "# smtp-sink did not start"; return 1; }
}

run_postfix() {
	local sport port dir=$TMP/postfix
	start_sink postfix || return 1
	sport=$SINK_PORT
	port=$(free_port)
	mkdir -p "$dir/conf" "$dir/queue" "$dir/data" "$dir/log"
	chmod 755 "$dir"
	chown postfix "$dir/data"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=postfix.bench -keyout "$dir/tls.key" -out "$dir/tls.crt" >/dev/null 2>&1
	sed -e "s#@DIR@#$dir#g" -e "s#@SINK_PORT@#$sport#" -e "s#@SMTP_TLS_LEVEL@#none#" \
		-e "s#@MILTERS@##" -e "s#@PROCS@#$((SESSIONS + 100))#" \
		"$PF_TEMPLATES/main.cf.in" >"$dir/conf/main.cf"
	sed -e "s#@PORT@#$port#g" "$PF_TEMPLATES/master.cf.in" >"$dir/conf/master.cf"
	PF_CONF=$dir/conf
	timeout 30 postfix -c "$PF_CONF" start >"$dir/start.out" 2>&1 ||
		{ echo "# postfix did not start: $(cat "$dir/start.out" "$dir/log/maillog" 2>/dev/null | tail -3)"; return 1; }
	wait_port "$port" || { echo "# postfix does not listen"; return 1; }
	echo "# postfix: $(postconf -c "$PF_CONF" -h mail_version), relayhost [127.0.0.1]:$sport"
	load postfix "$port" "$TMP/postfix.sink" || RC=1
	stop_all
}

run_kurier() {
	local sport port sp rport dir=$TMP/kurier conf
	start_sink kurier || return 1
	sport=$SINK_PORT
	mkdir -p "$dir/redis" "$dir/data"
	rport=$(free_port)
	redis-server "$REDIS_CONF" --port "$rport" --dir "$dir/redis" --bind 127.0.0.1 --save '' \
		>"$dir/redis.log" 2>&1 &
	PIDS+=($!)
	wait_port "$rport" || { echo "# redis-server did not start"; return 1; }
	port=$(free_port)
	sp=$(free_port)
	conf=$dir/kurier.conf
	cat >"$conf" <<CONF
[server]
hostname = kurier.bench
data_dir = $dir/data
log_level = info
[redis]
address = 127.0.0.1:$rport
prefix = bench:
[relay]
inbound =
submission = 127.0.0.1:$port
submissions = 127.0.0.1:$sp
trusted_networks = 127.0.0.1/32
trusted_user = bench
max_connections = $((SESSIONS + 100))
max_connections_per_ip = $((SESSIONS + 100))
[deliver]
route.* = 127.0.0.1:$sport
per_destination = $PER_DESTINATION
spf_preflight = off
CONF
	printf 'Onedest-bench.pw1\n' | "$KURIERCTL" -c "$conf" user add bench --domains bench.example \
		>"$dir/user.log" 2>&1 || { echo "# kurierctl user add failed: $(tail -2 "$dir/user.log")"; return 1; }
	"$KURIERD" -c "$conf" --roles relay,deliver >"$dir/kurierd.log" 2>&1 &
	PIDS+=($!)
	wait_port "$port" || { echo "# kurierd does not listen: $(tail -3 "$dir/kurierd.log")"; return 1; }
	# The listener opens before policy's Redis connection is up; a
	# message submitted in between gets 451 4.3.0.
	for _ in $(seq 100); do
		grep -q 'event=redis_up client=kurierd-policy' "$dir/kurierd.log" && break
		sleep 0.1
	done
	grep -q 'event=redis_up client=kurierd-policy' "$dir/kurierd.log" ||
		{ echo "# kurierd's policy connection is not up: $(tail -3 "$dir/kurierd.log")"; return 1; }
	# Started at info to see that line; warn from here on (SIGHUP), so
	# the load does not write a log line per message.
	sed -i 's/^log_level = info$/log_level = warn/' "$conf"
	kill -HUP "${PIDS[-1]}"
	echo "# kurier: per_destination $PER_DESTINATION, route.* = 127.0.0.1:$sport"
	load kurier "$port" "$TMP/kurier.sink" || RC=1
	# Scripts per message: one enqueue, one complete, and the claims.
	redis-cli -p "$rport" info commandstats | tr -d '\r' |
		awk -F'[=:,]' -v n="$MESSAGES" '$1 == "cmdstat_evalsha" {
			printf "kurier_scripts_per_msg %.2f count\n", $3 / n }'
	stop_all
}

[ -x "$SOURCE" ] && [ -x "$SINK" ] ||
	{ echo "run-deliver-onedest: smtp-source/smtp-sink missing (deploy/install-deps.sh --bench installs postfix)"; exit 1; }
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo "# load: smtp-source -s $SESSIONS -m $MESSAGES -l $MSG_SIZE, one recipient domain; sink: smtp-sink"
for r in $RUNS; do
	"run_$r" || RC=1
done
exit "$RC"
