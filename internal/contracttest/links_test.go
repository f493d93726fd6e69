package contracttest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/testgw"
)

// switchListener records every TCP accept; in refuse mode it closes the
// connection at once (a board that is rebooting).
type switchListener struct {
	net.Listener
	refuse  atomic.Bool
	mu      sync.Mutex
	accepts []time.Time
}

func (l *switchListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		l.accepts = append(l.accepts, time.Now())
		l.mu.Unlock()
		if l.refuse.Load() {
			c.Close()
			continue
		}
		return c, nil
	}
}

func (l *switchListener) times() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.accepts...)
}

func TestBoardLinks(t *testing.T) {
	t.Parallel()
	// The ws-dial board whose link is cut and which reboots.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := &switchListener{Listener: ln}
	conns := make(chan *websocket.Conn, 10)
	up := websocket.Upgrader{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err == nil {
			conns <- c
		}
	}))
	srv.Listener = sl
	srv.Start()
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })

	// The ws-dial board that never reads nor writes.
	mute := newDialServer(t)

	g := testgw.Start(t, header("gw1", "")+`  - id: ka
    transport: ws-listen
    token: "ka-token-0123456789"
  - id: mute
    transport: ws-listen
    token: "mute-token-0123456789"
  - id: dmute
    transport: ws-dial
    url: "`+mute.url()+`"
  - id: redial
    transport: ws-dial
    url: "ws://`+ln.Addr().String()+`/ws"
`)
	_, br := browser(t, g, "/ws")
	br.NextMsg(t, 5*time.Second)
	statuses := make(map[string]chan msg)
	for _, id := range []string{"ka", "mute", "dmute", "redial"} {
		statuses[id] = make(chan msg, 100)
	}
	go func() {
		for b := range br.Frames() {
			var m msg
			if jsonUnmarshal(b, &m) == nil && str(m, "type") == "status" {
				if ch := statuses[str(m, "device")]; ch != nil {
					ch <- m
				}
			}
		}
	}()
	waitStatus := func(t *testing.T, id string, online bool, within time.Duration) (msg, time.Time) {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case m := <-statuses[id]:
				if m["online"] == online {
					return m, time.Now()
				}
			case <-deadline:
				t.Fatalf("no status %s online=%v within %v", id, online, within)
			}
		}
	}

	t.Run("keepalive: a ping every 5 s", func(t *testing.T) {
		t.Parallel()
		t0 := time.Now()
		b := dialBoard(t, g, "ka", "ka-token-0123456789", true)
		deadline := time.Now().Add(13 * time.Second)
		for len(b.pingTimes()) < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("the board saw %d pings in 13 s, want one every 5 s", len(b.pingTimes()))
			}
			time.Sleep(50 * time.Millisecond)
		}
		p := b.pingTimes()
		first, gap := p[0].Sub(t0), p[1].Sub(p[0])
		t.Logf("first ping after %v, then %v", first, gap)
		if first > 5500*time.Millisecond {
			t.Errorf("first ping %v after connect, want within 5 s", first)
		}
		if gap < 4500*time.Millisecond || gap > 5500*time.Millisecond {
			t.Errorf("pings %v apart, want 5 s", gap)
		}
	})

	t.Run("ws-listen board that stops answering is offline after 15 s", func(t *testing.T) {
		t.Parallel()
		b := dialBoard(t, g, "mute", "mute-token-0123456789", false)
		waitStatus(t, "mute", true, 5*time.Second)
		b.send(t, `{"label":"x","value":1}`)
		last := time.Now()
		st, at := waitStatus(t, "mute", false, 20*time.Second)
		d := at.Sub(last)
		t.Logf("offline %v after the last frame: %v", d, st)
		// The upper bound leaves a loaded CI machine 5 s of scheduling slack
		// (seen: 17.9 s while the release tests ran qemu beside it).
		if d < 14500*time.Millisecond || d > 20*time.Second {
			t.Errorf("offline %v after the last frame, want 15 s (nothing arrives for 15 s)", d)
		}
		if str(st, "reason") == "" {
			t.Errorf("no reason: %v", st)
		}
	})

	t.Run("ws-dial board that never answers is offline after 15 s", func(t *testing.T) {
		t.Parallel()
		var connected time.Time
		select {
		case connected = <-mute.times: // the gateway's upgrade request
		case <-time.After(5 * time.Second):
			t.Fatal("the gateway did not dial the mute board")
		}
		mute.accept(t, 5*time.Second) // never read, never written
		st, at := waitStatus(t, "dmute", false, 20*time.Second)
		d := at.Sub(connected)
		t.Logf("offline %v after connecting: %v", d, st)
		// The upper bound leaves a loaded CI machine 5 s of scheduling slack
		// (seen: 17.9 s while the release tests ran qemu beside it).
		if d < 14500*time.Millisecond || d > 20*time.Second {
			t.Errorf("offline %v after the link came up with nothing arriving, want 15 s", d)
		}
		if str(st, "reason") == "" {
			t.Errorf("no reason: %v", st)
		}
	})

	t.Run("ws-dial: first retry within 1 s, backoff, back when the board is", func(t *testing.T) {
		t.Parallel()
		var c *websocket.Conn
		select {
		case c = <-conns:
		case <-time.After(5 * time.Second):
			t.Fatal("the gateway did not dial the board")
		}
		waitOnline(t, g, "redial", true, 5*time.Second)
		// Cut at once: every link loss is retried within 1 s, even when
		// earlier dials failed (a loaded machine) and the link was short.
		sl.refuse.Store(true)
		n0 := len(sl.times())
		lost := time.Now()
		c.UnderlyingConn().Close()
		st, _ := waitStatus(t, "redial", false, 5*time.Second)
		if str(st, "reason") == "" {
			t.Errorf("no reason: %v", st)
		}
		deadline := time.Now().Add(12 * time.Second)
		for len(sl.times()) < n0+3 {
			if time.Now().After(deadline) {
				t.Fatalf("the gateway made %d attempts in 12 s after the link loss", len(sl.times())-n0)
			}
			time.Sleep(20 * time.Millisecond)
		}
		at := sl.times()[n0:]
		first := at[0].Sub(lost)
		t.Logf("attempts after loss: %v, %v, %v", first, at[1].Sub(lost), at[2].Sub(lost))
		// Contract: within 1 s of the loss, detecting it included.
		if first > time.Second {
			t.Errorf("first retry %v after the link loss, want within 1 s", first)
		}
		if at[2].Sub(at[1]) < 200*time.Millisecond {
			t.Errorf("retries %v apart: no backoff", at[2].Sub(at[1]))
		}
		sl.refuse.Store(false)
		select {
		case c = <-conns:
			defer c.Close()
		case <-time.After(12 * time.Second):
			t.Fatal("the board came back but the gateway did not reconnect within 12 s")
		}
		waitStatus(t, "redial", true, 5*time.Second)
		if r, _ := num(device(t, g, "redial"), "reconnects"); r < 1 {
			t.Errorf("reconnects = %v after a reconnect", r)
		}
	})
}
