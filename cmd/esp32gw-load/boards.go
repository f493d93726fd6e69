package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Board timings.
const (
	boardWriteWait = 5 * time.Second // a gateway that takes no frame for this long loses the link
	// boardMaxSleep bounds the send loop's sleep, so a new rate or the end
	// of the run is seen within this long.
	boardMaxSleep = 50 * time.Millisecond
	// boardMaxBurst is the most readings one wake-up sends to catch up;
	// beyond it the board skips readings (a real board would too), which
	// shows as deliveries below the offered rate.
	boardMaxBurst  = 1000
	boardRedialMin = 100 * time.Millisecond // ws-listen redial backoff
	boardRedialMax = 2 * time.Second
)

// board emulates one ESP32 running the classic tutorial sketch: it sends
// {"label":"count","value":SEQ} at the controller's rate to every client
// (ws.textAll), and answers the text command "toggle" by flipping its LED
// and broadcasting {"label":"ledStatus","value":"LED ON"|"LED OFF"}.
//
// It is a WebSocket server that the gateway dials (ws-dial) or a client
// that dials the gateway's /device/ID (ws-listen). Run owns every goroutine
// it starts and returns after all of them have exited.
type board struct {
	id  string
	idx int
	ctl *control

	log    sendLog
	next   atomic.Int64              // the next SEQ; also how many readings were sent
	sentIn [maxWindows]atomic.Uint64 // readings sent while window i was open
	skip   atomic.Uint64             // readings skipped because a write took too long
	conns  atomic.Int32              // links up now
	links  atomic.Uint64             // links ever made
	adds   chan *boardConn           // new links, for the send loop
	toggle chan struct{}             // "toggle" commands, for the send loop

	ln net.Listener // ws-dial: where the gateway dials; nil for ws-listen
}

// boardConn is one link; its reader closes dead when the link ends.
type boardConn struct {
	ws   *websocket.Conn
	dead chan struct{}
}

func newBoard(idx int, ctl *control) *board {
	return &board{
		id:     fmt.Sprintf("b%03d", idx),
		idx:    idx,
		ctl:    ctl,
		adds:   make(chan *boardConn),
		toggle: make(chan struct{}, 16), // commands beyond 16 waiting are dropped, as a busy board would
	}
}

// listen opens the board's WebSocket server socket on loopback (ws-dial).
func (b *board) listen() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("board %s: listen: %w", b.id, err)
	}
	b.ln = ln
	return nil
}

// url is where the gateway dials this board (ws-dial).
func (b *board) url() string { return "ws://" + b.ln.Addr().String() + "/ws" }

// Run serves the board until ctx ends. With a listener it serves ws-dial
// links on it; otherwise it dials dialURL with token (ws-listen).
func (b *board) Run(ctx context.Context, dialURL, token string) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { b.sendLoop(ctx) })
	if b.ln == nil {
		b.dialLoop(ctx, dialURL, token)
		return nil
	}
	var handlers sync.WaitGroup // hijacked connections outlive Shutdown: wait for them
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/ws" {
				http.NotFound(w, r)
				return
			}
			ws, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			handlers.Add(1)
			defer handlers.Done()
			b.serveLink(ctx, ws)
		}),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(b.ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("board %s: serve: %w", b.id, err)
	}
	srv.Close()
	if err == nil {
		<-serveErr
	}
	handlers.Wait()
	return err
}

// serveLink hands a link to the send loop and reads it (commands, pings)
// until it ends.
func (b *board) serveLink(ctx context.Context, ws *websocket.Conn) {
	c := &boardConn{ws: ws, dead: make(chan struct{})}
	select {
	case b.adds <- c:
	case <-ctx.Done():
		ws.Close()
		return
	}
	b.links.Add(1)
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()
	defer close(c.dead)
	ws.SetReadLimit(4096)
	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if mt == websocket.TextMessage && string(data) == "toggle" {
			select {
			case b.toggle <- struct{}{}:
			default:
			}
		}
	}
}

// dialLoop keeps a ws-listen link to the gateway up until ctx ends.
func (b *board) dialLoop(ctx context.Context, url, token string) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	h := http.Header{"Authorization": {"Bearer " + token}}
	wait := boardRedialMin
	for ctx.Err() == nil {
		ws, resp, err := d.DialContext(ctx, url, h)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err == nil {
			wait = boardRedialMin
			b.serveLink(ctx, ws)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		wait = min(2*wait, boardRedialMax)
	}
}

// sendLoop owns every write to every link: readings at the controller's
// rate, and ledStatus after a toggle.
func (b *board) sendLoop(ctx context.Context) {
	var links []*boardConn
	defer func() {
		for _, c := range links {
			c.ws.Close()
		}
	}()
	led := false
	buf := make([]byte, 0, 64)
	// broadcast writes frame to every live link and reports whether any took it.
	broadcast := func(frame []byte) bool {
		ok := false
		live := links[:0]
		for _, c := range links {
			c.ws.SetWriteDeadline(time.Now().Add(boardWriteWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
				c.ws.Close() // its reader sees the close and ends
				b.conns.Add(-1)
				continue
			}
			ok = true
			live = append(live, c)
		}
		clear(links[len(live):])
		links = live
		return ok
	}

	timer := time.NewTimer(boardMaxSleep)
	defer timer.Stop()
	rate := 0.0
	var segStart int64 // ns (control clock) when the current rate began
	var segSent int64  // readings due and handled since segStart
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-b.adds:
			links = append(links, c)
			b.conns.Add(1)
		case <-b.toggle:
			led = !led
			v := "LED OFF"
			if led {
				v = "LED ON"
			}
			buf = append(buf[:0], `{"label":"ledStatus","value":"`...)
			buf = append(buf, v...)
			buf = append(buf, `"}`...)
			broadcast(buf)
		case <-timer.C:
		}

		links = prune(links, &b.conns)
		now := b.ctl.now()
		if r := b.ctl.getRate(); r != rate || len(links) == 0 {
			// A new rate, or nobody to send to: readings are due from now.
			rate, segStart, segSent = r, now, 0
		}
		wait := boardMaxSleep
		if rate > 0 && len(links) > 0 {
			due := int64(float64(now-segStart)/1e9*rate) - segSent
			if due > boardMaxBurst {
				b.skip.Add(uint64(due - boardMaxBurst))
				segSent += due - boardMaxBurst
				due = boardMaxBurst
			}
			for ; due > 0 && ctx.Err() == nil; due-- {
				segSent++
				seq := b.next.Load()
				if seq >= maxSeq {
					break
				}
				win := b.ctl.window.Load()
				b.log.put(seq, stamp(win, b.ctl.now()))
				buf = append(buf[:0], `{"label":"count","value":`...)
				buf = strconv.AppendInt(buf, seq, 10)
				buf = append(buf, '}')
				if !broadcast(buf) {
					b.log.put(seq, 0) // nobody got it: not sent
					break
				}
				b.next.Store(seq + 1)
				if win >= 0 {
					b.sentIn[win].Add(1)
				}
			}
			// Sleep until the next reading is due.
			nextAt := segStart + int64(float64(segSent+1)/rate*1e9)
			wait = time.Duration(nextAt - b.ctl.now())
		}
		timer.Reset(max(min(wait, boardMaxSleep), time.Millisecond))
	}
}

// waitConnected waits until every board has a link, or ctx ends.
func waitConnected(ctx context.Context, boards []*board) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		n := 0
		for _, b := range boards {
			if b.conns.Load() > 0 {
				n++
			}
		}
		if n == len(boards) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d boards have a link: %w", n, len(boards), context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// prune drops the links whose reader has ended.
func prune(links []*boardConn, conns *atomic.Int32) []*boardConn {
	live := links[:0]
	for _, c := range links {
		select {
		case <-c.dead:
			c.ws.Close()
			conns.Add(-1)
		default:
			live = append(live, c)
		}
	}
	clear(links[len(live):])
	return live
}
