package wsdial

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/backoff"
	"github.com/esp32gw/esp32gw/internal/boardtest"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

const dev = "kitchen"

var toggle = gateway.Command{Label: "led", Value: json.RawMessage(`"toggle"`)}

type rig struct {
	hub  *gateway.Hub
	sub  *gateway.Subscription
	d    *Dialer
	logs *testutil.SyncBuffer
	stop func()
}

// newRig builds a real hub with the device, a "browser" subscription and a
// Dialer for url; fast shortens every timing so fault tests run in
// milliseconds. Call run to start it.
func newRig(t *testing.T, url string, fast bool) *rig {
	t.Helper()
	hub := gateway.NewHub(gateway.Options{GatewayID: "test"})
	cfg := gateway.DeviceConfig{ID: dev, Transport: gateway.TransportWSDial, URL: url, Commands: []string{"toggle"}, CommandFormat: gateway.FormatText}
	if err := hub.AddDevice(gateway.DeviceInfo{ID: dev, Transport: cfg.Transport, Commands: cfg.Commands}); err != nil {
		t.Fatal(err)
	}
	sub, _, err := hub.Subscribe(-1, 4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	logs := &testutil.SyncBuffer{}
	d := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if fast {
		d.firstJitter, d.retry = time.Millisecond, backoff.Policy{Base: 10 * time.Millisecond, Cap: 40 * time.Millisecond}
		d.link.PingPeriod, d.link.SilenceTimeout, d.link.CloseWait = 50*time.Millisecond, 300*time.Millisecond, 200*time.Millisecond
		d.dialer.HandshakeTimeout = 500 * time.Millisecond
	}
	return &rig{hub: hub, sub: sub, d: d, logs: logs}
}

func (r *rig) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.d.Run(ctx, r.hub) }()
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
}

func (r *rig) state(t *testing.T) gateway.DeviceState {
	t.Helper()
	st, err := r.hub.DeviceState(dev)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestTutorialSketch: an unmodified tutorial board works as configured in
// the README: values reach browsers, toggle round-trips, a second browser
// sees the change.
func TestTutorialSketch(t *testing.T) {
	testutil.CheckGoroutines(t)
	board := boardtest.NewBoard(t)
	r := newRig(t, board.URL(), false)
	second, _, err := r.hub.Subscribe(-1, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	r.run(t)

	boardtest.Next(t, r.sub, 5*time.Second, "online", boardtest.Status(dev, true))
	boardtest.Next(t, r.sub, 2*time.Second, "state on connect", boardtest.Event(dev, "ledStatus", "LED OFF"))
	board.Tick()
	boardtest.Next(t, r.sub, 2*time.Second, "count", boardtest.Event(dev, "count", 1))

	if err := r.hub.Command(context.Background(), dev, toggle); err != nil {
		t.Fatalf("toggle: %v", err)
	}
	boardtest.Next(t, r.sub, 2*time.Second, "LED ON", boardtest.Event(dev, "ledStatus", "LED ON"))
	boardtest.Next(t, second, 2*time.Second, "LED ON in the second browser", boardtest.Event(dev, "ledStatus", "LED ON"))
	if !board.LED() {
		t.Error("board LED is off after toggle")
	}
	if got := <-board.Commands; got != "toggle" {
		t.Errorf("board received %q, want the bare text toggle", got)
	}

	err = r.hub.Command(context.Background(), dev, gateway.Command{Value: json.RawMessage(`"reboot"`)})
	if !errors.Is(err, gateway.ErrNotAllowed) {
		t.Errorf("command outside the allow-list: %v", err)
	}

	// Shutdown: the board gets a close frame, the device goes offline.
	r.stop()
	m := boardtest.Next(t, r.sub, 2*time.Second, "offline", boardtest.Status(dev, false))
	if m.Reason != "gateway shutting down" {
		t.Errorf("reason = %q", m.Reason)
	}
	boardtest.WaitFor(t, 2*time.Second, "board to drop the client", func() bool { return board.Clients() == 0 })
}

// TestBoardRestartRealBackoff kills the board's server and starts it again
// at once, with the contract's reconnect numbers: the first retry comes
// within 1 s after every loss, however short the link before it was.
func TestBoardRestartRealBackoff(t *testing.T) {
	testutil.CheckGoroutines(t)
	board := boardtest.NewBoard(t)
	r := newRig(t, board.URL(), false)
	r.run(t)
	boardtest.Next(t, r.sub, 5*time.Second, "online", boardtest.Status(dev, true))

	var worst time.Duration
	const restarts = 3
	for i := 0; i < restarts; i++ {
		killed := time.Now()
		board.Kill()
		m := boardtest.Next(t, r.sub, 5*time.Second, "offline", boardtest.Status(dev, false))
		if m.Reason == "" {
			t.Error("offline status without a reason")
		}
		lost := time.Now()
		board.Restart()
		boardtest.Next(t, r.sub, 5*time.Second, "online again", boardtest.Status(dev, true))
		took, retry := time.Since(killed), time.Since(lost)
		worst = max(worst, took)
		t.Logf("restart %d: %q, back online %s after the kill (%s after the loss was seen)", i+1, m.Reason, took, retry)
		// The contract: first retry within 1 s, handshake on loopback included.
		if retry > time.Second {
			t.Errorf("reconnect after a board restart took %s; the first retry must come within 1 s", retry)
		}
		n := board.Tick()
		boardtest.Next(t, r.sub, 2*time.Second, "events after reconnect", boardtest.Event(dev, "count", n))
	}
	if st := r.state(t); st.Reconnects != restarts {
		t.Errorf("reconnects = %d, want %d", st.Reconnects, restarts)
	}
	t.Logf("time to reconnect after a board restart: worst %s of %d", worst, restarts)
}

// TestBoardDownForAWhile: dials fail while the board is away; the first
// failure is logged once, later ones only at Debug; the gateway gets the
// board back when it returns.
func TestBoardDownForAWhile(t *testing.T) {
	testutil.CheckGoroutines(t)
	board := boardtest.NewBoard(t)
	r := newRig(t, board.URL(), true)
	r.run(t)
	boardtest.Next(t, r.sub, 5*time.Second, "online", boardtest.Status(dev, true))
	board.Kill()
	boardtest.Next(t, r.sub, 5*time.Second, "offline", boardtest.Status(dev, false))
	boardtest.WaitFor(t, 5*time.Second, "10 failed dials", func() bool {
		return strings.Count(r.logs.String(), "dial failed") >= 10
	})
	if n := strings.Count(r.logs.String(), "cannot reach board"); n != 1 {
		t.Errorf("warned %d times about an unreachable board, want once per outage", n)
	}
	err := r.hub.Command(context.Background(), dev, toggle)
	if !errors.Is(err, gateway.ErrOffline) {
		t.Errorf("command while the board is down: %v, want ErrOffline", err)
	}
	board.Restart()
	boardtest.Next(t, r.sub, 5*time.Second, "online again", boardtest.Status(dev, true))
	boardtest.WaitFor(t, 2*time.Second, "the reconnect logged", func() bool {
		return strings.Contains(r.logs.String(), "board reconnected")
	})
}

func halfOpen(t *testing.T, fast bool) {
	testutil.CheckGoroutines(t)
	board := boardtest.NewBoard(t)
	proxy := boardtest.NewProxy(t, board.Addr())
	r := newRig(t, "ws://"+proxy.Addr()+"/ws", fast)
	r.run(t)
	boardtest.Next(t, r.sub, 5*time.Second, "online", boardtest.Status(dev, true))
	silence := r.d.link.SilenceTimeout
	if silence == 0 {
		silence = 15 * time.Second
	}

	began := time.Now()
	proxy.Blackhole(true) // the board lost power: nothing in either direction, no FIN
	m := boardtest.Next(t, r.sub, silence+5*time.Second, "offline", boardtest.Status(dev, false))
	took := time.Since(began)
	if !strings.Contains(m.Reason, "no frame or pong") {
		t.Errorf("reason = %q", m.Reason)
	}
	if took > silence+silence/10+200*time.Millisecond { // the bound plus scheduling slack
		t.Errorf("dead board detected after %s; the bound is %s without a frame or pong", took, silence)
	}
	t.Logf("dead board detected after %s (silence timeout %s): %q", took, silence, m.Reason)

	began = time.Now()
	err := r.hub.Command(context.Background(), dev, toggle)
	if !errors.Is(err, gateway.ErrOffline) {
		t.Errorf("command to a dead board: %v, want ErrOffline", err)
	}
	if d := time.Since(began); d > 500*time.Millisecond {
		t.Errorf("command to a dead board took %s to fail; want at once", d)
	}
	if got := err.Error(); !strings.Contains(got, "offline") {
		t.Errorf("error %q does not say offline", got)
	}

	proxy.Blackhole(false) // power back
	boardtest.Next(t, r.sub, 10*time.Second, "online again", boardtest.Status(dev, true))
	n := board.Tick()
	boardtest.Next(t, r.sub, 2*time.Second, "events after recovery", boardtest.Event(dev, "count", n))
}

// TestHalfOpenBoard: a board that vanishes without closing TCP goes offline
// within the silence timeout, and commands fail fast with "offline".
func TestHalfOpenBoard(t *testing.T) { halfOpen(t, true) }

// TestHalfOpenBoardContractNumbers is the same with the real 5 s ping and
// 15 s silence timeout.
func TestHalfOpenBoardContractNumbers(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 15 s")
	}
	halfOpen(t, false)
}

func TestOversizedFrameDropsTheLinkAndReconnects(t *testing.T) {
	testutil.CheckGoroutines(t)
	board := boardtest.NewBoard(t)
	r := newRig(t, board.URL(), true)
	r.run(t)
	boardtest.Next(t, r.sub, 5*time.Second, "online", boardtest.Status(dev, true))
	board.TextAll(websocket.TextMessage, boardtest.Frame("big", strings.Repeat("x", 70<<10)))
	m := boardtest.Next(t, r.sub, 5*time.Second, "offline", boardtest.Status(dev, false))
	if !strings.Contains(m.Reason, "size limit") {
		t.Errorf("reason = %q", m.Reason)
	}
	boardtest.Next(t, r.sub, 5*time.Second, "online again", boardtest.Status(dev, true))
	if st := r.state(t); st.Reconnects < 1 {
		t.Errorf("reconnects = %d", st.Reconnects)
	}
}

func TestGarbageFramesKeepTheLink(t *testing.T) {
	board := boardtest.NewBoard(t)
	r := newRig(t, board.URL(), true)
	r.run(t)
	boardtest.Next(t, r.sub, 5*time.Second, "online", boardtest.Status(dev, true))
	// Online comes at attach, maybe before the board has registered the
	// connection; its hello through the link proves the garbage below
	// reaches the gateway.
	boardtest.Next(t, r.sub, 5*time.Second, "the board's hello", boardtest.Event(dev, "count", nil))
	board.TextAll(websocket.BinaryMessage, []byte{0xde, 0xad})
	board.TextAll(websocket.TextMessage, []byte("Guru Meditation Error"))
	board.TextAll(websocket.TextMessage, []byte("{\"label\":\"count\",\"value\":\"\xc3\x28\"}"))
	board.TextAll(websocket.TextMessage, []byte(`{"label":`))
	n := board.Tick()
	boardtest.Next(t, r.sub, 2*time.Second, "count after garbage", boardtest.Event(dev, "count", n))
	st := r.state(t)
	if !st.Online || st.Malformed != 4 || st.Reconnects != 0 {
		t.Errorf("online=%v malformed=%d reconnects=%d, want true 4 0", st.Online, st.Malformed, st.Reconnects)
	}
}

// TestNoGoroutineGrowthAcrossReconnects runs 50 kill/restart cycles.
func TestNoGoroutineGrowthAcrossReconnects(t *testing.T) {
	testutil.CheckGoroutines(t)
	const cycles = 50
	board := boardtest.NewBoard(t)
	r := newRig(t, board.URL(), true)
	r.run(t)
	boardtest.Next(t, r.sub, 5*time.Second, "online", boardtest.Status(dev, true))
	// The hub says online at attach, before the link's reader starts; the
	// board's first frame through the link proves every goroutine of one
	// live link is running before they are counted.
	boardtest.Next(t, r.sub, 5*time.Second, "the board's hello", boardtest.Event(dev, "count", nil))
	base := runtime.NumGoroutine()
	for i := 0; i < cycles; i++ {
		board.Kill()
		boardtest.Next(t, r.sub, 5*time.Second, "offline", boardtest.Status(dev, false))
		board.Restart()
		boardtest.Next(t, r.sub, 5*time.Second, "online", boardtest.Status(dev, true))
	}
	boardtest.WaitFor(t, 5*time.Second, "goroutines back to the level of one live link", func() bool {
		return runtime.NumGoroutine() <= base
	})
	if st := r.state(t); st.Reconnects != cycles {
		t.Errorf("reconnects = %d, want %d", st.Reconnects, cycles)
	}
	t.Logf("%d reconnect cycles, goroutines %d → %d", cycles, base, runtime.NumGoroutine())
}

func TestBackoff(t *testing.T) {
	d := New(gateway.DeviceConfig{ID: dev, URL: "ws://127.0.0.1:1/ws"}, nil)
	ms := time.Millisecond
	for n, want := range []time.Duration{600 * ms, 1200 * ms, 2400 * ms, 4800 * ms, 9600 * ms, 19200 * ms, 30 * time.Second, 30 * time.Second} {
		for i := 0; i < 200; i++ {
			got := d.retry.Delay(n)
			if got < want/2 || got > want {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s]", n, got, want/2, want)
			}
		}
	}
	for range 200 {
		// The contract's first retry within 1 s, with room to see the loss.
		if got := d.retry.Delay(0); got < 250*ms || got > 600*ms {
			t.Fatalf("first retry after %s, want within [250ms, 600ms]", got)
		}
	}
	if got := d.retry.Delay(1000); got > BackoffCap {
		t.Errorf("backoff(1000) = %s over the cap", got)
	}
}

func TestRunStopsDuringBackoff(t *testing.T) {
	testutil.CheckGoroutines(t)
	r := newRig(t, "ws://127.0.0.1:1/ws", false) // nothing listens there
	r.d.retry = backoff.Policy{Base: time.Hour, Cap: time.Hour}
	r.run(t)
	boardtest.WaitFor(t, 5*time.Second, "a failed dial", func() bool {
		return strings.Contains(r.logs.String(), "cannot reach board")
	})
	r.stop() // fails the test if Run does not return promptly
}

// TestUnreachableBoardSaysWhy: a board that cannot be reached shows why in
// its device state, not just "offline".
func TestUnreachableBoardSaysWhy(t *testing.T) {
	r := newRig(t, "ws://127.0.0.1:1/ws", true) // nothing listens on port 1
	r.run(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := r.hub.DeviceState(dev)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(st.Reason, "connection refused") {
			if st.Online {
				t.Fatal("unreachable board shown online")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("offline reason is %q, want the dial error", st.Reason)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
