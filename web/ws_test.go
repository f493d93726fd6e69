package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/testutil"
	"github.com/esp32gw/esp32gw/web"
)

const token = "test-token-0123456789"

// rig is an in-process gateway: a hub with one attached board whose link
// records commands, behind the real web server on a loopback port.
type rig struct {
	hub  *gateway.Hub
	srv  *web.Server
	http *httptest.Server
	link gateway.Link
	cmds chan gateway.Command
	send func(ctx context.Context, c gateway.Command) error
}

func newRig(t testing.TB) *rig {
	t.Helper()
	r := &rig{cmds: make(chan gateway.Command, 100)}
	r.hub = gateway.NewHub(gateway.Options{GatewayID: "test", ValueBytes: 1 << 20}) // frame-size tests send values past limits.value_bytes
	if err := r.hub.AddDevice(gateway.DeviceInfo{ID: "board", Transport: "sim", Commands: []string{"toggle", "hang"}}); err != nil {
		t.Fatal(err)
	}
	r.send = func(ctx context.Context, c gateway.Command) error {
		if gateway.CommandKey(c.Value) == "hang" { // a board link that never takes it
			<-ctx.Done()
			return ctx.Err()
		}
		r.cmds <- c
		return nil
	}
	link, err := r.hub.Attach("board", r.send)
	if err != nil {
		t.Fatal(err)
	}
	r.link = link
	r.srv = web.New(web.Options{Hub: r.hub, AuthMode: "token", Token: token})
	r.http = httptest.NewServer(r.srv)
	t.Cleanup(func() {
		r.hub.Close()
		r.srv.Wait()
		r.http.Close()
	})
	return r
}

func (r *rig) dial(t testing.TB, path string, dialer *websocket.Dialer) *websocket.Conn {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + token}}
	c, _, err := dialer.Dial("ws"+strings.TrimPrefix(r.http.URL, "http")+path, h)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type msg struct {
	Type  string `json:"type"`
	Seq   uint64 `json:"seq"`
	ID    string `json:"id"`
	Error string `json:"error"`
}

func readMsg(t *testing.T, c *websocket.Conn) msg {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m msg
	if err := c.ReadJSON(&m); err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

func closeCode(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			t.Fatalf("connection ended without a close frame: %v", err)
		}
	}
}

func TestBadBrowserInput(t *testing.T) {
	r := newRig(t)
	t.Run("oversized message closes 1009", func(t *testing.T) {
		c := r.dial(t, "/ws", websocket.DefaultDialer)
		readMsg(t, c) // snapshot
		c.WriteMessage(websocket.TextMessage, []byte(`{"type":"command","value":"`+strings.Repeat("x", 17<<10)+`"}`))
		if code := closeCode(t, c); code != websocket.CloseMessageTooBig {
			t.Fatalf("close code %d, want 1009", code)
		}
	})
	t.Run("invalid UTF-8 closes 1007", func(t *testing.T) {
		c := r.dial(t, "/ws", websocket.DefaultDialer)
		readMsg(t, c)
		c.WriteMessage(websocket.TextMessage, []byte("{\"type\":\"command\",\"device\":\"\xff\xfe\"}"))
		if code := closeCode(t, c); code != websocket.CloseInvalidFramePayloadData {
			t.Fatalf("close code %d, want 1007", code)
		}
	})
	t.Run("binary and wrong types get errors, the link stays", func(t *testing.T) {
		c := r.dial(t, "/ws", websocket.DefaultDialer)
		readMsg(t, c)
		c.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2})
		if m := readMsg(t, c); m.Type != "error" {
			t.Fatalf("binary message answered with %+v", m)
		}
		for _, bad := range []string{`[]`, `"x"`, `{"type":"command","device":42,"id":"w"}`, `{"type":"subscribe","devices":"all"}`, `{"type":"command","id":"v","device":"board"}`} {
			c.WriteMessage(websocket.TextMessage, []byte(bad))
			if m := readMsg(t, c); m.Type != "error" || m.Error == "" {
				t.Fatalf("%s answered with %+v, want an error", bad, m)
			}
		}
		c.WriteJSON(map[string]any{"type": "command", "id": "ok", "device": "board", "value": "toggle"})
		if m := readMsg(t, c); m.Type != "ack" || m.ID != "ok" {
			t.Fatalf("a good command after bad ones got %+v", m)
		}
		<-r.cmds
	})
	t.Run("a board that never takes the command: error within 2 s", func(t *testing.T) {
		c := r.dial(t, "/ws", websocket.DefaultDialer)
		readMsg(t, c)
		start := time.Now()
		c.WriteJSON(map[string]any{"type": "command", "id": "h", "device": "board", "value": "hang"})
		m := readMsg(t, c)
		if m.Type != "error" || !strings.Contains(m.Error, "did not take the command") {
			t.Fatalf("got %+v", m)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("answer took %v; the contract promises 2 s", took)
		}
	})
	t.Run("HTTP bodies", func(t *testing.T) {
		for _, tc := range []struct {
			body string
			want int
		}{
			{`{"value":"` + strings.Repeat("x", 20<<10) + `"}`, http.StatusRequestEntityTooLarge},
			{`not json`, http.StatusBadRequest},
			{`{"value":"toggle"} {"value":"toggle"}`, http.StatusBadRequest},
			{`{"value":"toggle"}`, http.StatusOK},
		} {
			req, _ := http.NewRequest("POST", r.http.URL+"/api/devices/board/command", strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("POST %.40q = %d %v, want %d", tc.body, resp.StatusCode, body, tc.want)
			}
			if tc.want != 200 && body["error"] == nil {
				t.Errorf("POST %.40q: no error message in %v", tc.body, body)
			}
		}
		<-r.cmds
		// A cross-site form post with the cookie is refused.
		req, _ := http.NewRequest("POST", r.http.URL+"/api/devices/board/command", strings.NewReader(`{"value":"toggle"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Origin", "http://evil.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-origin POST = %d, want 403", resp.StatusCode)
		}
	})
	t.Run("offline device: 409 and error now", func(t *testing.T) {
		r.link.Detach("test unplugged it")
		defer func() {
			l, _ := r.hub.Attach("board", r.send)
			r.link = l
		}()
		req, _ := http.NewRequest("POST", r.http.URL+"/api/devices/board/command", strings.NewReader(`{"value":"toggle"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusConflict {
			t.Errorf("command to offline device = %d, want 409", resp.StatusCode)
		}
		c := r.dial(t, "/ws", websocket.DefaultDialer)
		readMsg(t, c)
		c.WriteJSON(map[string]any{"type": "command", "id": "off", "device": "board", "value": "toggle"})
		if m := readMsg(t, c); m.Type != "error" || m.Error != "device board is offline" {
			t.Fatalf("got %+v, want error \"device board is offline\"", m)
		}
	})
}

// TestSlowBrowser: a browser that never reads must not delay another
// browser or the board, and is disconnected instead of buffering forever.
func TestSlowBrowser(t *testing.T) {
	testutil.CheckGoroutines(t)
	r := newRig(t)

	// The slow browser has a tiny receive buffer and never reads.
	slowDialer := &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		return d.DialContext(ctx, network, addr)
	}}
	slow := r.dial(t, "/ws", slowDialer)
	fast := r.dial(t, "/ws", websocket.DefaultDialer)
	snap := readMsg(t, fast)

	// The fast browser reads everything; the board publishes in bursts of 100
	// as soon as the fast browser has caught up. Publish never waits on the slow one.
	const total = 3000
	got := make(chan uint64, total)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			fast.SetReadDeadline(time.Now().Add(10 * time.Second))
			var m msg
			if err := fast.ReadJSON(&m); err != nil {
				close(got)
				return
			}
			if m.Type == "event" {
				got <- m.Seq
			}
		}
	}()
	value := json.RawMessage(`"` + strings.Repeat("v", 4000) + `"`) // within limits.value_bytes
	want := snap.Seq + 1
	for i := 0; i < total; i += 100 {
		for j := 0; j < 100; j++ {
			r.link.Publish(gateway.Reading{Label: "x", Value: value})
		}
		for k := 0; k < 100; k++ {
			seq, ok := <-got
			if !ok {
				t.Fatalf("fast browser disconnected after %d events", want-snap.Seq-1)
			}
			if seq != want {
				t.Fatalf("fast browser got seq %d, want %d: it missed events", seq, want)
			}
			want++
		}
	}
	// The slow browser was dropped, not buffered.
	deadline := time.Now().Add(15 * time.Second)
	for r.hub.Subscribers() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("slow browser still subscribed after %d events", total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := r.hub.Counters().SlowConsumers.Load(); n < 1 {
		t.Errorf("slow consumers counted: %d, want at least 1", n)
	}
	// When the slow browser reads again it finds whole frames, then the
	// reason it was closed (1013: resume with ?since=).
	if code := closeCode(t, slow); code != websocket.CloseTryAgainLater {
		t.Errorf("slow browser closed with %d, want 1013", code)
	}
	fast.Close()
	wg.Wait()
}
