package wslisten

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/boardtest"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

const (
	dev   = "garage"
	token = "long-random-garage-token"
)

type rig struct {
	hub  *gateway.Hub
	sub  *gateway.Subscription
	l    *Listener
	srv  *httptest.Server
	stop func()
}

// newRig serves a Listener at /device/ on a real loopback HTTP server, with a
// real hub and a "browser" subscription. fast shortens the link timings.
func newRig(t *testing.T, fast bool) *rig {
	t.Helper()
	hub := gateway.NewHub(gateway.Options{GatewayID: "test"})
	devs := []gateway.DeviceConfig{
		{ID: dev, Transport: gateway.TransportWSListen, Token: token, Commands: []string{"toggle"}, CommandFormat: gateway.FormatJSON},
		{ID: "shed", Transport: gateway.TransportWSListen, Token: "shed-token", Commands: []string{"toggle"}},
	}
	for _, d := range devs {
		if err := hub.AddDevice(gateway.DeviceInfo{ID: d.ID, Transport: d.Transport, Commands: d.Commands}); err != nil {
			t.Fatal(err)
		}
	}
	sub, _, err := hub.Subscribe(-1, 4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	l := New(devs, nil)
	if fast {
		l.link.PingPeriod, l.link.SilenceTimeout, l.link.CloseWait = 50*time.Millisecond, 300*time.Millisecond, 200*time.Millisecond
	}
	mux := http.NewServeMux()
	mux.Handle("/device/", l)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &rig{hub: hub, sub: sub, l: l, srv: srv}
}

func (r *rig) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.l.Run(ctx, r.hub) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Run did not return within 5 s of cancel")
			}
		})
	}
	t.Cleanup(r.stop)
	// Run has the sink once a board can get in; wait for that.
	boardtest.WaitFor(t, 2*time.Second, "Run to take the sink", func() bool {
		r.l.mu.Lock()
		defer r.l.mu.Unlock()
		return r.l.sink != nil
	})
}

func (r *rig) url(path string) string { return "ws" + strings.TrimPrefix(r.srv.URL, "http") + path }

// arduinoHeader is what a Links2004/arduinoWebSockets client sends.
func arduinoHeader(tok string) http.Header {
	h := http.Header{"Origin": {"file://"}}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	return h
}

var boardDialer = websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{"arduino"}}

// dial connects a board; it fails the test unless the upgrade succeeds.
func dial(t *testing.T, url string, h http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := boardDialer.Dial(url, h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("board dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// reader runs the board's read loop (which answers pings) and hands frames
// and the final error to the test.
func reader(c *websocket.Conn) (frames chan string, end chan error) {
	frames, end = make(chan string, 64), make(chan error, 1)
	go func() {
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				end <- err
				return
			}
			frames <- string(b)
		}
	}()
	return frames, end
}

func TestBoardDialsIn(t *testing.T) {
	for _, tc := range []struct {
		name string
		path string
		h    http.Header
	}{
		{"bearer header and Origin file://", "/device/" + dev, arduinoHeader(token)},
		{"lower-case bearer", "/device/" + dev, http.Header{"Authorization": {"bearer " + token}}},
		{"token in the query", "/device/" + dev + "?token=" + token, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.CheckGoroutines(t)
			r := newRig(t, false)
			r.run(t)
			board := dial(t, r.url(tc.path), tc.h)
			frames, _ := reader(board)
			boardtest.Next(t, r.sub, 2*time.Second, "online", boardtest.Status(dev, true))
			if err := board.WriteMessage(websocket.TextMessage, []byte(`{"temp":21.5,"door":"open"}`)); err != nil {
				t.Fatal(err)
			}
			boardtest.Next(t, r.sub, 2*time.Second, "door", boardtest.Event(dev, "door", "open"))
			cmd := gateway.Command{Label: "led", Value: json.RawMessage(`"toggle"`)}
			if err := r.hub.Command(context.Background(), dev, cmd); err != nil {
				t.Fatalf("command: %v", err)
			}
			select {
			case got := <-frames:
				if want := `{"label":"led","value":"toggle"}`; got != want {
					t.Errorf("board got %q, want %q (command_format json)", got, want)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("board got no command")
			}
		})
	}
}

func TestBadTokenOrUnknownDeviceIs401BeforeUpgrade(t *testing.T) {
	testutil.CheckGoroutines(t)
	r := newRig(t, false)
	r.run(t)
	for _, tc := range []struct {
		name string
		path string
		h    http.Header
	}{
		{"no token", "/device/" + dev, http.Header{"Origin": {"file://"}}},
		{"wrong token", "/device/" + dev, arduinoHeader("long-random-garage-tokeX")},
		{"wrong query token", "/device/" + dev + "?token=nope", nil},
		{"another device's token", "/device/" + dev, arduinoHeader("shed-token")},
		{"unknown device", "/device/attic", arduinoHeader(token)},
		{"no device", "/device/", arduinoHeader(token)},
		{"basic auth", "/device/" + dev, http.Header{"Authorization": {"Basic " + token}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, resp, err := boardDialer.Dial(r.url(tc.path), tc.h)
			if err == nil {
				c.Close()
				t.Fatal("upgraded without a valid token")
			}
			if resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("got %v %+v, want HTTP 401", err, resp)
			}
		})
	}
	if st, _ := r.hub.DeviceState(dev); st.Online {
		t.Error("device online after refused boards")
	}
}

func TestNotRunningIs503(t *testing.T) {
	r := newRig(t, false)
	_, resp, err := boardDialer.Dial(r.url("/device/"+dev), arduinoHeader(token))
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("before Run: %v %v, want 503", err, resp)
	}
	r.run(t)
	dial(t, r.url("/device/"+dev), arduinoHeader(token))
	boardtest.Next(t, r.sub, 2*time.Second, "online", boardtest.Status(dev, true))
	r.stop()
	_, resp, err = boardDialer.Dial(r.url("/device/"+dev), arduinoHeader(token))
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after Run: %v %v, want 503", err, resp)
	}
}

// TestDuplicateDialIn: the same board id connecting again (a rebooted board
// whose old socket is half-open) replaces the old link with no offline
// flicker; the old one is closed with a reason.
func TestDuplicateDialIn(t *testing.T) {
	testutil.CheckGoroutines(t)
	r := newRig(t, false)
	r.run(t)
	old := dial(t, r.url("/device/"+dev), arduinoHeader(token))
	_, oldEnd := reader(old)
	boardtest.Next(t, r.sub, 2*time.Second, "online", boardtest.Status(dev, true))

	fresh := dial(t, r.url("/device/"+dev), arduinoHeader(token))
	frames, _ := reader(fresh)
	select {
	case err := <-oldEnd:
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure || !strings.Contains(ce.Text, "replaced") {
			t.Fatalf("old link ended with %v, want close 1000 naming the replacement", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("old link not closed")
	}
	if err := fresh.WriteMessage(websocket.TextMessage, []byte(`{"label":"door","value":"closed"}`)); err != nil {
		t.Fatal(err)
	}
	// Between the two links the device never went offline.
	m := boardtest.Next(t, r.sub, 2*time.Second, "event from the new link", func(m *gateway.Message) bool {
		return m.Kind == gateway.KindEvent || (m.Kind == gateway.KindStatus && !m.Online)
	})
	if m.Kind != gateway.KindEvent || m.Label != "door" {
		t.Fatalf("got %s, want the new link's event with no offline status first", m.Data)
	}
	if err := r.hub.Command(context.Background(), dev, gateway.Command{Value: json.RawMessage(`"toggle"`)}); err != nil {
		t.Fatalf("command: %v", err)
	}
	select {
	case got := <-frames:
		if got != `{"value":"toggle"}` {
			t.Errorf("new link got %q", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("command did not reach the new link")
	}
	st, _ := r.hub.DeviceState(dev)
	if !st.Online || st.Reconnects != 1 {
		t.Errorf("online=%v reconnects=%d, want true 1", st.Online, st.Reconnects)
	}
}

func TestShutdownClosesBoardsWith1001(t *testing.T) {
	testutil.CheckGoroutines(t)
	r := newRig(t, false)
	r.run(t)
	a := dial(t, r.url("/device/"+dev), arduinoHeader(token))
	b := dial(t, r.url("/device/shed"), arduinoHeader("shed-token"))
	_, aEnd := reader(a)
	_, bEnd := reader(b)
	// Both online, in whichever order their upgrades finished: the two
	// dials race on the server, so shed may well come online first.
	online := map[string]bool{}
	for len(online) < 2 {
		m := boardtest.Next(t, r.sub, 2*time.Second, "both boards online", func(m *gateway.Message) bool {
			return m.Kind == gateway.KindStatus && m.Online && (m.Device == dev || m.Device == "shed")
		})
		online[m.Device] = true
	}
	r.stop() // waits for Run, which waits for every link
	for _, end := range []chan error{aEnd, bEnd} {
		select {
		case err := <-end:
			if !boardtest.IsCloseCode(err, websocket.CloseGoingAway) {
				t.Errorf("board saw %v, want close 1001", err)
			}
		case <-time.After(2 * time.Second):
			t.Error("board not closed at shutdown")
		}
	}
	for _, id := range []string{dev, "shed"} {
		if st, _ := r.hub.DeviceState(id); st.Online || st.Reason != "gateway shutting down" {
			t.Errorf("%s: online=%v reason=%q", id, st.Online, st.Reason)
		}
	}
}

func TestFaultyBoards(t *testing.T) {
	t.Run("oversized frame", func(t *testing.T) {
		testutil.CheckGoroutines(t)
		r := newRig(t, true)
		r.run(t)
		board := dial(t, r.url("/device/"+dev), arduinoHeader(token))
		_, end := reader(board)
		boardtest.Next(t, r.sub, 2*time.Second, "online", boardtest.Status(dev, true))
		_ = board.WriteMessage(websocket.TextMessage, boardtest.Frame("big", strings.Repeat("x", 64<<10)))
		m := boardtest.Next(t, r.sub, 3*time.Second, "offline", boardtest.Status(dev, false))
		if !strings.Contains(m.Reason, "size limit") {
			t.Errorf("reason = %q", m.Reason)
		}
		if err := <-end; !boardtest.IsCloseCode(err, websocket.CloseMessageTooBig) {
			t.Errorf("board saw %v, want close 1009", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		r := newRig(t, true)
		r.run(t)
		board := dial(t, r.url("/device/"+dev), arduinoHeader(token))
		reader(board)
		boardtest.Next(t, r.sub, 2*time.Second, "online", boardtest.Status(dev, true))
		for _, f := range [][]byte{{0xff, 0x00}, []byte("ets Jun  8 2016 00:22:57"), []byte(`[1,2`), []byte("\"\xff\"")} {
			_ = board.WriteMessage(websocket.TextMessage, f)
		}
		_ = board.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
		_ = board.WriteMessage(websocket.TextMessage, boardtest.Frame("ok", true))
		boardtest.Next(t, r.sub, 2*time.Second, "frame after garbage", boardtest.Event(dev, "ok", true))
		if st, _ := r.hub.DeviceState(dev); !st.Online || st.Malformed != 5 {
			t.Errorf("online=%v malformed=%d, want true 5", st.Online, st.Malformed)
		}
	})
	t.Run("half-open", func(t *testing.T) {
		testutil.CheckGoroutines(t)
		r := newRig(t, true)
		r.run(t)
		proxy := boardtest.NewProxy(t, r.srv.Listener.Addr().String())
		dial(t, "ws://"+proxy.Addr()+"/device/"+dev, arduinoHeader(token))
		boardtest.Next(t, r.sub, 2*time.Second, "online", boardtest.Status(dev, true))
		began := time.Now()
		proxy.Blackhole(true)
		m := boardtest.Next(t, r.sub, 3*time.Second, "offline", boardtest.Status(dev, false))
		if !strings.Contains(m.Reason, "no frame or pong") {
			t.Errorf("reason = %q", m.Reason)
		}
		t.Logf("dial-in board detected dead after %s (silence timeout %s)", time.Since(began), r.l.link.SilenceTimeout)
		err := r.hub.Command(context.Background(), dev, gateway.Command{Value: json.RawMessage(`"toggle"`)})
		if !errors.Is(err, gateway.ErrOffline) {
			t.Errorf("command: %v, want ErrOffline", err)
		}
	})
}

func TestNoGoroutineGrowthAcrossDialIns(t *testing.T) {
	testutil.CheckGoroutines(t)
	const cycles = 50
	r := newRig(t, true)
	r.run(t)
	for i := 0; i < cycles; i++ {
		board := dial(t, r.url("/device/"+dev), arduinoHeader(token))
		boardtest.Next(t, r.sub, 2*time.Second, "online", boardtest.Status(dev, true))
		board.NetConn().Close() // power cut on a wired board: TCP closes, no close frame
		boardtest.Next(t, r.sub, 2*time.Second, "offline", boardtest.Status(dev, false))
	}
	if st, _ := r.hub.DeviceState(dev); st.Reconnects != cycles-1 {
		t.Errorf("reconnects = %d, want %d", st.Reconnects, cycles-1)
	}
}

// TestConcurrentDuplicateDialIns races many dial-ins for one id: whatever
// the interleaving, exactly one socket survives, the device is online on
// it, its frames reach the hub and commands reach it.
func TestConcurrentDuplicateDialIns(t *testing.T) {
	testutil.CheckGoroutines(t)
	r := newRig(t, false)
	r.run(t)
	const rounds, boards = 30, 8
	for round := range rounds {
		type board struct {
			c      *websocket.Conn
			frames chan string
			end    chan error
		}
		bs := make([]board, boards)
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, boards)
		for i := range bs {
			wg.Go(func() {
				<-start
				c, _, err := boardDialer.Dial(r.url("/device/"+dev), arduinoHeader(token))
				if err != nil {
					errs <- err
					return
				}
				frames, end := reader(c)
				bs[i] = board{c: c, frames: frames, end: end}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: dial: %v", round, err)
		}
		// Every socket but one is closed as replaced; the survivor is the one
		// still open once the others have ended.
		ended := make([]bool, boards)
		timeout := time.After(5 * time.Second)
		for n := 0; n < boards-1; {
			for i, b := range bs {
				if ended[i] {
					continue
				}
				select {
				case err := <-b.end:
					if !boardtest.IsCloseCode(err, websocket.CloseNormalClosure) {
						t.Errorf("round %d: board %d ended with %v, want close 1000 (replaced)", round, i, err)
					}
					ended[i] = true
					n++
				default:
				}
			}
			if n < boards-1 {
				select {
				case <-timeout:
					t.Fatalf("round %d: %d of %d duplicate sockets still open after 5 s, want 1", round, boards-n, boards)
				case <-time.After(5 * time.Millisecond): // poll the end channels
				}
			}
		}
		survivor := -1
		for i := range bs {
			if !ended[i] {
				survivor = i
			}
		}
		s := bs[survivor]
		if st, _ := r.hub.DeviceState(dev); !st.Online {
			t.Fatalf("round %d: device offline (%q) while socket %d is still up", round, st.Reason, survivor)
		}
		v := fmt.Sprint(round)
		if err := s.c.WriteMessage(websocket.TextMessage, []byte(`{"label":"round","value":`+v+`}`)); err != nil {
			t.Fatal(err)
		}
		boardtest.Next(t, r.sub, 2*time.Second, "the survivor's frame", boardtest.Event(dev, "round", round))
		if err := r.hub.Command(context.Background(), dev, gateway.Command{Value: json.RawMessage(`"toggle"`)}); err != nil {
			t.Fatalf("round %d: command: %v", round, err)
		}
		select {
		case got := <-s.frames:
			if got != `{"value":"toggle"}` {
				t.Errorf("round %d: survivor got %q", round, got)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("round %d: command did not reach the surviving socket", round)
		}
		s.c.Close()
		<-s.end
		boardtest.Next(t, r.sub, 2*time.Second, "offline after the survivor left", boardtest.Status(dev, false))
	}
}
