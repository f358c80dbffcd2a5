#!/usr/bin/env bash
# run-deliver-bench.sh - end-to-end delivery figures of kurier, side by
# side with Postfix and Postfix + OpenDKIM on the same machine
# (docs/bench-deliver.md).
#
# Every run submits the same load (smtpload: SESSIONS sessions, MESSAGES
# messages in all, MSG_SIZE bytes each, STARTTLS) and every message goes
# to one sink: a fresh sinkmx (tests/bench/sinkmx.c) on a free 127.0.0.1
# port, offering STARTTLS (SINK_TLS) and checking that each message
# carries the number of DKIM-Signature fields the run must add.  The
# runs:
#   postfix          Postfix alone, relayhost = [127.0.0.1]:SINKPORT
#   postfix_dkim     the same, with OpenDKIM as milter signing rsa-2048
#   kurier           kurierd --roles relay,deliver, route.* = the sink,
#                    no DKIM
#   kurier_rsa       the same, [domain bench.example] dkim_selector = s1,
#                    a key from kurierctl dkim keygen --algo rsa
#   kurier_ed25519   the same with --algo ed25519
# Each run has servers of its own, started fresh in one temp dir:
# Postfix with `postfix -c DIR` (templates in tests/bench/postfix-dkim/),
# its own queue, loopback ports; OpenDKIM in the foreground with its own
# config, key and socket (in DKIM_PARENT); for kurier a redis-server from
# deploy/redis.conf (AOF, appendfsync always), a bench user made with
# kurierctl, and kurierd.  Everything is stopped by PID (Postfix with
# `postfix -c DIR stop`) and the temp dir removed; every wait is bounded.
#
# Figures per run ("name value unit" lines, then Markdown tables):
#   delivered msg/s  at the sink, (messages - 1) / (last - first message)
#   end-to-end msg/s messages / (start of the load, once smtpload's
#                    sessions are set up, to the last delivery)
#   CPU per message  utime+stime (/proc/PID/stat, reaped children
#                    included) from the start of the load until the sink
#                    has every message: kurierd + redis-server, or every
#                    Postfix process + opendkim; submission included
#   memory           peak RSS (VmHWM, summed over the processes) and PSS
#                    at the end of the run
# A run fails when the sink does not get every accepted message: after
# STALL seconds without a new one, or DRAIN_TIMEOUT in all.
#
#   tests/bench/run-deliver-bench.sh
#
# Environment:
#   SMTPLOAD      the load generator (build/release/tests/smtpload)
#   SINKMX        the sink (build/release/tests/sinkmx)
#   KURIERD       kurierd (bin/kurierd); KURIERCTL kurierctl (bin/kurierctl)
#   REDIS_SERVER  redis-server (redis-server); REDIS_CONF (deploy/redis.conf)
#   REDIS_ARGS    more redis-server options, split at spaces (none)
#   RUNS          the runs, in order (postfix postfix_dkim kurier
#                 kurier_rsa kurier_ed25519)
#   SESSIONS      concurrent submission sessions (50)
#   MESSAGES      messages submitted per run (20000; smtpload -n): the
#                 sink waits for as many as were accepted
#   MSG_SIZE      message size in bytes (5120)
#   SINK_TLS      1: the sink offers STARTTLS and both MTAs use it (1)
#   CPUS          CPUs to run on (2): with more in the machine, every
#                 process is pinned to CPUs 0..CPUS-1 with taskset
#   STALL         seconds without a new message at the sink before a run
#                 is called failed (30)
#   DRAIN_TIMEOUT seconds from the start of the load to the last message
#                 at most (1200)
#   NICE          run every server, the sink and smtpload with nice -n NICE (0)
#   DKIM_PARENT   where OpenDKIM's key, config and socket go (/run): a
#                 directory no one but root may write to, up to /
#
# Exit status: 0 when every kurier run asked for delivered every message
# with the right signatures, 1 otherwise.  Postfix or OpenDKIM missing
# or failing is reported and its runs skipped; that does not fail it.

set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/bench/lib.sh

SMTPLOAD=${SMTPLOAD:-build/release/tests/smtpload}
SINKMX=${SINKMX:-build/release/tests/sinkmx}
KURIERD=${KURIERD:-bin/kurierd}
KURIERCTL=${KURIERCTL:-bin/kurierctl}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CONF=${REDIS_CONF:-deploy/redis.conf}
read -r -a REDIS_EXTRA <<<"${REDIS_ARGS:-}"
RUNS=${RUNS:-postfix postfix_dkim kurier kurier_rsa kurier_ed25519}
SESSIONS=${SESSIONS:-50}
MESSAGES=${MESSAGES:-20000}
MSG_SIZE=${MSG_SIZE:-5120}
SINK_TLS=${SINK_TLS:-1}
CPUS=${CPUS:-2}
STALL=${STALL:-30}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-1200}
NICE=${NICE:-0}
DKIM_PARENT=${DKIM_PARENT:-/run}
PF_TEMPLATES=tests/bench/postfix-dkim

DOMAIN=bench.example      # the sending domain, signed by both
SELECTOR=s1
FROM=bench@$DOMAIN

BENCH_TMP=
RESULTS=
SINK_PID=
SINK_PORT=
SINK_STATS=
REDIS_PID=
RPORT=
KURIERD_PID=
DKIM_PID=
DKIM_DIR=
PF_CONF=
PF_DIR=
PF_UP=0
KURIER_RC=0

# --- start and stop ---------------------------------------------------------

# The command prefix every process runs under: CPU pinning and priority
# (both exec, so $! stays the server's PID).
RUNAS=()
NCPU=$(nproc)
if [ "$NCPU" -gt "$CPUS" ]; then
	RUNAS=(taskset -c "0-$((CPUS - 1))")
fi
[ "$NICE" != 0 ] && RUNAS+=(nice -n "$NICE")

# servers_stop - everything a run started, in the order the mail flows.
servers_stop() {
	postfix_stop
	stop_pid "$DKIM_PID" 10
	DKIM_PID=
	[ -n "$DKIM_DIR" ] && rm -rf "$DKIM_DIR"
	DKIM_DIR=
	stop_pid "$KURIERD_PID" 15
	KURIERD_PID=
	stop_pid "$REDIS_PID" 10
	REDIS_PID=
	stop_pid "$SINK_PID" 10
	SINK_PID=
}

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
	servers_stop
	[ -n "$BENCH_TMP" ] && rm -rf "$BENCH_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

warn() {
	echo "run-deliver-bench: $*" >&2
}

# fail NAME WHY - a run failed: say why, and keep the first reason for the table.
fail() {
	warn "$1: FAILED: $2"
	[ -s "$BENCH_TMP/why.$1" ] || echo "$2" >"$BENCH_TMP/why.$1"
}

# tree_stat PID - CPU ms (utime+stime+cutime+cstime), summed VmHWM, VmRSS
# and PSS in KiB, and the number of processes, over PID and every
# process descending from it.  A process re-parented away is lost, which
# is why the roots measured here (Postfix's master, kurierd, redis-server,
# opendkim) reap their own children.
tree_stat() {
	python3 - "$1" <<'PY'
import os, sys
hz = os.sysconf("SC_CLK_TCK")
procs = {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        with open("/proc/%s/stat" % d) as f:
            s = f.read()
    except OSError:
        continue
    f = s[s.rfind(")") + 2:].split()
    # state ppid ... utime(11) stime(12) cutime(13) cstime(14)
    procs[int(d)] = (int(f[1]), sum(int(x) for x in f[11:15]))
root = int(sys.argv[1]) if sys.argv[1].isdigit() else 0
members = {root} if root in procs else set()
grew = True
while grew:
    grew = False
    for p, (pp, _) in procs.items():
        if p not in members and pp in members:
            members.add(p)
            grew = True
def kb(p, name, key):
    try:
        with open("/proc/%d/%s" % (p, name)) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
print("%.1f %d %d %d %d" % (sum(procs[p][1] for p in members) * 1000.0 / hz,
      sum(kb(p, "status", "VmHWM") for p in members),
      sum(kb(p, "status", "VmRSS") for p in members),
      sum(kb(p, "smaps_rollup", "Pss") for p in members), len(members)))
PY
}

# host_busy_ms - CPU ms the whole machine spent busy (user, nice, system,
# irq, softirq: /proc/stat), summed over its CPUs.
host_busy_ms() {
	awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.0f", ($2 + $3 + $4 + $7 + $8) * 1000 / hz }' /proc/stat
}

# --- figures ----------------------------------------------------------------

# calc EXPR - awk arithmetic, printed as given by the format in EXPR.
calc() {
	awk "BEGIN { $1 }"
}

# --- the sink ----------------------------------------------------------------

# sink_start DKIM_WANT - a fresh sinkmx for one run: SINK_PID, SINK_PORT, SINK_STATS.
sink_start() {
	local want=$1 out=$BENCH_TMP/sink.out tls=()
	SINK_STATS=$BENCH_TMP/sink.stats
	rm -f "$SINK_STATS" "$out"
	[ "$SINK_TLS" = 1 ] && tls=(-C "$BENCH_TMP/sink.crt" -K "$BENCH_TMP/sink.key")
	${RUNAS[@]+"${RUNAS[@]}"} "$SINKMX" -p 0 -D "$want" -S "$SINK_STATS" -n sink.bench \
		${tls[@]+"${tls[@]}"} >"$out" 2>>"$BENCH_TMP/sink.log" &
	SINK_PID=$!
	for _ in $(seq 50); do
		SINK_PORT=$(awk '$1 == "sinkmx_port" { print $2 }' "$out" 2>/dev/null)
		[ -n "$SINK_PORT" ] && [ -s "$SINK_STATS" ] && return 0
		kill -0 "$SINK_PID" 2>/dev/null || break
		sleep 0.1
	done
	tail -5 "$BENCH_TMP/sink.log" >&2
	return 1
}

# sink_get NAME - one figure of the sink's stats file (empty when absent).
sink_get() {
	local k v
	while read -r k v; do
		if [ "$k" = "$1" ]; then
			echo "$v"
			return
		fi
	done <"$SINK_STATS" 2>/dev/null
}

# sink_wait N START_MS - wait until the sink has N messages: 0, or 1
# after STALL seconds without a new message or DRAIN_TIMEOUT since START_MS.
sink_wait() {
	local want=$1 start=$2 got=0 last=-1 since now
	since=$(now_ms)
	while :; do
		got=$(sink_get messages)
		got=${got:-0}
		[ "$got" -ge "$want" ] && return 0
		now=$(now_ms)
		if [ "$got" != "$last" ]; then
			last=$got
			since=$now
		elif [ $((now - since)) -ge $((STALL * 1000)) ]; then
			warn "the sink got $got of $want messages, none in the last ${STALL}s"
			return 1
		fi
		if [ $((now - start)) -ge $((DRAIN_TIMEOUT * 1000)) ]; then
			warn "the sink got $got of $want messages in ${DRAIN_TIMEOUT}s"
			return 1
		fi
		sleep 0.5
	done
}

# --- one measured run ---------------------------------------------------------

# measure NAME DKIM_WANT ALG "LABEL=PID ..." SMTPLOAD-ARGS... - submit the
# load, wait for the sink, and emit the run's figures.  The sink must be
# up; ALG (rsa, ed25519 or -) is the algorithm every signature must have.
# Returns 0 when every accepted message reached the sink, signed as asked.
measure() {
	local name=$1 want=$2 alg=$3 labels=$4 rc=0 lrc lb st t0 n got
	local cpu=0 hwm=0 pss=0 c0 c1 h1 r1 p1 procs first last sink_cpu bad ok algn
	local busy0 busy1 t1 ts load_cpu
	shift 4
	declare -A before
	for lb in $labels; do
		before[$lb]=$(tree_stat "${lb#*=}")
	done
	echo "# $name: smtpload -c $SESSIONS -n $MESSAGES -s $MSG_SIZE -f $FROM $*"
	busy0=$(host_busy_ms)
	t0=$(now_ms)
	timeout --kill-after=10 "$DRAIN_TIMEOUT" ${RUNAS[@]+"${RUNAS[@]}"} "$SMTPLOAD" -N "${name}_submit" \
		-c "$SESSIONS" -n "$MESSAGES" -d 86400 -W 0 -t "$DRAIN_TIMEOUT" -s "$MSG_SIZE" \
		-f "$FROM" "$@" 2> >(sed "s/^/# $name: /" >&2) |
		grep -E '_(setup_seconds|rate|lat_p50|lat_p99|accepted_total|refused_total|session_errors|self_cpu_per_msg) ' |
		tee -a "$RESULTS"
	lrc=${PIPESTATUS[0]}
	if [ "$lrc" != 0 ]; then
		fail "$name" "smtpload failed ($lrc)"
		rc=1
	fi
	n=$(fig "${name}_submit_accepted_total")
	n=${n:-0}
	if [ "$n" = 0 ]; then
		fail "$name" "no message was accepted"
		return 1
	fi
	if ! sink_wait "$n" "$t0"; then
		fail "$name" "the sink got $(sink_get messages) of $n messages"
		rc=1
	fi
	busy1=$(host_busy_ms)
	t1=$(now_ms)
	for lb in $labels; do
		st=$(tree_stat "${lb#*=}")
		read -r c0 _ <<<"${before[$lb]}"
		read -r c1 h1 r1 p1 procs <<<"$st"
		emit "${name}_${lb%%=*}_cpu_ms" "$(calc "printf \"%.0f\", $c1 - $c0")" ms
		emit "${name}_${lb%%=*}_peak_rss" "$(calc "printf \"%.1f\", $h1 / 1024")" MiB
		emit "${name}_${lb%%=*}_rss" "$(calc "printf \"%.1f\", $r1 / 1024")" MiB
		emit "${name}_${lb%%=*}_pss" "$(calc "printf \"%.1f\", $p1 / 1024")" MiB
		emit "${name}_${lb%%=*}_procs" "$procs" count
		cpu=$(calc "print $cpu + $c1 - $c0")
		hwm=$((hwm + h1))
		pss=$((pss + p1))
	done
	# The sink's own figures, the run's end included.
	kill -USR1 "$SINK_PID" 2>/dev/null
	sleep 0.3
	got=$(sink_get messages)
	first=$(sink_get first_ms)
	last=$(sink_get last_ms)
	sink_cpu=$(sink_get cpu_ms)
	emit "${name}_delivered" "${got:-0}" count
	emit "${name}_sink_connections" "$(sink_get connections)" count
	emit "${name}_sink_messages_tls" "$(sink_get messages_tls)" count
	# The load starts once smtpload's sessions are set up (TLS, AUTH).
	ts=$(calc "printf \"%.0f\", $t0 + $(fig "${name}_submit_setup_seconds" || echo 0) * 1000")
	if [ "${got:-0}" -ge 2 ]; then
		emit "${name}_rate" "$(calc "printf \"%.0f\", ($got - 1) * 1000 / ($last - $first)")" msg/s
		emit "${name}_e2e_rate" "$(calc "printf \"%.0f\", $got * 1000 / ($last - $ts)")" msg/s
		emit "${name}_e2e_seconds" "$(calc "printf \"%.1f\", ($last - $ts) / 1000")" s
		# From the start of the load to the first delivery: how soon mail moves.
		emit "${name}_first_delivery" "$(calc "printf \"%.0f\", $first - $ts")" ms
		emit "${name}_cpu_per_msg" "$(calc "printf \"%.3f\", $cpu / $got")" ms
		for lb in $labels; do
			emit "${name}_${lb%%=*}_cpu_per_msg" \
				"$(calc "printf \"%.3f\", $(fig "${name}_${lb%%=*}_cpu_ms") / $got")" ms
		done
		emit "${name}_sink_cpu_per_msg" "$(calc "printf \"%.4f\", $sink_cpu / $got")" ms
	fi
	# How busy the machine was, and with what else: busy time that is neither
	# the servers', the sink's nor smtpload's (in % of one CPU, over the run).
	load_cpu=$(calc "printf \"%.0f\", ${n:-0} * $(fig "${name}_submit_self_cpu_per_msg" || echo 0)")
	emit "${name}_host_cpu_util" "$(calc "printf \"%.0f\", ($busy1 - $busy0) * 100 / ($t1 - $t0)")" %
	emit "${name}_other_cpu_util" "$(calc "v = ($busy1 - $busy0 - $cpu - ${sink_cpu:-0} - $load_cpu) * 100 / ($t1 - $t0);
		printf \"%.0f\", (v > 0 ? v : 0)")" %
	emit "${name}_peak_rss" "$(calc "printf \"%.1f\", $hwm / 1024")" MiB
	emit "${name}_pss" "$(calc "printf \"%.1f\", $pss / 1024")" MiB
	# Every message must carry exactly the signatures of the run.
	ok=$(sink_get dkim_ok)
	bad=$(sink_get dkim_bad)
	emit "${name}_sig_ok" "${ok:-0}" count
	emit "${name}_sig_bad" "${bad:-0}" count
	if [ "$alg" != - ]; then
		algn=$(sink_get "dkim_$alg")
		emit "${name}_sig_${alg}" "${algn:-0}" count
		if [ "${algn:-0}" != "${got:-0}" ]; then
			fail "$name" "$got messages but ${algn:-0} $alg signatures"
			rc=1
		fi
	fi
	if [ "${bad:-0}" != 0 ]; then
		fail "$name" "$bad messages without exactly $want DKIM-Signature field(s)"
		rc=1
	fi
	if [ "$SINK_TLS" = 1 ] && [ "$(sink_get messages_tls)" != "${got:-0}" ]; then
		warn "$name: note: only $(sink_get messages_tls) of $got messages came over TLS"
	fi
	if [ "$rc" = 0 ]; then
		emit "${name}_ok" 1 bool
	else
		emit "${name}_ok" 0 bool
	fi
	return "$rc"
}

# --- Postfix (+ OpenDKIM) ----------------------------------------------------

# opendkim_start - OpenDKIM in the foreground, signing rsa-2048 with a
# fresh key; its socket is DKIM_DIR/opendkim.sock.  0 when it listens.
# OpenDKIM refuses a config file or key below a directory others may
# write to, such as /tmp, so DKIM_DIR is made in DKIM_PARENT instead.
opendkim_start() {
	local dir user=root
	if ! command -v opendkim >/dev/null; then
		warn "OPENDKIM NOT INSTALLED: postfix_dkim is skipped (deploy/install-deps.sh --bench installs it)"
		return 1
	fi
	getent passwd opendkim >/dev/null && user=opendkim
	DKIM_DIR=$(mktemp -d "$DKIM_PARENT/kurier-opendkim.XXXXXX") ||
		{ warn "cannot make a directory for OpenDKIM in $DKIM_PARENT (set DKIM_PARENT)"; return 1; }
	dir=$DKIM_DIR
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/$SELECTOR.private" \
		>/dev/null 2>&1 || { warn "openssl could not make the DKIM key"; return 1; }
	# OpenDKIM refuses keys others can read; the socket dir is its own.
	chmod 600 "$dir/$SELECTOR.private"
	chmod 755 "$dir"
	chown "$user" "$dir" "$dir/$SELECTOR.private"
	sed -e "s#@DOMAIN@#$DOMAIN#" -e "s#@SELECTOR@#$SELECTOR#" \
		-e "s#@KEY@#$dir/$SELECTOR.private#" -e "s#@SOCKET@#$dir/opendkim.sock#" \
		-e "s#@PIDFILE@#$dir/opendkim.pid#" -e "s#@USER@#$user#" \
		"$PF_TEMPLATES/opendkim.conf.in" >"$dir/opendkim.conf" || return 1
	${RUNAS[@]+"${RUNAS[@]}"} opendkim -f -x "$dir/opendkim.conf" >"$dir/opendkim.log" 2>&1 &
	DKIM_PID=$!
	for _ in $(seq 100); do
		[ -S "$dir/opendkim.sock" ] && return 0
		kill -0 "$DKIM_PID" 2>/dev/null || break
		sleep 0.1
	done
	warn "OPENDKIM DID NOT START:"
	tail -5 "$dir/opendkim.log" >&2
	stop_pid "$DKIM_PID" 5
	DKIM_PID=
	return 1
}

# postfix_start NAME PORT MILTERS - a fresh instance in BENCH_TMP/NAME; 0 when up.
postfix_start() {
	local dir=$BENCH_TMP/$1 port=$2 milters=$3 level=none
	if ! command -v postfix >/dev/null || [ ! -x /usr/lib/postfix/sbin/master ]; then
		warn "POSTFIX NOT INSTALLED: the Postfix runs are skipped (deploy/install-deps.sh --bench installs it)"
		return 1
	fi
	if ! getent passwd postfix >/dev/null || ! getent group postdrop >/dev/null; then
		warn "POSTFIX NOT USABLE: no postfix user or postdrop group; the Postfix runs are skipped"
		return 1
	fi
	[ "$SINK_TLS" = 1 ] && level=may
	PF_DIR=$dir
	mkdir -p "$dir/conf" "$dir/queue" "$dir/data" "$dir/log" || return 1
	chmod 755 "$dir"
	chown postfix "$dir/data"
	cp "$BENCH_TMP/submit.crt" "$dir/tls.crt" && cp "$BENCH_TMP/submit.key" "$dir/tls.key" || return 1
	sed -e "s#@DIR@#$dir#g" -e "s#@SINK_PORT@#$SINK_PORT#" -e "s#@SMTP_TLS_LEVEL@#$level#" \
		-e "s#@MILTERS@#$milters#" -e "s#@PROCS@#$((SESSIONS + 100))#" \
		"$PF_TEMPLATES/main.cf.in" >"$dir/conf/main.cf" || return 1
	sed -e "s#@PORT@#$port#g" "$PF_TEMPLATES/master.cf.in" >"$dir/conf/master.cf" || return 1
	PF_CONF=$dir/conf
	if ! timeout 30 postfix -c "$PF_CONF" check >"$dir/check.out" 2>&1; then
		warn "POSTFIX CHECK FAILED:"
		cat "$dir/check.out" "$dir/log/maillog" 2>/dev/null | tail -5 >&2
		return 1
	fi
	if ! timeout 30 ${RUNAS[@]+"${RUNAS[@]}"} postfix -c "$PF_CONF" start >"$dir/start.out" 2>&1; then
		warn "POSTFIX DID NOT START:"
		cat "$dir/start.out" "$dir/log/maillog" 2>/dev/null | tail -5 >&2
		return 1
	fi
	PF_UP=1
	if ! wait_banner "$port" "" 20; then
		warn "POSTFIX DOES NOT ANSWER on 127.0.0.1:$port:"
		tail -5 "$dir/log/maillog" >&2
		postfix_stop
		return 1
	fi
	return 0
}

# run_postfix NAME DKIM(0|1)
run_postfix() {
	local name=$1 dkim=$2 port milters="" labels alg=-
	if ! sink_start "$dkim"; then
		warn "$name: the sink did not start"
		return 1
	fi
	if [ "$dkim" = 1 ]; then
		opendkim_start || { servers_stop; emit "${name}_skipped" 1 bool; return 0; }
		milters="unix:$DKIM_DIR/opendkim.sock"
		alg=rsa
	fi
	port=$(free_port) || die "no free port"
	if ! postfix_start "$name" "$port" "$milters"; then
		servers_stop
		emit "${name}_skipped" 1 bool
		return 0
	fi
	echo "# $name: $(postconf -c "$PF_CONF" -h mail_version) on 127.0.0.1:$port, relayhost [127.0.0.1]:$SINK_PORT" \
		"(TLS $([ "$SINK_TLS" = 1 ] && echo may || echo none)), milters ${milters:-none}, sink pid $SINK_PID"
	labels="postfix=$(postfix_master_pid)"
	[ -n "$DKIM_PID" ] && labels="$labels opendkim=$DKIM_PID"
	measure "$name" "$dkim" "$alg" "$labels" -p "$port" -T starttls
	# Postfix's own word on what it sent (a check, not a figure).
	emit "${name}_postfix_sent" "$(grep -c 'status=sent' "$PF_DIR/log/maillog" 2>/dev/null)" count
	servers_stop
	return 0
}

# --- kurier ---------------------------------------------------------------------

redis_start() {
	RPORT=$(free_port) || return 1
	bench_redis "$1" "$RPORT" ${RUNAS[@]+"${RUNAS[@]}"}
}

# run_kurier NAME ALGO(none|rsa|ed25519) - 0 when the run delivered everything.
run_kurier() {
	local name=$1 algo=$2 dir=$BENCH_TMP/$1 kport conf want=1 domain="" key kt pass out b
	[ "$algo" = none ] && want=0
	for b in "$KURIERD" "$KURIERCTL"; do
		[ -x "$b" ] || { fail "$name" "$b not found (make all)"; return 1; }
	done
	if ! sink_start "$want"; then
		fail "$name" "the sink did not start"
		return 1
	fi
	if ! redis_start "$dir"; then
		fail "$name" "redis-server did not start"
		servers_stop
		return 1
	fi
	kport=$(free_port) || die "no free port"
	if [ "$algo" != none ]; then
		domain="
[domain $DOMAIN]
dkim_selector = $SELECTOR"
	fi
	conf=$dir/kurier.conf
	bench_conf "$conf" "$dir/data" "$RPORT"
	cat >>"$conf" <<CONF
[relay]
inbound =
submission = 127.0.0.1:$kport
submissions =
max_connections = $((SESSIONS + 100))
max_connections_per_ip = $((SESSIONS + 100))

[deliver]
concurrency = 200
per_destination = 20
route.* = 127.0.0.1:$SINK_PORT
spf_preflight = off
$domain
CONF
	# The deliver role and its keys must be there: say so at once if not.
	if ! out=$(timeout 30 "$KURIERD" -c "$conf" --check 2>&1); then
		fail "$name" "kurierd refuses the delivery config"
		echo "$out" | tail -3 >&2
		servers_stop
		return 1
	fi
	if [ "$algo" != none ]; then
		if ! out=$(timeout 60 "$KURIERCTL" -c "$conf" dkim keygen "$DOMAIN" --selector "$SELECTOR" \
			--algo "$algo" 2>&1); then
			fail "$name" "kurierctl dkim keygen failed"
			echo "$out" | tail -3 >&2
			servers_stop
			return 1
		fi
		key=$dir/data/dkim/$DOMAIN.$SELECTOR.key
		# The key kurier signs with: "rsa-2048" or "ed25519".
		kt=$(openssl pkey -in "$key" -noout -text 2>/dev/null | awk 'NR == 1 {
			if ($1 == "ED25519") print "ed25519"
			else if (match($0, /[0-9]+ bit/)) print "rsa-" substr($0, RSTART, RLENGTH - 4) }')
		emit "${name}_key" "${kt:-unreadable}" type
		case $algo:$kt in
		rsa:rsa-2048 | ed25519:ed25519) ;;
		*) warn "$name: note: the key at $key is ${kt:-unreadable}, not the $algo key the run is for" ;;
		esac
	fi
	pass=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
	if ! out=$(printf '%s\n' "$pass" | timeout 30 "$KURIERCTL" -c "$conf" user add bench \
		--domains "$DOMAIN" 2>&1); then
		fail "$name" "kurierctl user add failed"
		echo "$out" | tail -3 >&2
		servers_stop
		return 1
	fi
	${RUNAS[@]+"${RUNAS[@]}"} "$KURIERD" -c "$conf" --roles relay,deliver >>"$dir/kurierd.log" 2>&1 &
	KURIERD_PID=$!
	if ! wait_banner "$kport" "$KURIERD_PID" 20; then
		fail "$name" "kurierd did not start"
		tail -5 "$dir/kurierd.log" >&2
		servers_stop
		return 1
	fi
	echo "# $name: kurierd pid $KURIERD_PID, --roles relay,deliver, 127.0.0.1:$kport, route.* = 127.0.0.1:$SINK_PORT," \
		"dkim $algo, redis pid $REDIS_PID port $RPORT, sink pid $SINK_PID"
	export SMTPLOAD_PASSWORD=$pass
	measure "$name" "$want" "$([ "$algo" = none ] && echo - || echo "$algo")" \
		"kurierd=$KURIERD_PID redis=$REDIS_PID" -p "$kport" -T starttls -u bench
	local rc=$?
	unset SMTPLOAD_PASSWORD
	if ! kill -0 "$KURIERD_PID" 2>/dev/null; then
		fail "$name" "kurierd died"
		rc=1
	fi
	if [ "$rc" != 0 ]; then
		echo "# $name: kurierd log (last lines):" >&2
		tail -5 "$dir/kurierd.log" | sed 's/^/#   /' >&2
	fi
	servers_stop
	return "$rc"
}

# --- set up -----------------------------------------------------------------

[ -x "$SMTPLOAD" ] || die "$SMTPLOAD not found: make build/release/tests/smtpload"
[ -x "$SINKMX" ] || die "$SINKMX not found: make build/release/tests/sinkmx"
[ -r "$REDIS_CONF" ] || die "$REDIS_CONF not found"
command -v "$REDIS_SERVER" >/dev/null || die "$REDIS_SERVER not found"
command -v redis-cli >/dev/null || die "redis-cli not found"
command -v openssl >/dev/null || die "openssl not found"
if [ "$SESSIONS" -lt 1 ] || [ "$MESSAGES" -lt "$SESSIONS" ]; then
	die "MESSAGES must be at least SESSIONS, and SESSIONS at least 1"
fi

bench_tmp kurier-deliverbench
# Postfix's and OpenDKIM's daemons run as their own users and must reach their dirs.
chmod 755 "$BENCH_TMP"
RESULTS=$BENCH_TMP/results
: >"$RESULTS"
ulimit -n "$(ulimit -Hn)" 2>/dev/null

# Certificates: the sink's (STARTTLS to the MTAs) and Postfix's submission one.
for c in sink submit; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 90 \
		-subj "/CN=$c.bench" -keyout "$BENCH_TMP/$c.key" -out "$BENCH_TMP/$c.crt" \
		>/dev/null 2>&1 || die "openssl could not make a certificate"
done

echo "# kurier delivery benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
bench_machine
[ "${#RUNAS[@]}" -gt 0 ] && echo "# every process runs under: ${RUNAS[*]}"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# load: $MESSAGES messages of $MSG_SIZE B over $SESSIONS sessions, STARTTLS, From: $FROM;" \
	"sink: sinkmx, STARTTLS $([ "$SINK_TLS" = 1 ] && echo offered || echo off)"
echo "# runs: $RUNS"
echo

# --- runs -------------------------------------------------------------------

for run in $RUNS; do
	case $run in
	postfix) run_postfix postfix 0 ;;
	postfix_dkim) run_postfix postfix_dkim 1 ;;
	kurier) run_kurier kurier none || KURIER_RC=1 ;;
	kurier_rsa) run_kurier kurier_rsa rsa || KURIER_RC=1 ;;
	kurier_ed25519) run_kurier kurier_ed25519 ed25519 || KURIER_RC=1 ;;
	*) die "unknown run $run (RUNS: postfix postfix_dkim kurier kurier_rsa kurier_ed25519)" ;;
	esac
	echo
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- tables -----------------------------------------------------------------

# row LABEL NAME SERVER_PARTS - one line of the table.
row() {
	local p=$2 parts="" lb v
	if [ -n "$(fig "${p}_skipped")" ]; then
		echo "| $1 | skipped | | | | | | |"
		return
	fi
	if [ "$(fig "${p}_ok")" != 1 ]; then
		echo "| $1 | **failed**: $(cat "$BENCH_TMP/why.$p" 2>/dev/null || echo "not run") | | | | | | |"
		return
	fi
	for lb in $3; do
		v=$(fig "${p}_${lb}_cpu_per_msg")
		parts="${parts:+$parts + }$lb $v"
	done
	printf '| %s | %s | %s | %s | %s (%s) | %s | %s / %s | %s of %s |\n' "$1" "$(fig "${p}_rate")" \
		"$(fig "${p}_e2e_rate")" "$(fig "${p}_submit_rate")" "$(fig "${p}_cpu_per_msg")" "$parts" \
		"$(fig "${p}_sink_cpu_per_msg")" "$(fig "${p}_peak_rss")" "$(fig "${p}_pss")" \
		"$(fig "${p}_sig_ok")" "$(fig "${p}_delivered")"
}

echo "## Delivery, end to end ($SESSIONS sessions, $MESSAGES messages of $MSG_SIZE B, one sink)"
echo
echo "| Run | Delivered msg/s (sink) | End to end msg/s | Submitted msg/s | Server CPU ms/msg (parts) | Sink CPU ms/msg | Peak RSS / PSS MiB | Messages with the right signatures |"
echo "|---|---:|---:|---:|---|---:|---|---|"
for run in $RUNS; do
	case $run in
	postfix) row "Postfix" postfix postfix ;;
	postfix_dkim) row "Postfix + OpenDKIM (rsa-2048)" postfix_dkim "postfix opendkim" ;;
	kurier) row "kurier, no DKIM" kurier "kurierd redis" ;;
	kurier_rsa) row "kurier, DKIM rsa" kurier_rsa "kurierd redis" ;;
	kurier_ed25519) row "kurier, DKIM ed25519" kurier_ed25519 "kurierd redis" ;;
	esac
done
echo
echo "Delivered msg/s: at the sink, from its first message to its last. End to end: from the"
echo "start of the submission to the last delivery. Server CPU: utime+stime, reaped children"
echo "included, from the start of the load until the sink had every message (submission and"
echo "delivery): every Postfix process + opendkim, or kurierd + redis-server."

echo
echo "## All figures"
echo
echo "| Figure | Value | Unit |"
echo "|---|---:|---|"
awk '{ printf "| %s | %s | %s |\n", $1, $2, $3 }' "$RESULTS"

exit "$KURIER_RC"
