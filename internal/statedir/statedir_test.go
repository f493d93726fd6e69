package statedir

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/esp32gw/esp32gw/gateway"
)

func TestTokenGeneratedOnceAndKept(t *testing.T) {
	cfgDir := t.TempDir()
	d := New(filepath.Join(cfgDir, "config.yaml"), "data", nil)
	if want := filepath.Join(cfgDir, "data"); d.Path() != want {
		t.Fatalf("Path %q, want %q (relative to the config file)", d.Path(), want)
	}
	tok, src, err := d.Token(gateway.HTTPConfig{Auth: "token"})
	if err != nil || len(tok) < 32 || src != filepath.Join(d.Path(), "token") {
		t.Fatalf("Token: %q %q %v", tok, src, err)
	}
	if fi, err := os.Stat(src); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	again, _, err := d.Token(gateway.HTTPConfig{Auth: "token"})
	if err != nil || again != tok {
		t.Errorf("second start: %q %v, want the kept %q", again, err, tok)
	}
	if tok, src, _ := d.Token(gateway.HTTPConfig{Auth: "token", Token: "set"}); tok != "set" || src != "config" {
		t.Errorf("configured token: %q %q", tok, src)
	}
	if tok, src, _ := d.Token(gateway.HTTPConfig{Auth: "none"}); tok != "" || src != "" {
		t.Errorf("auth none: %q %q", tok, src)
	}
}

func TestSaveRestoreAndCrashGap(t *testing.T) {
	d := New("config.yaml", t.TempDir(), nil)
	hub := func() *gateway.Hub {
		h := gateway.NewHub(gateway.Options{GatewayID: "gw"})
		if err := h.AddDevice(gateway.DeviceInfo{ID: "demo"}); err != nil {
			t.Fatal(err)
		}
		return h
	}
	h := hub()
	link, err := h.Attach("demo", func(context.Context, gateway.Command) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	link.Publish(gateway.Reading{Label: "temp", Value: json.RawMessage("21.5")})
	d.Save(h)

	h2 := hub()
	d.Restore(h2)
	if h2.Seq() != 1 {
		t.Errorf("after a clean shutdown seq %d, want 1", h2.Seq())
	}
	if pts, _ := h2.History("demo", "temp"); len(pts["temp"]) != 1 {
		t.Errorf("history not restored: %v", pts)
	}

	if err := d.writeSeq(7, "running"); err != nil { // as a crashed run leaves it
		t.Fatal(err)
	}
	h3 := hub()
	d.Restore(h3)
	if h3.Seq() != 7+SeqCrashGap {
		t.Errorf("after a crash seq %d, want %d", h3.Seq(), 7+SeqCrashGap)
	}
}
