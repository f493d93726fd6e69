// Package contracttest checks the built esp32gw binary against the public
// contract (DESIGN.md), black-box: it only starts the binary, talks to it
// over HTTP, WebSocket, a pty and MQTT, and asserts what the contract says.
package contracttest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/gwproc"
	"github.com/esp32gw/esp32gw/internal/testgw"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// TestMain raises the default -test.parallel: these tests mostly wait on
// timers of the contract (15 s keepalive, 5 s pings), not on the CPU, and
// the package must finish in a few minutes on a two-core machine.
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			explicit = true
		}
	})
	if !explicit {
		n := runtime.GOMAXPROCS(0)
		if n < 12 {
			n = 12
		}
		flag.Set("test.parallel", fmt.Sprint(n))
	}
	os.Exit(m.Run())
}

// header is the start of every config: loopback, a temp state dir.
func header(gatewayID string, httpExtra string) string {
	return fmt.Sprintf(`gateway_id: %s
state_dir: data
http:
  listen: "127.0.0.1:0"
%sdevices:
`, gatewayID, httpExtra)
}

// msg is one decoded JSON frame.
type msg = testutil.Msg

func str(m msg, k string) string { s, _ := m[k].(string); return s }

func num(m msg, k string) (float64, bool) { f, ok := m[k].(float64); return f, ok }

func seqOf(m msg) int64 {
	f, _ := m["seq"].(float64)
	return int64(f)
}

func keys(m msg) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// dial opens a websocket with an explicit header and returns the response
// (status for failed upgrades).
func dial(url string, h http.Header) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return websocket.DefaultDialer.DialContext(ctx, url, h)
}

func status(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

// browser dials /ws (path may carry a query) with the gateway's token and
// starts reading it.
func browser(t testing.TB, g *testgw.Gateway, path string) (*websocket.Conn, *testutil.WSReader) {
	t.Helper()
	c := g.Dial(path)
	return c, testutil.NewWSReader(c)
}

func sendJSON(t testing.TB, c *websocket.Conn, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatalf("write %s: %v", b, err)
	}
}

// board is a ws-listen board the test plays: it dials ws://GW/device/ID.
type board struct {
	c     *websocket.Conn
	r     *testutil.WSReader
	mu    sync.Mutex
	pings []time.Time
	wmu   sync.Mutex
}

// dialBoard connects a board with a Bearer token; read=false leaves the
// socket unread (so pings are never answered).
func dialBoard(t testing.TB, g *testgw.Gateway, id, token string, read bool) *board {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	h.Set("Origin", "file://")
	// 503: the HTTP server is up but the ws-listen transport has not
	// started yet; a board dials again, and so does this one, briefly.
	c, resp, err := dial(g.WSURL("/device/"+id), h)
	for deadline := time.Now().Add(5 * time.Second); err != nil && status(resp) == http.StatusServiceUnavailable && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		c, resp, err = dial(g.WSURL("/device/"+id), h)
	}
	if err != nil {
		t.Fatalf("board %s dial: %v (HTTP %d)", id, err, status(resp))
	}
	t.Cleanup(func() { c.Close() })
	b := &board{c: c}
	c.SetPingHandler(func(data string) error {
		b.mu.Lock()
		b.pings = append(b.pings, time.Now())
		b.mu.Unlock()
		err := c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	if read {
		b.r = testutil.NewWSReader(c)
	}
	return b
}

func (b *board) send(t testing.TB, s string) {
	t.Helper()
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := b.c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		t.Fatalf("board write: %v", err)
	}
}

func (b *board) pingTimes() []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Time(nil), b.pings...)
}

// dialServer is a board's own WebSocket server for ws-dial devices.
type dialServer struct {
	srv   *httptest.Server
	conns chan *websocket.Conn
	times chan time.Time
}

func newDialServer(t testing.TB) *dialServer {
	t.Helper()
	d := &dialServer{conns: make(chan *websocket.Conn, 100), times: make(chan time.Time, 100)}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.times <- time.Now()
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		d.conns <- c
	}))
	t.Cleanup(func() {
		d.srv.CloseClientConnections()
		d.srv.Close()
	})
	return d
}

func (d *dialServer) url() string { return "ws://" + d.srv.Listener.Addr().String() + "/ws" }

func (d *dialServer) accept(t testing.TB, within time.Duration) *websocket.Conn {
	t.Helper()
	select {
	case c := <-d.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(within):
		t.Fatalf("the gateway did not dial the board server within %v", within)
	}
	return nil
}

// device fetches /api/devices/{id} as an object.
func device(t testing.TB, g *testgw.Gateway, id string) msg {
	t.Helper()
	code, body := g.Get("/api/devices/" + id)
	if code != 200 {
		t.Fatalf("GET /api/devices/%s: %d %s", id, code, body)
	}
	var m msg
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET /api/devices/%s: not JSON: %v %s", id, err, body)
	}
	return m
}

// waitOnline polls the device object until online equals want.
func waitOnline(t testing.TB, g *testgw.Gateway, id string, want bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		m := device(t, g, id)
		if on, _ := m["online"].(bool); on == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("device %s online=%v not reached within %v: %v", id, want, within, m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// apiSeq is /api/devices' seq.
func apiSeq(t testing.TB, g *testgw.Gateway) int64 {
	t.Helper()
	code, body := g.Get("/api/devices")
	if code != 200 {
		t.Fatalf("GET /api/devices: %d %s", code, body)
	}
	var m msg
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return seqOf(m)
}

// freeAddr reserves nothing: it returns a loopback address that was free.
func freeAddr(t testing.TB) string {
	addr, err := gwproc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// closeCode is the close code of a websocket read error, or -1.
func closeCode(err error) (int, string) {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Text
	}
	return -1, ""
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// repeat calls fn(0), fn(1), … until stop is closed or fn returns false.
// With every > 0 each call waits for the next tick of a ticker of that
// period (the first a period after the start); with every 0 the calls
// follow one another at once, stop checked before each.
func repeat(stop <-chan struct{}, every time.Duration, fn func(i int) bool) {
	var tick <-chan time.Time
	if every > 0 {
		tk := time.NewTicker(every)
		defer tk.Stop()
		tick = tk.C
	}
	for i := 0; ; i++ {
		if tick != nil {
			select {
			case <-stop:
				return
			case <-tick:
			}
		} else {
			select {
			case <-stop:
				return
			default:
			}
		}
		if !fn(i) {
			return
		}
	}
}

// eachJSON decodes each frame r receives into a new T and hands it to fn,
// until stop is closed or the connection ends; a frame that is not JSON
// goes to bad instead, as "not JSON: …".
func eachJSON[T any](r *testutil.WSReader, stop <-chan struct{}, bad func(string), fn func(m T)) {
	for {
		select {
		case <-stop:
			return
		case f, ok := <-r.Frames():
			if !ok {
				return
			}
			var m T
			if err := json.Unmarshal(f, &m); err != nil {
				bad(fmt.Sprintf("not JSON: %.200q", f))
				continue
			}
			fn(m)
		}
	}
}
