package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/esp32gw/esp32gw/gateway"
)

// TestDevicesDocRoundTrip: adding and removing devices keeps the other
// entries (and their comments) as written, and the loader reads the result.
func TestDevicesDocRoundTrip(t *testing.T) {
	cfgPath := writeConfig(t, `
state_dir: data
devices:
  - id: demo
    transport: sim
`)
	state := filepath.Join(filepath.Dir(cfgPath), "data")
	path := filepath.Join(state, devicesFile)
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	handWritten := `devices:
  # the bench board, by hand
  - id: bench
    transport: sim
    sim: {board: relay, interval: 1s}
`
	if err := os.WriteFile(path, []byte(handWritten), 0o600); err != nil {
		t.Fatal(err)
	}

	doc, err := readDevicesDoc(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.add(gateway.DeviceConfig{ID: "garage", Name: "Garage", Transport: gateway.TransportWSListen, Token: "tok-0123456789", EnrolledAs: "newboard", Commands: []string{"toggle"}}); err != nil {
		t.Fatal(err)
	}
	if err := doc.add(gateway.DeviceConfig{ID: "porch", Transport: gateway.TransportWSDial, URL: "ws://10.0.0.11/ws"}); err != nil {
		t.Fatal(err)
	}
	if err := doc.write(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("devices.yaml: %v %v, want mode 0600", fi, err)
	}
	cfg, err := loadConfig(cfgPath, "")
	if err != nil {
		t.Fatalf("load after adding: %v", err)
	}
	var ids []string
	for _, d := range cfg.Devices {
		ids = append(ids, d.ID)
	}
	if strings.Join(ids, ",") != "demo,bench,garage,porch" {
		t.Fatalf("devices after adding: %v", ids)
	}
	if g := cfg.Devices[2]; g.Token != "tok-0123456789" || g.EnrolledAs != "newboard" || g.Name != "Garage" || len(g.Commands) != 1 {
		t.Errorf("garage read back: %+v", g)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "# the bench board, by hand") || strings.Count(string(b), "# Devices added") != 1 {
		t.Errorf("file after adding:\n%s", b)
	}

	// Remove one; write twice: the header stays single.
	doc, err = readDevicesDoc(path)
	if err != nil {
		t.Fatal(err)
	}
	if !doc.remove("garage") || doc.remove("garage") || doc.has("garage") {
		t.Fatal("remove garage")
	}
	if err := doc.write(); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	if strings.Contains(string(b), "garage") || strings.Count(string(b), "# Devices added") != 1 || !strings.Contains(string(b), "id: porch") {
		t.Errorf("file after removing:\n%s", b)
	}
}

// TestDevicesDocMalformed: a devices.yaml that is not what the gateway
// writes is reported clearly, at start and by the writer, and never
// overwritten.
func TestDevicesDocMalformed(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"not YAML", "devices: [\n  - id: x\n", "not valid YAML"},
		{"a list at the top", "- id: x\n  transport: sim\n", "top level must be a mapping"},
		{"devices not a list", "devices: 3\n", "devices: must be a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath := writeConfig(t, "state_dir: data\n")
			state := filepath.Join(filepath.Dir(cfgPath), "data")
			os.MkdirAll(state, 0o700)
			path := filepath.Join(state, devicesFile)
			if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := loadConfig(cfgPath, ""); err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("loadConfig: %v, want an error naming %s", err, path)
			}
			if _, err := readDevicesDoc(path); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("readDevicesDoc: %v, want %q", err, tc.want)
			}
			if b, _ := os.ReadFile(path); string(b) != tc.body {
				t.Errorf("the file changed:\n%s", b)
			}
		})
	}
	// A missing file is an empty list.
	doc, err := readDevicesDoc(filepath.Join(t.TempDir(), devicesFile))
	if err != nil || len(doc.ids()) != 0 {
		t.Errorf("missing file: %v %v", doc, err)
	}
}
