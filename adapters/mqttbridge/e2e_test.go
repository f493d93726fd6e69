package mqttbridge

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/mosquittotest"
	"github.com/esp32gw/esp32gw/internal/testgw"
)

// gatewayConfig is a config.yaml for the real binary with one tutorial board.
func gatewayConfig(id, broker, device string) string {
	return fmt.Sprintf(`gateway_id: %s
http:
  listen: "127.0.0.1:0"
  auth: none
mqtt:
  enabled: true
  broker: %q
  cluster: true
devices:
  - id: %s
    transport: sim
    commands: [toggle]
    sim: {board: tutorial, interval: 100ms}
`, id, broker, device)
}

// SIGKILL leaves no chance for a clean goodbye: the broker publishes the
// retained Last Will, bridge/state offline. SIGINT publishes offline states
// itself and exits 0 within the contract's 5 s.
func TestBinaryLastWillAndCleanExit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	br := startBroker(t, mosquittotest.Options{})
	c := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/bridge/state": 1, "esp32gw/demo/status": 1})
	gw := testgw.Start(t, gatewayConfig("pi-a", br.URL(), "demo"))
	c.expect("esp32gw/bridge/state", within, func(m msg) bool { return m.Payload == "online" })
	gw.Kill()
	if m := c.expect("esp32gw/bridge/state", within, func(m msg) bool { return m.Payload == "offline" }); m.Retained {
		t.Logf("offline arrived as retained (subscriber connected later)")
	}
	late := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/bridge/state": 1})
	if m := late.expect("esp32gw/bridge/state", within, nil); m.Payload != "offline" || !m.Retained {
		t.Errorf("retained bridge/state after SIGKILL = %q (retained %v)", m.Payload, m.Retained)
	}

	gw.Restart()
	c.expect("esp32gw/bridge/state", within, func(m msg) bool { return m.Payload == "online" })
	c.expect("esp32gw/demo/status", within, func(m msg) bool { return m.Payload == "online" })
	err, took := gw.Stop()
	if err != nil || took > 5*time.Second {
		t.Errorf("SIGINT: exit %v after %v, want 0 within 5 s\n%s", err, took, gw.Logs())
	}
	c.expect("esp32gw/demo/status", within, func(m msg) bool { return m.Payload == "offline" })
	c.expect("esp32gw/bridge/state", within, func(m msg) bool { return m.Payload == "offline" })
}

// Two gateway processes on one broker: a browser on gateway B sees the
// board attached to gateway A (marked with A) and toggles it over /ws; the
// ack and the new state reach B's browser.
func TestBinaryBrowserOnBTogglesBoardOnA(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	br := startBroker(t, mosquittotest.Options{})
	a := testgw.Start(t, gatewayConfig("pi-a", br.URL(), "demo"))
	b := testgw.Start(t, gatewayConfig("pi-b", br.URL(), "bench"))
	_ = a

	ws := b.Dial("/ws")
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	type device struct {
		ID      string         `json:"id"`
		Gateway string         `json:"gateway"`
		Online  bool           `json:"online"`
		Labels  map[string]any `json:"labels"`
	}
	type frame struct {
		Type    string          `json:"type"`
		ID      string          `json:"id"`
		Device  string          `json:"device"`
		Label   string          `json:"label"`
		Value   json.RawMessage `json:"value"`
		Online  bool            `json:"online"`
		Error   string          `json:"error"`
		Devices []device        `json:"devices"`
	}
	read := func() frame {
		t.Helper()
		var f frame
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("read /ws on B: %v\nA:\n%s\nB:\n%s", err, a.Logs(), b.Logs())
		}
		return f
	}
	// Wait until B knows demo is online (from a snapshot or a status).
	online := false
	for !online {
		f := read()
		switch f.Type {
		case "snapshot":
			for _, d := range f.Devices {
				if d.ID == "demo" {
					if d.Gateway != "pi-a" {
						t.Errorf("demo's gateway on B = %q, want pi-a", d.Gateway)
					}
					online = d.Online
				}
			}
		case "status":
			if f.Device == "demo" {
				online = f.Online
			}
		}
	}
	if err := ws.WriteJSON(map[string]any{"type": "command", "id": "c1", "device": "demo", "label": "led", "value": "toggle"}); err != nil {
		t.Fatal(err)
	}
	acked, on := false, false
	for !acked || !on {
		f := read()
		switch {
		case f.Type == "ack" && f.ID == "c1":
			acked = true
		case f.Type == "error" && f.ID == "c1":
			t.Fatalf("command via B: %s", f.Error)
		case f.Type == "event" && f.Device == "demo" && f.Label == "ledStatus" && string(f.Value) == `"LED ON"`:
			on = true
		}
	}
}
