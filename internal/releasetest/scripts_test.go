package releasetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// stubs are the commands the maintainer scripts call that would change
// this machine (users, dpkg's database, systemd): each records its
// arguments in $STUB_LOG and succeeds, except that dpkg-statoverride
// --list finds an override only after --update --add made one.
var stubs = map[string]string{
	"adduser":           ``,
	"chown":             ``,
	"getent":            ``, // "group dialout" exists
	"dpkg-statoverride": `case "$1" in --list) [ -e "$STUB_LOG.override" ] ;; --update) : >"$STUB_LOG.override" ;; --remove) rm -f "$STUB_LOG.override" ;; esac`,
	"systemctl":         `case "$1" in is-enabled) exit 0 ;; esac`,
}

// scriptEnv extracts the amd64 package's maintainer scripts and makes a
// PATH whose stubs log into the returned file.
func scriptEnv(t *testing.T) (ctl, log string, env []string) {
	t.Helper()
	need(t, "dpkg-deb")
	deb := filepath.Join(dist(t), "esp32gw_"+version+"_amd64.deb")
	dir := t.TempDir()
	ctl = filepath.Join(dir, "control")
	if out, err := exec.Command("dpkg-deb", "-e", deb, ctl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
	}
	bin := filepath.Join(dir, "stubs")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range stubs {
		if body == "" {
			body = "exit 0"
		}
		// The body's last command gives the exit status.
		script := "#!/bin/sh\necho \"" + name + " $*\" >>\"$STUB_LOG\"\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	log = filepath.Join(dir, "calls.log")
	env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "STUB_LOG="+log)
	return ctl, log, env
}

// driver runs the package's scripts as dpkg would across a lifetime:
// install, upgrade, remove, purge, and records the state directory.
const driver = `set -e
step() { echo "== $*" >>"$STUB_LOG"; }
state() { if [ -d "$R/var/lib/esp32gw" ]; then echo "state $(stat -c %a "$R/var/lib/esp32gw")" >>"$STUB_LOG"; else echo "state gone" >>"$STUB_LOG"; fi; }
step install;  sh "$CTL/postinst" configure "";          state
step upgrade;  sh "$CTL/prerm" upgrade 0.0.0-next
               sh "$CTL/postinst" configure 0.0.0-old;   state
step remove;   sh "$CTL/prerm" remove
               sh "$CTL/postrm" remove;                   state
step purge;    sh "$CTL/postrm" purge;                    state
`

func TestMaintainerScriptsWithoutSystemd(t *testing.T) {
	ctl, log, env := scriptEnv(t)
	root := t.TempDir() // a container or image build: no /run/systemd/system
	if err := os.MkdirAll(filepath.Join(root, "etc", "esp32gw"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", driver)
	cmd.Env = append(env, "DPKG_ROOT="+root, "R="+root, "CTL="+ctl)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts failed without systemd: %v\n%s", err, out)
	}
	checkCalls(t, log, `== install
adduser --system --group --quiet --home /var/lib/esp32gw --no-create-home --shell /usr/sbin/nologin esp32gw
getent group dialout
adduser --quiet esp32gw dialout
dpkg-statoverride --list /etc/esp32gw/config.yaml
dpkg-statoverride --update --add root esp32gw 0640 /etc/esp32gw/config.yaml
chown esp32gw:esp32gw ROOT/var/lib/esp32gw
systemctl --root=ROOT enable esp32gw.service
state 750
== upgrade
adduser --system --group --quiet --home /var/lib/esp32gw --no-create-home --shell /usr/sbin/nologin esp32gw
getent group dialout
adduser --quiet esp32gw dialout
dpkg-statoverride --list /etc/esp32gw/config.yaml
chown esp32gw:esp32gw ROOT/var/lib/esp32gw
state 750
== remove
state 750
== purge
dpkg-statoverride --list /etc/esp32gw/config.yaml
dpkg-statoverride --remove /etc/esp32gw/config.yaml
state gone
`, root)
}

// With systemd running, the scripts run in a private mount namespace whose
// /run, /etc and /var/lib are empty tmpfs: the real ones are never touched.
func TestMaintainerScriptsWithSystemd(t *testing.T) {
	unshare := need(t, "unshare")
	if out, err := exec.Command(unshare, "--mount", "true").CombinedOutput(); err != nil {
		if ci {
			t.Fatalf("unshare --mount: %v\n%s", err, out)
		}
		t.Skipf("unshare --mount is not allowed here (%v): needs root", strings.TrimSpace(string(out)))
	}
	ctl, log, env := scriptEnv(t)
	setup := `mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system
mount -t tmpfs tmpfs /var/lib
mount -t tmpfs tmpfs /etc && mkdir /etc/esp32gw && : >/etc/esp32gw/config.yaml
`
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", setup+driver)
	cmd.Env = append(env, "R=", "CTL="+ctl, "DPKG_ROOT=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts failed with systemd: %v\n%s", err, out)
	}
	checkCalls(t, log, `== install
adduser --system --group --quiet --home /var/lib/esp32gw --no-create-home --shell /usr/sbin/nologin esp32gw
getent group dialout
adduser --quiet esp32gw dialout
dpkg-statoverride --list /etc/esp32gw/config.yaml
dpkg-statoverride --update --add root esp32gw 0640 /etc/esp32gw/config.yaml
chown esp32gw:esp32gw /var/lib/esp32gw
systemctl enable esp32gw.service
systemctl daemon-reload
systemctl start esp32gw.service
state 750
== upgrade
adduser --system --group --quiet --home /var/lib/esp32gw --no-create-home --shell /usr/sbin/nologin esp32gw
getent group dialout
adduser --quiet esp32gw dialout
dpkg-statoverride --list /etc/esp32gw/config.yaml
chown esp32gw:esp32gw /var/lib/esp32gw
systemctl daemon-reload
systemctl is-enabled --quiet esp32gw.service
systemctl restart esp32gw.service
state 750
== remove
systemctl stop esp32gw.service
systemctl daemon-reload
state 750
== purge
dpkg-statoverride --list /etc/esp32gw/config.yaml
dpkg-statoverride --remove /etc/esp32gw/config.yaml
systemctl daemon-reload
state gone
`, "")
}

func checkCalls(t *testing.T, log, want, root string) {
	t.Helper()
	got, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if root != "" {
		want = strings.ReplaceAll(want, "ROOT", root)
	}
	if string(got) != want {
		t.Errorf("calls:\n%s\nwant:\n%s", got, want)
	}
}
