package contracttest

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
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// eventIs matches an event frame; value, when not empty, is the value's JSON.
func eventIs(device, label, value string) func(msg) bool {
	return func(m msg) bool {
		if !isEvent(m) || str(m, "device") != device || str(m, "label") != label {
			return false
		}
		v, _ := json.Marshal(m["value"])
		return value == "" || string(v) == value
	}
}

// labelJSON is the JSON of a label's value in a snapshot, "" if absent.
func labelJSON(snap msg, device, label string) string {
	devs, _ := snap["devices"].([]any)
	labels, _ := findDevice(devs, device)["labels"].(map[string]any)
	l, ok := labels[label].(map[string]any)
	if !ok {
		return ""
	}
	v, _ := json.Marshal(l["value"])
	return string(v)
}

// statusIs matches a status frame of device with the given online.
func statusIs(device string, online bool) func(msg) bool {
	return func(m msg) bool {
		on, ok := m["online"].(bool)
		return str(m, "type") == "status" && str(m, "device") == device && ok && on == online
	}
}

// answerTo matches the ack or error for command id.
func answerTo(id string) func(msg) bool { return func(m msg) bool { return str(m, "id") == id } }

// TestBothLinkModes runs the gateway with a tutorial board it dials
// (ws-dial) and a board that dials it (ws-listen), configured exactly as
// docs/readme-connect-esp32.md says, and drives both from browsers.
func TestBothLinkModes(t *testing.T) {
	t.Parallel()
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
	a, ra := browser(t, gw, "/ws")
	_, rb := browser(t, gw, "/ws")

	// ws-dial: values reach the browser, toggle round-trips, B sees it.
	testutil.Eventually(t, 10*time.Second, "the gateway to dial the board", func() bool { return board.Clients() == 1 })
	// The board's first LED state: in the snapshot when its hello came
	// before the browser, else as an event.
	snap := ra.WaitFor(t, 10*time.Second, "snapshot", func(m msg) bool { return str(m, "type") == "snapshot" })
	if labelJSON(snap, "kitchen", "ledStatus") != `"LED OFF"` {
		ra.WaitFor(t, 10*time.Second, "kitchen ledStatus", eventIs("kitchen", "ledStatus", `"LED OFF"`))
	}
	n := board.Tick()
	ra.WaitFor(t, 10*time.Second, "kitchen count", eventIs("kitchen", "count", fmt.Sprint(n)))
	if err := a.WriteJSON(map[string]any{"type": "command", "id": "c1", "device": "kitchen", "label": "led", "value": "toggle"}); err != nil {
		t.Fatal(err)
	}
	if f := ra.WaitFor(t, 10*time.Second, "answer to c1", answerTo("c1")); str(f, "type") != "ack" {
		t.Fatalf("toggle answered %v", f)
	}
	rb.WaitFor(t, 10*time.Second, "LED ON in browser B", eventIs("kitchen", "ledStatus", `"LED ON"`))

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
	gr := testutil.NewWSReader(garage)
	ra.WaitFor(t, 10*time.Second, "garage online", statusIs("garage", true))
	if err := garage.WriteMessage(websocket.TextMessage, []byte(`{"door":"open"}`)); err != nil {
		t.Fatal(err)
	}
	ra.WaitFor(t, 10*time.Second, "garage door", eventIs("garage", "door", `"open"`))
	if err := a.WriteJSON(map[string]any{"type": "command", "id": "c2", "device": "garage", "label": "led", "value": "toggle"}); err != nil {
		t.Fatal(err)
	}
	if f := ra.WaitFor(t, 10*time.Second, "answer to c2", answerTo("c2")); str(f, "type") != "ack" {
		t.Fatalf("garage toggle answered %v", f)
	}
	if got := string(gr.Next(t, 5*time.Second)); got != `{"label":"led","value":"toggle"}` {
		t.Errorf("garage board got %q", got)
	}

	// The kitchen board restarts: offline with a reason, back, events flow.
	board.Kill()
	off := ra.WaitFor(t, 10*time.Second, "kitchen offline", statusIs("kitchen", false))
	if str(off, "reason") == "" {
		t.Error("offline status without a reason")
	}
	if err := a.WriteJSON(map[string]any{"type": "command", "id": "c3", "device": "kitchen", "value": "toggle"}); err != nil {
		t.Fatal(err)
	}
	if f := ra.WaitFor(t, 10*time.Second, "answer to c3", answerTo("c3")); str(f, "type") != "error" || !strings.Contains(str(f, "error"), "offline") {
		t.Errorf("command to the dead board answered %v, want an offline error", f)
	}
	board.Restart()
	ra.WaitFor(t, 10*time.Second, "kitchen online again", statusIs("kitchen", true))
	n = board.Tick()
	ra.WaitFor(t, 10*time.Second, "kitchen count after restart", eventIs("kitchen", "count", fmt.Sprint(n)))
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
	if err, ok := gr.Closed(5 * time.Second); !ok {
		t.Error("garage board not closed at shutdown")
	} else if !boardtest.IsCloseCode(err, websocket.CloseGoingAway) {
		t.Errorf("garage board saw %v, want close 1001", err)
	}
	testutil.Eventually(t, 5*time.Second, "the kitchen board to lose its client", func() bool { return board.Clients() == 0 })
	if logs := gw.Logs(); strings.Contains(logs, "garage-secret-token") {
		t.Error("a device token appears in the log")
	}
}
