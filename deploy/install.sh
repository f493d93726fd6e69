#!/usr/bin/env bash
# Install esp32gw as a service on a Raspberry Pi (or any systemd Linux).
# Run from a checkout, as root:   sudo deploy/install.sh
# It builds the binary for this machine (Go must be installed), creates the
# esp32gw user, puts the config in /etc/esp32gw and state in /var/lib/esp32gw,
# and starts the service. Running it again upgrades the binary and keeps the config.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: sudo $0" >&2; exit 1; }

echo "building esp32gw..."
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /usr/local/bin/esp32gw ./cmd/esp32gw

if ! id esp32gw >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/esp32gw --shell /usr/sbin/nologin esp32gw
fi
usermod -aG dialout esp32gw

install -d -m 0755 /etc/esp32gw
install -d -m 0700 -o esp32gw -g esp32gw /var/lib/esp32gw
if [ ! -f /etc/esp32gw/config.yaml ]; then
  # Start from the default config, with state kept in /var/lib/esp32gw.
  sed 's|^state_dir: .*|state_dir: "/var/lib/esp32gw"         # the login token lives here|' config.yaml > /etc/esp32gw/config.yaml
  echo "wrote /etc/esp32gw/config.yaml (simulated boards: edit it to add yours)"
fi
/usr/local/bin/esp32gw check -config /etc/esp32gw/config.yaml

install -m 0644 deploy/esp32gw.service /etc/systemd/system/esp32gw.service
systemctl daemon-reload
systemctl enable --now esp32gw
systemctl restart esp32gw
sleep 1
echo
echo "esp32gw is running. The login URL is in the log:"
journalctl -u esp32gw -n 20 --no-pager | grep -m1 -o 'url=[^ ]*' || echo "  journalctl -u esp32gw | grep url="
