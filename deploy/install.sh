#!/usr/bin/env bash
# Install esp32gw as a service from a checkout, on a Raspberry Pi or any
# systemd Linux. Run as root:   sudo deploy/install.sh
# It builds the binary for this machine with deploy/release.sh (Go must be
# installed) and installs what the .deb installs: /usr/bin/esp32gw, the
# unit, /etc/esp32gw/config.yaml (kept when present; mode 0640, group
# esp32gw), then runs the package's postinst: the esp32gw user (in
# dialout), /var/lib/esp32gw, and the service. Running it again upgrades
# the binary and keeps the config and state.
# On Debian and Raspberry Pi OS the .deb is simpler: see README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: sudo $0" >&2; exit 1; }

case $(uname -m) in
x86_64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
armv6l | armv7l | armv8l) arch=armv6 ;; # 32-bit OS on any Pi
*) echo "install: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
version="0.0.0+git.$(git rev-parse --short HEAD 2>/dev/null || echo local)"
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT

echo "building esp32gw $version for $arch..."
DIST="$build" ARCHES=$arch DEBS=no deploy/release.sh "$version" >/dev/null

install -m 0755 "$build/esp32gw_${version}_linux_$arch" /usr/bin/esp32gw
install -d -m 0755 /lib/systemd/system /etc/esp32gw
install -m 0644 deploy/esp32gw.service /lib/systemd/system/esp32gw.service
if [ ! -f /etc/esp32gw/config.yaml ]; then
	install -m 0640 "$build/config.yaml" /etc/esp32gw/config.yaml
	echo "wrote /etc/esp32gw/config.yaml (simulated boards: edit it to add yours)"
fi

# An older install.sh put the binary in /usr/local/bin and the unit in /etc,
# where it would override this one.
if grep -qs '^ExecStart=/usr/local/bin/esp32gw' /etc/systemd/system/esp32gw.service; then
	rm -f /etc/systemd/system/esp32gw.service /usr/local/bin/esp32gw
	echo "removed the old /etc/systemd/system/esp32gw.service and /usr/local/bin/esp32gw"
fi

# The package's own postinst: "upgrade" (a non-empty old version) when the
# unit is already enabled, so a reinstall restarts the service.
old=
systemctl is-enabled --quiet esp32gw.service 2>/dev/null && old=installed
sh deploy/debian/postinst configure $old
/usr/bin/esp32gw check -config /etc/esp32gw/config.yaml ||
	echo "install: fix /etc/esp32gw/config.yaml, then: sudo systemctl restart esp32gw" >&2

echo
echo "esp32gw is installed. The login URL is in the log:"
echo "  journalctl -u esp32gw | grep token="
