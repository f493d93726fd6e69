package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/sdnotify"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// inProcess is a gateway built and run in this test process.
type inProcess struct {
	g    *runningGateway
	addr string
}

func startInProcess(t *testing.T, devices string) *inProcess {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	cfgText := "gateway_id: gw-test\nstate_dir: data\nhttp:\n  listen: \"127.0.0.1:0\"\ndevices:\n" + devices
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path, "")
	if err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	g, err := build(cfg, path, slog.New(slog.NewTextHandler(&logs, nil)), 0)
	if err != nil {
		t.Fatal(err)
	}
	g.ctl.configPath = path
	g.ctl.notify, _ = sdnotify.New(noEnv)
	g.ctl.reloads = make(chan os.Signal)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.run(ctx)
		g.shutdown(shutdownBudget)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	return &inProcess{g: g, addr: g.ln.Addr().String()}
}

func (p *inProcess) do(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+p.addr+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+p.g.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (p *inProcess) dialBoard(t *testing.T, id, token string) *websocket.Conn {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	// 503 until run has started the links: dial again.
	var c *websocket.Conn
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var resp *http.Response
		var err error
		c, resp, err = websocket.DefaultDialer.Dial("ws://"+p.addr+"/device/"+id, h)
		if err == nil {
			break
		}
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("dial /device/%s: %v (%v)", id, err, resp)
		}
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// An adopted board's device shows the attributes it showed while pending
// before it dials in again; forgetting it closes its link saying so, not
// "gateway shutting down".
func TestAdoptKeepsInfoAndForgetSaysWhy(t *testing.T) {
	gw := startInProcess(t, "  - id: cfgdev\n    transport: sim\n    sim: {board: tutorial, interval: 1s}\n")
	b := gw.dialBoard(t, "newboard", gw.g.fleet.token)
	if err := b.WriteMessage(websocket.TextMessage, []byte(`{"$fw":"1.0.0","$chip":"esp32"}`)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "newboard pending with fw", func() bool {
		pb, _, _, ok := gw.g.fleet.pending.Get("newboard")
		return ok && string(pb.Info["fw"]) == `"1.0.0"`
	})
	code, body := gw.do(t, "POST", "/api/pending/newboard/adopt", []byte(`{"id":"garage"}`))
	if code != 200 {
		t.Fatalf("adopt: %d %s", code, body)
	}
	var adopted struct{ Type, ID, Token string }
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, f, err := b.ReadMessage(); err != nil || json.Unmarshal(f, &adopted) != nil || adopted.Type != "adopted" {
		t.Fatalf("adopted frame: %s %v", f, err)
	}
	for _, got := range [][]byte{body, func() []byte { _, b := gw.do(t, "GET", "/api/devices/garage", nil); return b }()} {
		var dev struct{ Info map[string]any }
		if err := json.Unmarshal(got, &dev); err != nil || dev.Info["fw"] != "1.0.0" || dev.Info["chip"] != "esp32" {
			t.Errorf("adopted device before its board dialed again: %s, want info.fw 1.0.0 and info.chip esp32", got)
		}
	}

	b2 := gw.dialBoard(t, "garage", adopted.Token)
	testutil.Eventually(t, 5*time.Second, "garage online", func() bool {
		st, err := gw.g.hub.DeviceState("garage")
		return err == nil && st.Online
	})
	if code, body := gw.do(t, "DELETE", "/api/devices/garage", nil); code != 204 {
		t.Fatalf("forget: %d %s", code, body)
	}
	_ = b2.SetReadDeadline(time.Now().Add(5 * time.Second))
	var err error
	for err == nil {
		_, _, err = b2.ReadMessage()
	}
	ce, ok := err.(*websocket.CloseError)
	if !ok || ce.Code != websocket.CloseGoingAway || !strings.Contains(ce.Text, "device removed") {
		t.Errorf("forgotten board's link ended with %v, want close 1001 \"device removed from the gateway\"", err)
	}
}

// Adopting an enrolled board under its own id: the registry's prune after
// the device starts leaves it to be told its token.
func TestAdoptUnderPendingID(t *testing.T) {
	gw := startInProcess(t, "  - id: cfgdev\n    transport: sim\n    sim: {board: tutorial, interval: 1s}\n")
	b := gw.dialBoard(t, "porch", gw.g.fleet.token)
	testutil.Eventually(t, 5*time.Second, "porch pending", func() bool {
		_, _, _, ok := gw.g.fleet.pending.Get("porch")
		return ok
	})
	if code, body := gw.do(t, "POST", "/api/pending/porch/adopt", []byte(`{}`)); code != 200 {
		t.Fatalf("adopt under the pending id: %d %s", code, body)
	}
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, f, err := b.ReadMessage(); err != nil || !strings.Contains(string(f), `"type":"adopted","id":"porch"`) {
		t.Fatalf("adopted frame: %s %v", f, err)
	}
}
