#!/usr/bin/env bash
# install.sh - what `make install` puts down and what
# deploy/install-deps.sh does to a machine's services.
#
#  1. make install DESTDIR=TMP PREFIX=/usr (and PREFIX=/opt/kurier): the
#     unit's ExecStart, ExecStartPre and Documentation= name files that
#     exist under DESTDIR; no path of another PREFIX and no template
#     placeholder is left in it.
#  2. install-deps.sh against stubs of dpkg-query, apt-get, systemctl,
#     sudo and id first on PATH (nothing is installed, stopped or asked
#     of the network): a redis-server that was installed before the run
#     is never stopped or disabled, one the run installed is; --run asks
#     for no test or benchmark package; nothing missing means no apt-get
#     and no systemctl at all.
#
# Environment: none beyond a built tree (bin/kurierd, bin/kurierctl;
# `make install` builds them if they are missing).
source "$(dirname "$0")/lib.sh"
e2e_init

root=$(cd "$(dirname "$0")/../.." && pwd)

# --- 1. make install ------------------------------------------------------------------

# unit_path UNIT KEY - the first path of KEY= in UNIT (file:// dropped).
unit_path() {
	sed -n "s|^$2=||p" "$1" | head -1 | sed 's|^file://||; s| .*||'
}

# check_install PREFIX - install under a fresh DESTDIR and check the unit.
check_install() {
	local prefix=$1 dest unit exec pre doc
	dest=$E2E_TMP/dest$(echo "$prefix" | tr / _)
	check_exit "make install PREFIX=$prefix" 0 \
		make -s --no-print-directory -C "$root" install DESTDIR="$dest" PREFIX="$prefix"
	unit=$dest/lib/systemd/system/kurierd.service
	if [ ! -f "$unit" ]; then
		fail "PREFIX=$prefix: unit installed" "no $unit"
		return
	fi
	exec=$(unit_path "$unit" ExecStart)
	pre=$(unit_path "$unit" ExecStartPre)
	doc=$(unit_path "$unit" Documentation)
	check_eq "PREFIX=$prefix: ExecStart" "$exec" "$prefix/bin/kurierd"
	check_eq "PREFIX=$prefix: ExecStartPre" "$pre" "$prefix/bin/kurierctl"
	check_eq "PREFIX=$prefix: ExecStart is installed and executable" \
		"$([ -x "$dest$exec" ] && echo yes)" yes
	check_eq "PREFIX=$prefix: ExecStartPre is installed and executable" \
		"$([ -x "$dest$pre" ] && echo yes)" yes
	check_eq "PREFIX=$prefix: Documentation= is under PREFIX" "${doc#"$prefix"/}" \
		share/doc/kurier/README.md
	check_eq "PREFIX=$prefix: Documentation= is installed" "$([ -s "$dest$doc" ] && echo yes)" yes
	check_eq "PREFIX=$prefix: the config the unit names has its example beside it" \
		"$([ -f "$dest/etc/kurier/kurier.conf.example" ] && echo yes)" yes
	check_eq "PREFIX=$prefix: no placeholder or template line left" \
		"$(grep -c '@[A-Z]*@\|^#%' "$unit")" 0
	if [ "$prefix" != /usr/local ]; then
		check_eq "PREFIX=$prefix: no /usr/local path in the unit" \
			"$(grep -c /usr/local "$unit")" 0
	fi
}

check_install /usr
check_install /opt/kurier

# --- 2. install-deps.sh against stubs --------------------------------------------------

stub=$E2E_TMP/stub
mkdir -p "$stub"
# dpkg-query -W -f=... PKG: "install ok installed" for a package listed
# in $STATE/installed.
cat >"$stub/dpkg-query" <<'EOF'
#!/bin/sh
for p; do :; done
grep -qx -- "$p" "$STATE/installed" 2>/dev/null || exit 1
printf 'install ok installed'
EOF
# apt-get: logged; install adds its packages to $STATE/installed.
cat >"$stub/apt-get" <<'EOF'
#!/bin/sh
echo "apt-get $*" >>"$STATE/log"
[ "$1" = install ] || exit 0
for p; do
	case "$p" in -*|install) ;; *) echo "$p" >>"$STATE/installed" ;; esac
done
EOF
# systemctl: logged; every unit is active and enabled (the worst case).
cat >"$stub/systemctl" <<'EOF'
#!/bin/sh
echo "systemctl $*" >>"$STATE/log"
exit 0
EOF
printf '#!/bin/sh\nexec "$@"\n' >"$stub/sudo"
printf '#!/bin/sh\necho 1000\n' >"$stub/id"
printf '#!/bin/sh\ncat >/dev/null\n' >"$stub/debconf-set-selections"
chmod +x "$stub"/*

# every package any mode asks for, from the script's own lists.
all_pkgs=$(KURIER_DEPS_FUNCS=1 sh -c ". '$root/deploy/install-deps.sh'; want_pkgs bench" |
	tr ' ' '\n' | grep . | sort -u)
all_pkgs="$all_pkgs
nodejs
npm"

# deps NAME INSTALLED MODE - run install-deps.sh MODE with INSTALLED
# (newline-separated) as the packages already installed; the stubs' log
# is left in DEPS_LOG.
deps() {
	local state=$E2E_TMP/state-$1
	mkdir -p "$state"
	printf '%s\n' "$2" | grep . >"$state/installed"
	: >"$state/log"
	check_exit "install-deps.sh $3 ($1): exit 0" 0 \
		env STATE="$state" PATH="$stub:/usr/bin:/bin" sh "$root/deploy/install-deps.sh" "$3"
	DEPS_LOG=$(cat "$state/log")
}

# A redis-server installed before the run, a test package missing.
deps redis-before "$(echo "$all_pkgs" | grep -vx swaks)" --check
check_match "redis before: the missing package is installed" "$DEPS_LOG" 'apt-get install .* swaks'
check_eq "redis before: redis-server is not reinstalled" \
	"$(echo "$DEPS_LOG" | grep -c 'apt-get install.* redis-server')" 0
check_eq "redis before: systemctl never stops or disables anything" \
	"$(echo "$DEPS_LOG" | grep -c '^systemctl.*\(stop\|disable\|mask\|kill\)')" 0

# The same with --bench, postfix there before, opendkim not.
deps bench-postfix-before "$(echo "$all_pkgs" | grep -vx opendkim)" --bench
check_match "bench: opendkim, installed by this run, is stopped" "$DEPS_LOG" \
	'systemctl disable --now opendkim'
check_eq "bench: postfix and redis-server, installed before, are left alone" \
	"$(echo "$DEPS_LOG" | grep -c '^systemctl.*\(postfix\|redis-server\)')" 0

# redis-server missing: the run installs it and stops the unit apt started.
deps redis-new "$(echo "$all_pkgs" | grep -vx 'redis-server')" --run
check_match "redis new: redis-server is installed" "$DEPS_LOG" 'apt-get install .* redis-server'
check_match "redis new: the unit this run installed is stopped and disabled" "$DEPS_LOG" \
	'systemctl disable --now redis-server'

# A bare machine, --run: what running needs, no test or benchmark package.
deps bare-run "" --run
check_match "--run: installs redis-server and the libraries" "$DEPS_LOG" \
	'apt-get install .*libuv1-dev.* redis-server'
check_eq "--run: no test or benchmark package" \
	"$(echo "$DEPS_LOG" | grep 'apt-get install' | tr ' ' '\n' |
		grep -cx 'nodejs\|npm\|clang\|swaks\|dnsmasq-base\|postfix\|opendkim\|check')" 0

# Nothing missing: no apt-get, no systemctl.
deps all-there "$all_pkgs" --bench
check_eq "nothing missing: no apt-get and no systemctl" "$DEPS_LOG" ""

# The decision alone, on the state after "redis new" (redis-server installed).
# stop_list MISSING - services_to_stop MISSING, on one line.
stop_list() {
	STATE=$E2E_TMP/state-redis-new PATH="$stub:/usr/bin:/bin" KURIER_DEPS_FUNCS=1 \
		sh -c ". '$root/deploy/install-deps.sh'; services_to_stop '$1'" | tr '\n' ' '
}
check_eq "services_to_stop: an installed redis-server that was not missing is not listed" \
	"$(stop_list ' swaks clang')" ""
check_eq "services_to_stop: one that was missing and is installed now is" \
	"$(stop_list ' swaks redis-server')" "redis-server "

e2e_done
