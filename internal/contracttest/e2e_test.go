package contracttest

// The end-to-end tests that lived beside main: one gateway with simulated
// boards, driven the way a browser and an HTTP client drive it.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/testgw"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

const e2eConfig = `
gateway_id: e2e
http:
  listen: "127.0.0.1:0"
  allowed_origins: ["http://allowed.example"]
devices:
  - id: demo
    name: "Demo board"
    transport: sim
    sim: {board: tutorial, interval: 50ms}
    commands: [toggle]
  - id: relays
    transport: sim
    sim: {board: relay, interval: 1s}
    commands: ["on", "off", toggle]
    command_format: json
`

// e2eFrame is any server → browser message, as these tests read it.
type e2eFrame struct {
	Type    string          `json:"type"`
	Seq     uint64          `json:"seq"`
	Device  string          `json:"device"`
	Label   string          `json:"label"`
	Value   json.RawMessage `json:"value"`
	ID      string          `json:"id"`
	Error   string          `json:"error"`
	Online  bool            `json:"online"`
	Line    string          `json:"line"`
	Gateway string          `json:"gateway"`
	Devices []struct {
		ID       string                     `json:"id"`
		Online   bool                       `json:"online"`
		Gateway  string                     `json:"gateway"`
		Commands []string                   `json:"commands"`
		Labels   map[string]json.RawMessage `json:"labels"`
	} `json:"devices"`
}

// readFrame decodes the next text frame (within 10 s).
func readFrame(t *testing.T, r *testutil.WSReader) e2eFrame {
	t.Helper()
	b := r.Next(t, 10*time.Second)
	var f e2eFrame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("frame is not a JSON object: %v: %q", err, b)
	}
	return f
}

// readUntil reads frames until match returns true, at most for 10 s.
func readUntil(t *testing.T, r *testutil.WSReader, what string, match func(e2eFrame) bool) e2eFrame {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no %s within 10 s", what)
		}
		var f e2eFrame
		if b := r.Next(t, left); json.Unmarshal(b, &f) == nil && match(f) {
			return f
		}
	}
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	gw := testgw.Start(t, e2eConfig)
	if gw.Token == "" {
		t.Fatalf("no login URL with a token in the log:\n%s", gw.Logs())
	}

	// Browser A: snapshot first, then events with seq rising by one.
	a, ra := browser(t, gw, "/ws")
	snap := readFrame(t, ra)
	if snap.Type != "snapshot" || len(snap.Devices) != 2 || snap.Devices[0].ID != "demo" {
		t.Fatalf("first frame is not the snapshot with both devices: %+v", snap)
	}
	if len(snap.Devices[0].Commands) == 0 || snap.Devices[0].Commands[0] != "toggle" {
		t.Fatalf("demo board without its commands in the snapshot: %+v", snap.Devices[0])
	}
	// The ready line can precede the simulated board's link by a moment on
	// a loaded machine: then the snapshot says offline, truthfully, and the
	// online status follows before any of its readings.
	last := snap.Seq
	if !snap.Devices[0].Online {
		f := readUntil(t, ra, "demo's online status", func(f e2eFrame) bool {
			return f.Type == "status" && f.Device == "demo" || f.Type == "event" && f.Device == "demo"
		})
		if f.Type != "status" || !f.Online {
			t.Fatalf("demo offline in the snapshot, then %+v before its online status", f)
		}
	}
	for i := 0; i < 5; i++ {
		f := readUntil(t, ra, "event", func(f e2eFrame) bool { return f.Type == "event" })
		if f.Seq != last+1 {
			t.Fatalf("event seq %d after %d: want a rise by one", f.Seq, last)
		}
		last = f.Seq
	}

	// Browser B watches; A toggles the LED; B sees the new state.
	_, rb := browser(t, gw, "/ws")
	snapB := readFrame(t, rb)
	var ledBefore string
	json.Unmarshal(snapB.Devices[0].Labels["ledStatus"], &struct {
		Value *string `json:"value"`
	}{&ledBefore})
	if err := a.WriteJSON(map[string]any{"type": "command", "id": "c1", "device": "demo", "label": "led", "value": "toggle"}); err != nil {
		t.Fatal(err)
	}
	ack := readUntil(t, ra, "ack", func(f e2eFrame) bool { return f.ID == "c1" })
	if ack.Type != "ack" {
		t.Fatalf("command answered with %+v, want ack", ack)
	}
	changed := readUntil(t, rb, "ledStatus event", func(f e2eFrame) bool { return f.Type == "event" && f.Label == "ledStatus" })
	if want := map[string]string{"LED OFF": `"LED ON"`, "LED ON": `"LED OFF"`}[ledBefore]; string(changed.Value) != want {
		t.Fatalf("after toggle from %q, browser B saw ledStatus %s, want %s", ledBefore, changed.Value, want)
	}

	// Errors come back as error frames with the id.
	for _, tc := range []struct {
		msg  map[string]any
		want string
	}{
		{map[string]any{"type": "command", "id": "x1", "device": "nope", "value": "toggle"}, "unknown device"},
		{map[string]any{"type": "command", "id": "x2", "device": "demo", "value": "explode"}, "not in the device's allow-list"},
		{map[string]any{"type": "dance", "id": "x3"}, "unknown type"},
	} {
		a.WriteJSON(tc.msg)
		id := tc.msg["id"].(string)
		f := readUntil(t, ra, "reply to "+id, func(f e2eFrame) bool { return f.ID == id })
		if f.Type != "error" || !strings.Contains(f.Error, tc.want) {
			t.Errorf("reply to %v = %+v, want error containing %q", tc.msg, f, tc.want)
		}
	}
	a.WriteMessage(websocket.TextMessage, []byte(`{"type":"command",`))
	if f := readUntil(t, ra, "reply to malformed JSON", func(f e2eFrame) bool { return f.Type == "error" }); !strings.Contains(f.Error, "bad message") {
		t.Errorf("malformed JSON answered with %+v", f)
	}

	// The HTTP API answers with the contract's statuses.
	for _, tc := range []struct {
		path, body string
		want       int
	}{
		{"/api/devices/demo/command", `{"label":"led","value":"toggle"}`, http.StatusOK},
		{"/api/devices/demo/command", `{"value":"explode"}`, http.StatusForbidden},
		{"/api/devices/nope/command", `{"value":"toggle"}`, http.StatusNotFound},
		{"/api/devices/demo/command", `{"value":`, http.StatusBadRequest},
		{"/api/devices/demo/command", `{"label":"x"}`, http.StatusBadRequest},
	} {
		if got, body := gw.Do(http.MethodPost, tc.path, []byte(tc.body)); got != tc.want {
			t.Errorf("POST %s %s = %d %s, want %d", tc.path, tc.body, got, body, tc.want)
		}
	}
	if code, body := gw.Get("/api/devices"); code != 200 || !strings.Contains(string(body), `"gateway":"e2e"`) {
		t.Errorf("GET /api/devices = %d %s", code, body)
	}
	if code, _ := gw.Get("/api/devices/demo/history?label=count"); code != 200 {
		t.Errorf("history = %d", code)
	}

	// SIGINT: browsers get a close frame (1001) and the process exits 0 within 5 s.
	err, took := gw.Stop()
	if err != nil {
		t.Fatalf("exit after SIGINT: %v\n%s", err, gw.Logs())
	}
	if took > 5*time.Second {
		t.Errorf("exit took %v after SIGINT, contract says within 5 s", took)
	}
	if err, ok := rb.Closed(5 * time.Second); !ok {
		t.Error("browser B not closed at shutdown")
	} else if code, _ := closeCode(err); code != websocket.CloseGoingAway {
		t.Errorf("browser saw close code %d on shutdown (%v), want 1001", code, err)
	}
	if n := strings.Count(gw.Logs(), gw.Token); n != 1 {
		t.Errorf("the token appears %d times in the log, want only in the login line", n)
	}
}

func TestResumeSince(t *testing.T) {
	t.Parallel()
	gw := testgw.Start(t, e2eConfig)
	c, rc := browser(t, gw, "/ws")
	snap := readFrame(t, rc)
	var last uint64 = snap.Seq
	for i := 0; i < 3; i++ {
		last = readUntil(t, rc, "event", func(f e2eFrame) bool { return f.Type == "event" }).Seq
	}
	c.Close()

	// Wait until at least 10 more events happened while we were away.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := gw.Get("/api/devices")
		var d struct{ Seq uint64 }
		json.Unmarshal(body, &d)
		if d.Seq >= last+10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("gateway made no progress")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, r := browser(t, gw, fmt.Sprintf("/ws?since=%d", last))
	for i := uint64(1); i <= 10; i++ {
		f := readFrame(t, r)
		if f.Type != "event" || f.Seq != last+i {
			t.Fatalf("resumed frame %d = %s seq %d, want event seq %d (no snapshot)", i, f.Type, f.Seq, last+i)
		}
	}

	// Too old (or from the future): a fresh snapshot says where we stand.
	_, rf := browser(t, gw, "/ws?since=999999999")
	f := readFrame(t, rf)
	if f.Type != "snapshot" {
		t.Fatalf("resume from the future got %q first, want snapshot", f.Type)
	}
}

func TestAccessControl(t *testing.T) {
	t.Parallel()
	gw := testgw.Start(t, e2eConfig)
	dial := func(path string, h http.Header) int {
		c, resp, err := websocket.DefaultDialer.Dial(gw.WSURL(path), h)
		if err == nil {
			c.Close()
			return resp.StatusCode
		}
		if resp == nil {
			t.Fatalf("dial %s: %v", path, err)
		}
		return resp.StatusCode
	}
	withOrigin := func(origin string, bearer bool) http.Header {
		h := http.Header{}
		if bearer {
			h = gw.Header()
		}
		if origin != "" {
			h.Set("Origin", origin)
		}
		return h
	}
	cases := []struct {
		name string
		path string
		h    http.Header
		want int
	}{
		{"no token", "/ws", http.Header{}, 401},
		{"wrong token", "/ws?token=wrong", http.Header{}, 401},
		{"token in query", "/ws?token=" + gw.Token, http.Header{}, 101},
		{"bearer", "/ws", withOrigin("", true), 101},
		{"cross-site origin", "/ws", withOrigin("http://evil.example", true), 403},
		{"allowed origin", "/ws", withOrigin("http://allowed.example", true), 101},
		{"same origin", "/ws", withOrigin("http://"+gw.Addr, true), 101},
		{"compat needs token", "/ws/devices/demo", http.Header{}, 401},
		{"compat cross-site", "/ws/devices/demo", withOrigin("http://evil.example", true), 403},
		{"compat unknown device", "/ws/devices/nope", withOrigin("", true), 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := dial(tc.path, tc.h); got != tc.want {
				t.Errorf("upgrade %s = %d, want %d", tc.path, got, tc.want)
			}
		})
	}
	for path, want := range map[string]int{"/healthz": 200, "/api/devices": 401, "/metrics": 401} {
		resp, err := http.Get(gw.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without token = %d, want %d", path, resp.StatusCode, want)
		}
	}
	if code, body := gw.Get("/metrics"); code != 200 || !strings.Contains(string(body), `esp32gw_device_online{device="demo"`) {
		t.Errorf("GET /metrics with token = %d:\n%s", code, body)
	}

	// The login URL sets an HttpOnly SameSite=Strict cookie and redirects to /.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(gw.LoginURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login URL answered %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login cookie = %+v, want one HttpOnly SameSite=Strict cookie", cookies)
	}
	req, _ := http.NewRequest("GET", gw.URL+"/api/devices", nil)
	req.AddCookie(cookies[0])
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("API with the login cookie = %d, want 200", resp.StatusCode)
	}
}

// TestRestartKeepsHistory: a clean restart keeps each label's history for
// the charts and never reuses sequence numbers.
func TestRestartKeepsHistory(t *testing.T) {
	t.Parallel()
	gw := testgw.Start(t, e2eConfig)
	type history struct {
		Points []struct {
			Seq uint64 `json:"seq"`
		} `json:"points"`
	}
	var before history
	deadline := time.Now().Add(10 * time.Second)
	for len(before.Points) < 5 {
		if time.Now().After(deadline) {
			t.Fatal("no history building up")
		}
		_, body := gw.Get("/api/devices/demo/history?label=count")
		json.Unmarshal(body, &before)
		time.Sleep(20 * time.Millisecond)
	}
	if err, _ := gw.Stop(); err != nil {
		t.Fatal(err)
	}
	gw.Restart()
	var after history
	_, body := gw.Get("/api/devices/demo/history?label=count")
	json.Unmarshal(body, &after)
	if len(after.Points) < len(before.Points) {
		t.Fatalf("after restart the count history has %d points, before it had %d", len(after.Points), len(before.Points))
	}
	_, rc := browser(t, gw, "/ws")
	snap := readFrame(t, rc)
	lastBefore := before.Points[len(before.Points)-1].Seq
	if snap.Seq < lastBefore {
		t.Fatalf("seq went back from %d to %d across a restart", lastBefore, snap.Seq)
	}
}

// TestConsoleShowsRecentLines: a console opened after the board booted still
// shows the boot line, and only after asking for logs.
func TestConsoleShowsRecentLines(t *testing.T) {
	t.Parallel()
	gw := testgw.Start(t, e2eConfig)
	c, r := browser(t, gw, "/ws")
	readFrame(t, r) // snapshot
	for i := 0; i < 3; i++ {
		if f := readFrame(t, r); f.Type == "log" {
			t.Fatalf("log frame before subscribing to logs: %+v", f)
		}
	}
	c.WriteJSON(map[string]any{"type": "subscribe", "devices": []string{"demo"}, "logs": true})
	line := readUntil(t, r, "a recent console line after subscribing with logs:true", func(f e2eFrame) bool { return f.Type == "log" })
	if line.Device != "demo" || !strings.Contains(line.Line, "booted") {
		t.Fatalf("first log line %+v, want demo's boot line", line)
	}
}
