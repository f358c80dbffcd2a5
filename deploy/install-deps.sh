#!/bin/sh
# install-deps.sh - install the Debian 12 packages kurier needs, for one
# purpose at a time.  Installs only what is missing; safe to run again.
#
#   deploy/install-deps.sh --run    build and run (`make run`)
#   deploy/install-deps.sh --check  also the tests (`make check`; the default)
#   deploy/install-deps.sh --bench  also what `make bench` compares against
#
# Services: Debian starts a service when its package is installed
# (redis-server, postfix, opendkim, and dovecot from dovecot-core).
# kurier runs its own instances of them (make run and the tests start
# redis-server under ./var or a temp dir; the benchmark starts postfix,
# opendkim and dovecot on loopback), so the script stops and disables
# the unit that apt started, but only for a package that this very run
# installed.  A service that was installed before, and may serve other
# applications, is never touched.
#
# KURIER_DEPS_FUNCS=1 when sourcing: define the functions, do nothing
# (tests/e2e/install.sh checks the service decision with stubs).
set -eu

# What building and running kurierd needs, and nothing more.
run_pkgs="build-essential pkg-config
libuv1-dev libssl-dev libhiredis-dev libinih-dev libc-ares-dev
libopendkim-dev libspf2-dev libgmime-3.0-dev
redis-server redis-tools openssl"

# The unit, end-to-end and fuzz tests.
check_pkgs="clang libclang-rt-14-dev check libsubunit-dev
python3 procps swaks libnet-ssleay-perl curl
dnsmasq-base python3-aiosmtpd python3-dkim python3-nacl"

# What `make bench` measures kurier against.
bench_pkgs="postfix opendkim dovecot-core dovecot-pop3d dovecot-imapd"

# Packages whose install starts a system service: PKG when the unit has
# the package's name, PKG=UNIT when not.
service_pkgs="redis-server postfix opendkim dovecot-core=dovecot"

# pkg_installed PKG - whether dpkg has PKG installed (not only its config).
pkg_installed() {
	case "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" in
	*" installed") return 0 ;;
	*) return 1 ;;
	esac
}

# want_pkgs MODE - the packages MODE (run, check, bench) needs.
want_pkgs() {
	case "$1" in
	run) echo "$run_pkgs" ;;
	check) echo "$run_pkgs $check_pkgs" ;;
	bench) echo "$run_pkgs $check_pkgs $bench_pkgs" ;;
	esac
	# The end-to-end tests submit with nodemailer: Node.js from Debian
	# unless the machine has a node already.
	if [ "$1" != run ] && ! command -v node >/dev/null 2>&1; then
		echo "nodejs npm"
	fi
}

# missing_pkgs PKG... - those of PKG that are not installed, one line.
missing_pkgs() {
	missing=""
	for p in "$@"; do
		pkg_installed "$p" || missing="$missing $p"
	done
	echo "$missing"
}

# services_to_stop MISSING - the units whose package is in MISSING (the
# packages missing before this run) and is installed now: the ones this
# run installed and apt started.  A unit whose package was installed
# before the run is never listed.
services_to_stop() {
	for entry in $service_pkgs; do
		pkg=${entry%%=*}
		svc=${entry#*=}
		case " $1 " in
		*" $pkg "*) pkg_installed "$pkg" && echo "$svc" ;;
		esac
	done
	return 0
}

# stop_services SVC... - stop and disable each unit (they were just
# installed by this run; see services_to_stop).
stop_services() {
	command -v systemctl >/dev/null 2>&1 || return 0
	for svc in "$@"; do
		echo "install-deps: stopping $svc, which this run installed (kurier starts its own)" >&2
		$SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
	done
}

main() {
	mode=check
	case "${1:-}" in
	"" | --check) ;;
	--run) mode=run ;;
	--bench) mode=bench ;;
	*)
		echo "usage: install-deps.sh [--run | --check | --bench]" >&2
		exit 2
		;;
	esac

	# shellcheck disable=SC2046
	missing=$(missing_pkgs $(want_pkgs "$mode"))
	[ -z "$missing" ] && exit 0

	echo "install-deps: installing:$missing" >&2
	SUDO=""
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || {
			echo "install-deps: need root (or sudo) to install:$missing" >&2
			exit 1
		}
		SUDO=sudo
	fi
	export DEBIAN_FRONTEND=noninteractive
	case " $missing " in
	*" postfix "*)
		# postfix asks a question on install; answer it with a local-only setup.
		echo "postfix postfix/main_mailer_type select Local only" | $SUDO debconf-set-selections 2>/dev/null || true
		echo "postfix postfix/mailname string localhost" | $SUDO debconf-set-selections 2>/dev/null || true
		;;
	esac
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
	# shellcheck disable=SC2046
	stop_services $(services_to_stop "$missing")
}

[ "${KURIER_DEPS_FUNCS:-}" = 1 ] || main "$@"
