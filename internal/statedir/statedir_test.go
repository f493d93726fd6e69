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

func TestSeqFloorAndCrashGap(t *testing.T) {
	d := New("config.yaml", t.TempDir(), nil)
	if f := d.SeqFloor(); f != 0 {
		t.Errorf("first start: floor %d, want 0", f)
	}
	h := gateway.NewHub(gateway.Options{GatewayID: "gw"})
	if err := h.AddDevice(gateway.DeviceInfo{ID: "demo"}); err != nil {
		t.Fatal(err)
	}
	link, err := h.Attach("demo", func(context.Context, gateway.Command) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	link.Publish(gateway.Reading{Label: "temp", Value: json.RawMessage("21.5")})
	d.Save(h)
	if f := d.SeqFloor(); f != 1 {
		t.Errorf("after a clean shutdown floor %d, want 1", f)
	}
	if err := d.writeSeq(7, "running"); err != nil { // as a crashed run leaves it
		t.Fatal(err)
	}
	if f := d.SeqFloor(); f != 7+SeqCrashGap {
		t.Errorf("after a crash floor %d, want %d", f, 7+SeqCrashGap)
	}
	// A damaged seq file counts as a crash and is kept aside, not
	// overwritten by the next save.
	os.WriteFile(filepath.Join(d.Path(), "seq"), []byte("garbage\x00\xff"), 0o600)
	if f := d.SeqFloor(); f != SeqCrashGap {
		t.Errorf("damaged seq file: floor %d, want %d", f, SeqCrashGap)
	}
	d.Save(h)
	assertKeptAside(t, d.Path(), "seq", "garbage\x00\xff")
}

// assertKeptAside checks that name.corrupt-* holds content.
func assertKeptAside(t *testing.T, dir, name, content string) {
	t.Helper()
	aside, _ := filepath.Glob(filepath.Join(dir, name+".corrupt-*"))
	if len(aside) != 1 {
		t.Fatalf("%s kept aside as %v, want one %s.corrupt-TIMESTAMP", name, aside, name)
	}
	if b, err := os.ReadFile(aside[0]); err != nil || string(b) != content {
		t.Errorf("%s: %q %v, want the damaged content %q", aside[0], b, err, content)
	}
}

func TestDamagedTokenKeptAside(t *testing.T) {
	for _, garbage := range []string{"\x00\x01\xfe binary", "two\nlines", "   \n"} {
		d := New("config.yaml", t.TempDir(), nil)
		os.MkdirAll(d.Path(), 0o700)
		os.WriteFile(d.TokenPath(), []byte(garbage), 0o600)
		tok, _, err := d.Token(gateway.HTTPConfig{Auth: "token"})
		if err != nil || !validToken(tok) || len(tok) < 32 {
			t.Fatalf("token from a damaged file %q: %q %v", garbage, tok, err)
		}
		assertKeptAside(t, d.Path(), "token", garbage)
		if again, _, _ := d.Token(gateway.HTTPConfig{Auth: "token"}); again != tok {
			t.Errorf("the new token was not kept: %q then %q", tok, again)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "f")
	for _, content := range []string{"one\n", "two\n"} {
		if err := writeFileAtomic(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("content %q, want %q", b, content)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode: %v %v, want 0600", fi, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

func TestTakeLegacyHistory(t *testing.T) {
	d := New("config.yaml", t.TempDir(), nil)
	if recs := d.TakeLegacyHistory(); recs != nil {
		t.Fatalf("no file: %v", recs)
	}
	legacy := `{"seq":3,"devices":{"demo":{"temp":[{"value":21.5,"ts":"2026-11-30T10:00:00.000Z","seq":1},{"value":21.6,"ts":"2026-11-30T10:00:01.000Z","seq":3}]}}}`
	path := filepath.Join(d.Path(), "history.json")
	if err := os.WriteFile(path, []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	recs := d.TakeLegacyHistory()
	if len(recs) != 2 || recs[1].Device != "demo" || recs[1].Label != "temp" || string(recs[1].Value) != "21.6" || recs[1].Seq != 3 {
		t.Fatalf("records %+v", recs)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("history.json still there: it would be imported again")
	}
	if _, err := os.Stat(path + ".imported"); err != nil {
		t.Errorf("history.json.imported: %v", err)
	}
	// A damaged file yields nothing and is kept aside.
	os.WriteFile(path, []byte("{not json"), 0o600)
	if recs := d.TakeLegacyHistory(); len(recs) != 0 {
		t.Errorf("damaged file gave %v", recs)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("damaged history.json not moved aside")
	}
}

// A run killed before its first periodic save still counts as a crash.
func TestMarkRunningBeforeFirstSave(t *testing.T) {
	d := New("config.yaml", t.TempDir(), nil)
	if err := d.writeSeq(40, "clean"); err != nil {
		t.Fatal(err)
	}
	if err := d.MarkRunning(40); err != nil {
		t.Fatal(err)
	}
	if f := d.SeqFloor(); f != 40+SeqCrashGap {
		t.Errorf("floor after a run killed at once: %d, want %d", f, 40+SeqCrashGap)
	}
}

func TestEnrollToken(t *testing.T) {
	d := New(filepath.Join(t.TempDir(), "config.yaml"), "data", nil)
	if tok, src, gen, err := d.EnrollToken("from-config"); err != nil || tok != "from-config" || src != "config" || gen {
		t.Fatalf("configured: %q %q %v %v", tok, src, gen, err)
	}
	tok, src, gen, err := d.EnrollToken("")
	if err != nil || tok == "" || src != d.EnrollTokenPath() || !gen {
		t.Fatalf("first start: %q %q %v %v", tok, src, gen, err)
	}
	if fi, err := os.Stat(d.EnrollTokenPath()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("enroll_token file: %v %v", fi, err)
	}
	if again, _, gen, err := d.EnrollToken(""); err != nil || again != tok || gen {
		t.Fatalf("second start: %q (want %q) generated %v %v", again, tok, gen, err)
	}
	if browser, _, _ := d.Token(gateway.HTTPConfig{Auth: "token"}); browser == tok {
		t.Fatal("the enroll token is the browser token")
	}
}
