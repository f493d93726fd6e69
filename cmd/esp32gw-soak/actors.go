package main

import (
	"context"
	"encoding/json"

	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

var dialer = websocket.Dialer{HandshakeTimeout: 5 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}

// board is a well-behaved ws-listen board: {"label":"n","value":K} with K
// rising from 1, at rate; a restart closes the link cleanly and redials.
type board struct {
	id, url, token string
	rate           float64

	mu        sync.Mutex
	sent      int64          // highest K written
	uncertain map[int64]bool // K whose write failed: may or may not have arrived
	links     int
	restart   chan struct{}
}

func (b *board) run(ctx context.Context) {
	h := http.Header{"Authorization": {"Bearer " + b.token}}
	for ctx.Err() == nil {
		ws, err := dial(ctx, &dialer, b.url, h)
		if err == nil {
			b.mu.Lock()
			b.links++
			b.mu.Unlock()
			b.serve(ctx, ws)
		}
		sleep(ctx, 200*time.Millisecond)
	}
}

func (b *board) serve(ctx context.Context, ws *websocket.Conn) {
	defer ws.Close()
	dead := drain(ws) // reads answer pings
	t := time.NewTicker(time.Duration(float64(time.Second) / b.rate))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "soak end"), time.Now().Add(time.Second))
			return
		case <-b.restart:
			ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "restart"), time.Now().Add(time.Second))
			select {
			case <-dead:
			case <-time.After(2 * time.Second):
			}
			return
		case <-dead:
			return
		case <-t.C:
			b.mu.Lock()
			b.sent++
			k := b.sent
			b.mu.Unlock()
			ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"label":"n","value":`+strconv.FormatInt(k, 10)+`}`)); err != nil {
				b.mu.Lock()
				b.uncertain[k] = true
				b.mu.Unlock()
				return
			}
		}
	}
}

// browser is a well-behaved /ws client that tracks every reading of the
// tracked boards; a forced reconnect resumes with ?since=.
type browser struct {
	idx     int
	url     string
	tracked map[string]int // board id -> index

	mu              sync.Mutex
	conn            *websocket.Conn
	last            int64 // newest seq seen, -1 before the first snapshot
	got             []map[int64]uint8
	events          int64
	duplicates      int64
	covered         int64 // readings not received one by one but covered by a snapshot after a resume
	resumeSnapshots int64 // ?since= answered by a fresh snapshot
	replayResumes   int64 // ?since= answered by a replay (no snapshot)
	liveSnapshots   int64 // snapshots on a live connection (reload)
	reconnects      int64
	connected       atomic.Bool
}

const (
	gotEvent   = 1
	gotCovered = 2
	gotBefore  = 3
)

func (b *browser) run(ctx context.Context) {
	for ctx.Err() == nil {
		u := b.url
		b.mu.Lock()
		resuming := b.last >= 0
		if resuming {
			u += "&since=" + strconv.FormatInt(b.last, 10)
			b.reconnects++
		}
		b.mu.Unlock()
		ws, err := dial(ctx, &dialer, u, nil)
		if err != nil {
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		ws.SetReadLimit(4 << 20)
		b.mu.Lock()
		b.conn = ws
		b.mu.Unlock()
		b.connected.Store(true)
		stop := context.AfterFunc(ctx, func() { ws.Close() })
		first := true
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				break
			}
			b.receive(data, resuming, first)
			first = false
		}
		stop()
		b.connected.Store(false)
		ws.Close()
		sleep(ctx, 100*time.Millisecond)
	}
}

// kick closes the connection; the run loop resumes with ?since=.
func (b *browser) kick() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		b.conn.Close()
	}
}

type wireMsg struct {
	Type    string          `json:"type"`
	Device  string          `json:"device"`
	Label   string          `json:"label"`
	Value   json.RawMessage `json:"value"`
	Seq     int64           `json:"seq"`
	Devices []struct {
		ID     string `json:"id"`
		Labels map[string]struct {
			Value json.RawMessage `json:"value"`
		} `json:"labels"`
	} `json:"devices"`
}

func (b *browser) receive(data []byte, resuming, first bool) {
	var m wireMsg
	if json.Unmarshal(data, &m) != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch m.Type {
	case "event":
		if m.Seq > b.last {
			b.last = m.Seq
		}
		if first && resuming {
			b.replayResumes++
		}
		i, ok := b.tracked[m.Device]
		if !ok || m.Label != "n" {
			return
		}
		v, err := strconv.ParseInt(string(m.Value), 10, 64)
		if err != nil {
			return
		}
		b.events++
		if b.got[i][v] == gotEvent {
			b.duplicates++
		}
		b.got[i][v] = gotEvent
	case "snapshot":
		kind := gotCovered
		switch {
		case first && !resuming:
			kind = gotBefore
		case first && resuming:
			b.resumeSnapshots++
		default:
			b.liveSnapshots++
		}
		b.last = m.Seq
		for _, d := range m.Devices {
			i, ok := b.tracked[d.ID]
			if !ok {
				continue
			}
			l, ok := d.Labels["n"]
			if !ok {
				continue
			}
			v, err := strconv.ParseInt(string(l.Value), 10, 64)
			if err != nil {
				continue
			}
			for k := v; k >= 1; k-- {
				if _, seen := b.got[i][k]; seen {
					if kind == gotBefore {
						continue
					}
					break
				}
				b.got[i][k] = uint8(kind)
				if kind == gotCovered {
					b.covered++
				}
			}
		}
	}
}

// missing counts readings 1..sent of board i this browser neither got nor
// had covered by a snapshot, leaving out uncertain ones.
func (b *browser) missing(i int, sent int64, uncertain map[int64]bool) (n int64, firstMissing int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := int64(1); k <= sent; k++ {
		if _, ok := b.got[i][k]; !ok && !uncertain[k] {
			if n == 0 {
				firstMissing = k
			}
			n++
		}
	}
	return
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Fault actors. Each is bounded by ctx and its own lifetime.

// dial opens a WebSocket with d, closing the handshake response's body.
func dial(ctx context.Context, d *websocket.Dialer, url string, h http.Header) (*websocket.Conn, error) {
	ws, resp, err := d.DialContext(ctx, url, h)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	return ws, err
}

// drain reads ws and throws the frames away, which answers the gateway's
// pings, until a read fails; the channel it returns closes then.
func drain(ws *websocket.Conn) <-chan struct{} {
	dead := make(chan struct{})
	go func() {
		defer close(dead)
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	return dead
}

// halfOpen dials as a board, sends a few readings, then neither reads nor
// writes for hold (pings go unanswered), then closes.
func halfOpen(ctx context.Context, url, token string, hold time.Duration) error {
	ws, err := dial(ctx, &dialer, url, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		return err
	}
	defer ws.Close()
	for i := 0; i < 3; i++ {
		ws.WriteMessage(websocket.TextMessage, []byte(`{"label":"h","value":`+strconv.Itoa(i)+`}`))
	}
	sleep(ctx, hold)
	return nil
}

// hostileBoard sends bad JSON, binary frames, junk labels, an oversized
// value, and last a frame over 64 KiB (the gateway closes the link).
func hostileBoard(ctx context.Context, url, token string) error {
	ws, err := dial(ctx, &dialer, url, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		return err
	}
	defer ws.Close()
	drain(ws)
	ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	frames := []string{
		`{"label":`, `not json at all`, `[1,2,3]`, `{"label":"","value":1}`,
		`{"label":"` + strings.Repeat("L", 300) + `","value":1}`,
		`{"label":"ctl\u0000\u0007","value":1}`, `{"label":"x","value":"` + strings.Repeat("v", 5000) + `"}`,
		`{"label":"n","value":{"deep":[[[[[[[[]]]]]]]]}}`, `{"value":1}`, `{"label":42,"value":1}`,
	}
	for i := 0; i < 40; i++ {
		frames = append(frames, `{"label":"junk`+strconv.Itoa(i)+`","value":`+strconv.Itoa(i)+`}`)
	}
	for _, f := range frames {
		if ws.WriteMessage(websocket.TextMessage, []byte(f)) != nil {
			return nil
		}
	}
	ws.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2, 0xff})
	ws.WriteMessage(websocket.TextMessage, []byte{0xff, 0xfe, '{'})
	sleep(ctx, 200*time.Millisecond)
	ws.WriteMessage(websocket.TextMessage, []byte(`{"label":"big","value":"`+strings.Repeat("x", 70<<10)+`"}`))
	sleep(ctx, time.Second)
	return nil
}

// slowBrowser opens /ws and never reads for hold.
func slowBrowser(ctx context.Context, url string, hold time.Duration) error {
	d := dialer
	d.ReadBufferSize = 512
	ws, err := dial(ctx, &d, url, nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	sleep(ctx, hold)
	return nil
}

// hostileBrowser sends bad JSON, binary, oversized and unknown messages.
func hostileBrowser(ctx context.Context, url string) error {
	ws, err := dial(ctx, &dialer, url, nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	drain(ws)
	ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	for _, f := range []string{`{"type":`, `nonsense`, `{"type":"what"}`, `{"type":"command","device":"nope","value":"x"}`,
		`{"type":"command","id":"c1","device":"b0","label":"led","value":"` + strings.Repeat("z", 2000) + `"}`,
		`{"type":"subscribe","devices":[` + strings.Repeat(`"x",`, 100) + `"y"]}`} {
		if ws.WriteMessage(websocket.TextMessage, []byte(f)) != nil {
			return nil
		}
	}
	ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"x","pad":"`+strings.Repeat("p", 20<<10)+`"}`))
	sleep(ctx, 500*time.Millisecond)
	return nil
}
