package boardlink_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/adapters/internal/boardlink"
	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/boardtest"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

const dev = "bench"

// fixture is a real hub, a real loopback WebSocket pair: the gateway side
// runs a boardlink.Link, the test plays the board on the other end.
type fixture struct {
	hub    *gateway.Hub
	sub    *gateway.Subscription
	board  *websocket.Conn
	link   *boardlink.Link
	runErr chan error
	cancel context.CancelCauseFunc
}

func start(t testing.TB, o boardlink.Options) *fixture {
	t.Helper()
	hub := gateway.NewHub(gateway.Options{GatewayID: "test"})
	if err := hub.AddDevice(gateway.DeviceInfo{ID: dev, Transport: "ws-listen", Commands: []string{"toggle", "42"}}); err != nil {
		t.Fatal(err)
	}
	sub, _, err := hub.Subscribe(-1, 1024)
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan *websocket.Conn, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conns <- c
	}))
	t.Cleanup(srv.Close)
	board, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { board.Close() })
	gw := <-conns
	o.Device = dev
	link, err := boardlink.Attach(hub, gw, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	f := &fixture{hub: hub, sub: sub, board: board, link: link, runErr: make(chan error, 1), cancel: cancel}
	go func() { f.runErr <- link.Run(ctx) }()
	t.Cleanup(func() {
		cancel(nil)
		<-f.runErr
	})
	return f
}

func (f *fixture) state(t *testing.T) gateway.DeviceState {
	t.Helper()
	st, err := f.hub.DeviceState(dev)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (f *fixture) send(t testing.TB, mt int, b []byte) {
	t.Helper()
	if err := f.board.WriteMessage(mt, b); err != nil {
		t.Fatalf("board write: %v", err)
	}
}

// readBoard runs the board's reader (which also answers pings) and hands
// every text frame and the final error to the test.
func (f *fixture) readBoard() (frames chan string, end chan error) {
	frames, end = make(chan string, 64), make(chan error, 1)
	go func() {
		for {
			_, b, err := f.board.ReadMessage()
			if err != nil {
				end <- err
				return
			}
			select {
			case frames <- string(b):
			default: // a benchmark that does not look; tests read long before 64
			}
		}
	}()
	return frames, end
}

func TestFramesReachSubscribersAndBadFramesKeepTheLink(t *testing.T) {
	testutil.CheckGoroutines(t)
	f := start(t, boardlink.Options{})
	boardtest.Next(t, f.sub, 2*time.Second, "online status", boardtest.Status(dev, true))

	good := []struct {
		name  string
		frame string
		label string
		value any
	}{
		{"seed form", `{"label":"count","value":1}`, "count", 1},
		{"flat object", `{"temp":21.5,"hum":40}`, "hum", 40},
		{"array", `[{"label":"ledStatus","value":"LED ON"},{"label":"x","value":null}]`, "ledStatus", "LED ON"},
	}
	bad := []struct {
		name string
		mt   int
		b    []byte
	}{
		{"binary", websocket.BinaryMessage, []byte{0, 1, 2, 0xff}},
		{"not JSON", websocket.TextMessage, []byte("hello from the sketch")},
		{"broken JSON", websocket.TextMessage, []byte(`{"label":"count","value":`)},
		{"invalid UTF-8", websocket.TextMessage, []byte("{\"label\":\"t\",\"value\":\"\xff\xfe\"}")},
		{"empty", websocket.TextMessage, nil},
	}
	for _, b := range bad {
		f.send(t, b.mt, b.b)
	}
	for _, g := range good {
		t.Run(g.name, func(t *testing.T) {
			f.send(t, websocket.TextMessage, []byte(g.frame))
			boardtest.Next(t, f.sub, 2*time.Second, g.name, boardtest.Event(dev, g.label, g.value))
		})
	}
	st := f.state(t)
	if !st.Online {
		t.Fatalf("device offline after bad frames: %+v", st)
	}
	if st.Malformed != uint64(len(bad)) {
		t.Errorf("malformed count = %d, want %d", st.Malformed, len(bad))
	}
}

func TestCommandsAreWrittenInTheDeviceFormat(t *testing.T) {
	for _, tc := range []struct {
		format string
		cmd    gateway.Command
		want   string
	}{
		{gateway.FormatText, gateway.Command{Value: json.RawMessage(`"toggle"`)}, "toggle"},
		{gateway.FormatText, gateway.Command{Label: "led", Value: json.RawMessage(`"toggle"`)}, "toggle"},
		{gateway.FormatJSON, gateway.Command{Label: "led", Value: json.RawMessage(`"toggle"`)}, `{"label":"led","value":"toggle"}`},
		{gateway.FormatJSON, gateway.Command{Label: "set", Value: json.RawMessage(`42`)}, `{"label":"set","value":42}`},
	} {
		t.Run(tc.format+" "+tc.want, func(t *testing.T) {
			f := start(t, boardlink.Options{Format: tc.format})
			frames, _ := f.readBoard()
			if err := f.hub.Command(context.Background(), dev, tc.cmd); err != nil {
				t.Fatalf("command: %v", err)
			}
			// The ack came after the write: the frame is on its way already.
			select {
			case got := <-frames:
				if got != tc.want {
					t.Fatalf("board got %q, want %q", got, tc.want)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("board got no command")
			}
		})
	}
}

func TestOversizedFrameClosesWith1009AndAReason(t *testing.T) {
	testutil.CheckGoroutines(t)
	f := start(t, boardlink.Options{})
	boardtest.Next(t, f.sub, 2*time.Second, "online", boardtest.Status(dev, true))
	_, end := f.readBoard()

	// Exactly the limit is fine (padded with JSON white space: the value
	// itself must stay within the hub's limits.value_bytes).
	pad := boardlink.MaxFrame - len(`{"label":"big","value":"x"}`)
	exact := `{"label":"big","value":"x"` + strings.Repeat(" ", pad) + `}`
	f.send(t, websocket.TextMessage, []byte(exact))
	boardtest.Next(t, f.sub, 2*time.Second, "64 KiB frame", boardtest.Event(dev, "big", nil))

	f.send(t, websocket.TextMessage, []byte(exact+" "))
	m := boardtest.Next(t, f.sub, 5*time.Second, "offline status", boardtest.Status(dev, false))
	if !strings.Contains(m.Reason, "size limit") {
		t.Errorf("reason = %q, want it to name the size limit", m.Reason)
	}
	select {
	case err := <-end:
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig || ce.Text == "" {
			t.Fatalf("board saw %v, want close 1009 with a reason", err)
		}
		t.Logf("board saw: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("board was not closed")
	}
	if err := <-f.runErr; !errors.Is(err, boardlink.ErrTooBig) {
		t.Errorf("Run = %v, want ErrTooBig", err)
	}
	f.runErr <- nil // for the cleanup
}

func TestSilentBoardGoesOfflineAndCommandsFailFast(t *testing.T) {
	testutil.CheckGoroutines(t)
	const ping, silence = 50 * time.Millisecond, 300 * time.Millisecond
	// The link's silence clock starts when it is attached, before the test
	// sees the online status: measure from before the start.
	began := time.Now()
	f := start(t, boardlink.Options{PingPeriod: ping, SilenceTimeout: silence})
	boardtest.Next(t, f.sub, 2*time.Second, "online", boardtest.Status(dev, true))
	// The board never reads, so it never answers a ping: the link must die.
	m := boardtest.Next(t, f.sub, 10*silence, "offline status", boardtest.Status(dev, false))
	took := time.Since(began)
	if !strings.Contains(m.Reason, "no frame or pong") {
		t.Errorf("reason = %q", m.Reason)
	}
	if took < silence {
		t.Errorf("offline after %s, before the %s silence timeout", took, silence)
	}
	t.Logf("silent board offline after %s (silence timeout %s)", took, silence)

	began = time.Now()
	err := f.hub.Command(context.Background(), dev, gateway.Command{Value: json.RawMessage(`"toggle"`)})
	if !errors.Is(err, gateway.ErrOffline) {
		t.Fatalf("command to a dead board: %v, want ErrOffline", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("command took %s to fail; want at once", d)
	}
}

func TestPingsAndPongsKeepAQuietBoardOnline(t *testing.T) {
	// A silence timeout well above scheduling hiccups of a loaded -race run,
	// watched for twice its length: without pongs the board would go offline.
	const ping, silence = 50 * time.Millisecond, time.Second
	f := start(t, boardlink.Options{PingPeriod: ping, SilenceTimeout: silence})
	f.readBoard() // answers pings, sends no data
	deadline := time.Now().Add(2 * silence)
	for time.Now().Before(deadline) {
		if !f.state(t).Online {
			t.Fatal("a board that answers pings went offline")
		}
		time.Sleep(ping)
	}
}

func TestBoardCloseAndShutdownReasons(t *testing.T) {
	t.Run("board closes", func(t *testing.T) {
		f := start(t, boardlink.Options{})
		f.readBoard()
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "rebooting")
		if err := f.board.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		m := boardtest.Next(t, f.sub, 5*time.Second, "offline", boardtest.Status(dev, false))
		if !strings.Contains(m.Reason, "1001") || !strings.Contains(m.Reason, "rebooting") {
			t.Errorf("reason = %q", m.Reason)
		}
	})
	t.Run("gateway shuts down", func(t *testing.T) {
		f := start(t, boardlink.Options{})
		_, end := f.readBoard()
		f.cancel(nil)
		m := boardtest.Next(t, f.sub, 5*time.Second, "offline", boardtest.Status(dev, false))
		if m.Reason != "gateway shutting down" {
			t.Errorf("reason = %q", m.Reason)
		}
		if err := <-end; !boardtest.IsCloseCode(err, websocket.CloseGoingAway) {
			t.Errorf("board saw %v, want close 1001", err)
		}
	})
	// A cause of another package's type with a CloseCode (cmd/esp32gw
	// removing a device) chooses the close frame and the reason.
	t.Run("device removed", func(t *testing.T) {
		f := start(t, boardlink.Options{})
		_, end := f.readBoard()
		f.cancel(otherCloser{websocket.CloseGoingAway, "device removed from the gateway"})
		m := boardtest.Next(t, f.sub, 5*time.Second, "offline", boardtest.Status(dev, false))
		if m.Reason != "device removed from the gateway" {
			t.Errorf("reason = %q", m.Reason)
		}
		err := <-end
		if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseGoingAway || ce.Text != "device removed from the gateway" {
			t.Errorf("board saw %v, want close 1001 device removed from the gateway", err)
		}
	})
}

type otherCloser struct {
	code int
	text string
}

func (c otherCloser) Error() string  { return c.text }
func (c otherCloser) CloseCode() int { return c.code }

// BenchmarkBoardFrames: frames from a board to a subscriber through the link
// and the hub.
func BenchmarkBoardFrames(b *testing.B) {
	f := start(b, boardlink.Options{})
	boardtest.Next(b, f.sub, 2*time.Second, "online", boardtest.Status(dev, true))
	frame := []byte(`{"label":"count","value":1}`)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.send(b, websocket.TextMessage, frame)
		boardtest.Next(b, f.sub, 2*time.Second, "event", boardtest.Event(dev, "count", nil))
	}
}

// BenchmarkCommandAck: a command from the hub to its ack (the write done).
func BenchmarkCommandAck(b *testing.B) {
	f := start(b, boardlink.Options{})
	f.readBoard()
	cmd := gateway.Command{Value: json.RawMessage(`"toggle"`)}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// The hub's rate limit (20/s, burst 40) is a contract; go around it.
		if err := f.link.Send(context.Background(), cmd); err != nil {
			b.Fatal(err)
		}
	}
}
