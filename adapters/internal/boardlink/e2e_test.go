package boardlink_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/boardtest"
	"github.com/esp32gw/esp32gw/internal/testgw"
)

// browserFrame is any server → browser message on /ws.
type browserFrame struct {
	Type   string          `json:"type"`
	Device string          `json:"device"`
	Label  string          `json:"label"`
	Value  json.RawMessage `json:"value"`
	ID     string          `json:"id"`
	Error  string          `json:"error"`
	Online bool            `json:"online"`
	Reason string          `json:"reason"`
}

func browserUntil(t *testing.T, c *websocket.Conn, what string, match func(browserFrame) bool) browserFrame {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	_ = c.SetReadDeadline(deadline)
	for {
		var f browserFrame
		if err := c.ReadJSON(&f); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

func isEvent(device, label, value string) func(browserFrame) bool {
	return func(f browserFrame) bool {
		return f.Type == "event" && f.Device == device && f.Label == label && (value == "" || string(f.Value) == value)
	}
}

func isStatus(device string, online bool) func(browserFrame) bool {
	return func(f browserFrame) bool { return f.Type == "status" && f.Device == device && f.Online == online }
}

// TestBinaryBothModes runs the real esp32gw binary with a tutorial board it
// dials (ws-dial) and a board that dials it (ws-listen), configured exactly
// as docs/readme-connect-esp32.md says, and drives both from browsers.
func TestBinaryBothModes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	board := boardtest.NewBoard(t)
	gw := testgw.Start(t, fmt.Sprintf(`
http:
  listen: "127.0.0.1:0"
devices:
  - id: kitchen
    transport: ws-dial
    url: "%s"
    commands: [toggle]
    command_format: text
  - id: garage
    transport: ws-listen
    token: "garage-secret-token"
    commands: [toggle]
    command_format: json
`, board.URL()))
	a := gw.Dial("/ws")
	b := gw.Dial("/ws")

	// ws-dial: values reach the browser, toggle round-trips, B sees it.
	boardtest.WaitFor(t, 10*time.Second, "the gateway to dial the board", func() bool { return board.Clients() == 1 })
	browserUntil(t, a, "kitchen ledStatus", isEvent("kitchen", "ledStatus", `"LED OFF"`))
	n := board.Tick()
	browserUntil(t, a, "kitchen count", isEvent("kitchen", "count", fmt.Sprint(n)))
	if err := a.WriteJSON(map[string]any{"type": "command", "id": "c1", "device": "kitchen", "label": "led", "value": "toggle"}); err != nil {
		t.Fatal(err)
	}
	if f := browserUntil(t, a, "answer to c1", func(f browserFrame) bool { return f.ID == "c1" }); f.Type != "ack" {
		t.Fatalf("toggle answered %+v", f)
	}
	browserUntil(t, b, "LED ON in browser B", isEvent("kitchen", "ledStatus", `"LED ON"`))

	// ws-listen: an arduinoWebSockets-like client (Origin: file://).
	h := http.Header{"Origin": {"file://"}, "Authorization": {"Bearer garage-secret-token"}}
	if _, resp, err := websocket.DefaultDialer.Dial(gw.WSURL("/device/garage"), http.Header{"Authorization": {"Bearer wrong"}}); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad token: %v %v, want 401", err, resp)
	}
	garage, _, err := websocket.DefaultDialer.Dial(gw.WSURL("/device/garage"), h)
	if err != nil {
		t.Fatalf("garage board dial: %v", err)
	}
	defer garage.Close()
	garageFrames := make(chan string, 16)
	garageEnd := make(chan error, 1)
	go func() {
		for {
			_, p, err := garage.ReadMessage()
			if err != nil {
				garageEnd <- err
				return
			}
			garageFrames <- string(p)
		}
	}()
	browserUntil(t, a, "garage online", isStatus("garage", true))
	if err := garage.WriteMessage(websocket.TextMessage, []byte(`{"door":"open"}`)); err != nil {
		t.Fatal(err)
	}
	browserUntil(t, a, "garage door", isEvent("garage", "door", `"open"`))
	if err := a.WriteJSON(map[string]any{"type": "command", "id": "c2", "device": "garage", "label": "led", "value": "toggle"}); err != nil {
		t.Fatal(err)
	}
	if f := browserUntil(t, a, "answer to c2", func(f browserFrame) bool { return f.ID == "c2" }); f.Type != "ack" {
		t.Fatalf("garage toggle answered %+v", f)
	}
	select {
	case got := <-garageFrames:
		if got != `{"label":"led","value":"toggle"}` {
			t.Errorf("garage board got %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("garage board got no command")
	}

	// The kitchen board restarts: offline with a reason, back, events flow.
	board.Kill()
	off := browserUntil(t, a, "kitchen offline", isStatus("kitchen", false))
	if off.Reason == "" {
		t.Error("offline status without a reason")
	}
	if err := a.WriteJSON(map[string]any{"type": "command", "id": "c3", "device": "kitchen", "value": "toggle"}); err != nil {
		t.Fatal(err)
	}
	if f := browserUntil(t, a, "answer to c3", func(f browserFrame) bool { return f.ID == "c3" }); f.Type != "error" || !strings.Contains(f.Error, "offline") {
		t.Errorf("command to the dead board answered %+v, want an offline error", f)
	}
	board.Restart()
	browserUntil(t, a, "kitchen online again", isStatus("kitchen", true))
	n = board.Tick()
	browserUntil(t, a, "kitchen count after restart", isEvent("kitchen", "count", fmt.Sprint(n)))
	code, body := gw.Get("/api/devices/kitchen")
	var st struct {
		Online     bool `json:"online"`
		Reconnects int  `json:"reconnects"`
	}
	if err := json.Unmarshal(body, &st); code != http.StatusOK || err != nil || !st.Online || st.Reconnects < 1 {
		t.Errorf("GET /api/devices/kitchen = %d %s", code, body)
	}

	// SIGINT: exit 0 within 5 s, boards closed with a close frame.
	err, took := gw.Stop()
	if err != nil || took > 5*time.Second {
		t.Fatalf("stop: %v after %s\n%s", err, took, gw.Logs())
	}
	select {
	case err := <-garageEnd:
		if !boardtest.IsCloseCode(err, websocket.CloseGoingAway) {
			t.Errorf("garage board saw %v, want close 1001", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("garage board not closed at shutdown")
	}
	boardtest.WaitFor(t, 5*time.Second, "the kitchen board to lose its client", func() bool { return board.Clients() == 0 })
	if logs := gw.Logs(); strings.Contains(logs, "garage-secret-token") {
		t.Error("a device token appears in the log")
	}
}
