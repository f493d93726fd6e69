package releasetest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// debFiles lists a package's files by path ("/usr/bin/esp32gw") with
// their tar headers, and hashes the regular ones.
func debFiles(t *testing.T, deb string) (map[string]*tar.Header, map[string][32]byte) {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb --fsys-tarfile %s: %v", deb, err)
	}
	headers := map[string]*tar.Header{}
	sums := map[string][32]byte{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := "/" + strings.TrimPrefix(strings.TrimPrefix(h.Name, "."), "/")
		headers[name] = h
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			sums[name] = sha256.Sum256(data)
		}
	}
	return headers, sums
}

func TestDebs(t *testing.T) {
	need(t, "dpkg-deb")
	d := dist(t)
	for _, tc := range []struct{ debArch, binArch string }{
		{"amd64", "amd64"}, {"arm64", "arm64"}, {"armhf", "armv6"},
	} {
		t.Run(tc.debArch, func(t *testing.T) {
			deb := filepath.Join(d, "esp32gw_"+version+"_"+tc.debArch+".deb")
			fields := map[string]string{}
			for _, f := range []string{"Package", "Version", "Architecture", "Depends", "Maintainer", "Homepage", "Description", "Section", "Priority"} {
				out, err := exec.Command("dpkg-deb", "-f", deb, f).Output()
				if err != nil {
					t.Fatalf("dpkg-deb -f %s %s: %v", deb, f, err)
				}
				fields[f] = strings.TrimSpace(string(out))
			}
			for f, want := range map[string]string{"Package": "esp32gw", "Version": version, "Architecture": tc.debArch, "Depends": "adduser"} {
				if fields[f] != want {
					t.Errorf("%s: %q, want %q", f, fields[f], want)
				}
			}
			for _, f := range []string{"Maintainer", "Homepage", "Description"} {
				if fields[f] == "" {
					t.Errorf("%s is empty", f)
				}
			}

			headers, sums := debFiles(t, deb)
			bin, err := os.ReadFile(filepath.Join(d, "esp32gw_"+version+"_linux_"+tc.binArch))
			if err != nil {
				t.Fatal(err)
			}
			if sums["/usr/bin/esp32gw"] != sha256.Sum256(bin) {
				t.Errorf("/usr/bin/esp32gw is not the %s binary", tc.binArch)
			}
			for path, want := range map[string]struct {
				mode        int64
				user, group string
			}{
				"/usr/bin/esp32gw":                    {0o755, "root", "root"},
				"/lib/systemd/system/esp32gw.service": {0o644, "root", "root"},
				// group esp32gw comes from postinst (dpkg-statoverride)
				"/etc/esp32gw/config.yaml":         {0o640, "root", "root"},
				"/usr/share/doc/esp32gw/copyright": {0o644, "root", "root"},
			} {
				h := headers[path]
				if h == nil {
					t.Errorf("%s is missing", path)
					continue
				}
				if h.Mode&0o7777 != want.mode || h.Uname != want.user || h.Gname != want.group {
					t.Errorf("%s: %o %s:%s, want %o %s:%s", path, h.Mode&0o7777, h.Uname, h.Gname, want.mode, want.user, want.group)
				}
			}
			unit, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "esp32gw.service"))
			if err != nil {
				t.Fatal(err)
			}
			if sums["/lib/systemd/system/esp32gw.service"] != sha256.Sum256(unit) {
				t.Error("the packaged unit is not deploy/esp32gw.service")
			}
			config, err := os.ReadFile(filepath.Join(d, "config.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if sums["/etc/esp32gw/config.yaml"] != sha256.Sum256(config) {
				t.Error("the packaged config is not dist/config.yaml")
			}

			ctl := t.TempDir()
			if out, err := exec.Command("dpkg-deb", "-e", deb, ctl).CombinedOutput(); err != nil {
				t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
			}
			conffiles, err := os.ReadFile(filepath.Join(ctl, "conffiles"))
			if err != nil || strings.TrimSpace(string(conffiles)) != "/etc/esp32gw/config.yaml" {
				t.Errorf("conffiles: %q (%v), want /etc/esp32gw/config.yaml", conffiles, err)
			}
			for _, s := range []string{"postinst", "prerm", "postrm"} {
				got, err := os.ReadFile(filepath.Join(ctl, s))
				if err != nil {
					t.Errorf("%s: %v", s, err)
					continue
				}
				src, _ := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "debian", s))
				if !bytes.Equal(got, src) {
					t.Errorf("the package's %s is not deploy/debian/%s", s, s)
				}
			}
		})
	}
}

func TestLintian(t *testing.T) {
	lintian := need(t, "lintian")
	deb := filepath.Join(dist(t), "esp32gw_"+version+"_amd64.deb")
	out, _ := exec.Command(lintian, deb).CombinedOutput() // exit 1 on warnings, 2 on errors
	var errs []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "E:") {
			errs = append(errs, l)
		}
	}
	if len(errs) > 0 {
		t.Fatalf("lintian errors:\n%s\n\nfull output:\n%s", strings.Join(errs, "\n"), out)
	}
	t.Logf("lintian:\n%s", out)
}
