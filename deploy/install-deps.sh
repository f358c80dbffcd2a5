#!/bin/sh
# install-deps.sh - install the Debian 12 packages kurier needs to build,
# test and run. Installs only what is missing; safe to run again.
#
#   deploy/install-deps.sh          build + run + test dependencies
#   deploy/install-deps.sh --bench  also what `make bench` compares against
set -eu

pkgs="build-essential pkg-config clang libclang-rt-14-dev
libuv1-dev libssl-dev libhiredis-dev libinih-dev check libsubunit-dev
libc-ares-dev libopendkim-dev libspf2-dev
redis-server redis-tools python3 procps swaks libnet-ssleay-perl curl openssl
dnsmasq-base python3-aiosmtpd python3-dkim python3-nacl"

# The end-to-end tests submit with nodemailer: Node.js from Debian unless
# the machine has a node already.
command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"

if [ "${1:-}" = "--bench" ]; then
	pkgs="$pkgs postfix opendkim"
fi

missing=""
for p in $pkgs; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
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
# postfix asks a question on install; answer it with a local-only setup.
echo "postfix postfix/main_mailer_type select Local only" | $SUDO debconf-set-selections 2>/dev/null || true
echo "postfix postfix/mailname string localhost" | $SUDO debconf-set-selections 2>/dev/null || true
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian starts the packaged redis-server on 6379; kurier runs its own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
	$SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
# Likewise the packaged postfix and opendkim: the benchmark starts its own
# instances (postfix -c DIR, opendkim -x FILE) on loopback and needs no
# system MTA or milter running.
for svc in postfix opendkim; do
	case " $missing " in
	*" $svc "*)
		if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet $svc 2>/dev/null; then
			$SUDO systemctl disable --now $svc >/dev/null 2>&1 || true
		fi
		;;
	esac
done
