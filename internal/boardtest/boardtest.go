// Package boardtest holds real, loopback-only test parts for the WebSocket
// board transports: a board that behaves like the classic ESPAsyncWebServer
// tutorial sketch, a TCP proxy that can blackhole a link without closing it
// (a board that lost power or Wi-Fi), and small waiting helpers. Every part
// stops its goroutines in Close/Kill, which tests register with t.Cleanup.
package boardtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/gateway"
)

// Board is the tutorial sketch: AsyncWebSocket ws("/ws") that sends
// {"label":"count","value":N} and {"label":"ledStatus","value":"LED ON"},
// sends its state to each new client, takes the bare text "toggle", and
// broadcasts to every client (textAll).
type Board struct {
	t    testing.TB
	addr string

	mu      sync.Mutex
	ln      net.Listener
	srv     *http.Server
	clients map[*boardClient]struct{}
	led     bool
	count   int
	wg      sync.WaitGroup

	// Commands receives every text frame a client sent (dropped if full).
	Commands chan string
	// Connects counts accepted WebSocket clients.
	Connects atomic.Int64
}

type boardClient struct {
	mu   sync.Mutex // ESPAsyncWebServer queues writes per client; one writer at a time here
	conn *websocket.Conn
}

func (c *boardClient) write(mt int, b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteMessage(mt, b)
}

// NewBoard starts a tutorial board on 127.0.0.1:0; it is killed at cleanup.
func NewBoard(t testing.TB) *Board {
	b := &Board{t: t, addr: "127.0.0.1:0", clients: map[*boardClient]struct{}{}, Commands: make(chan string, 64)}
	b.Restart()
	t.Cleanup(b.Kill)
	return b
}

// URL is the board's WebSocket URL, ws://127.0.0.1:PORT/ws.
func (b *Board) URL() string { return "ws://" + b.addr + "/ws" }

// Addr is the board's host:port.
func (b *Board) Addr() string { return b.addr }

// Restart starts the board's server again on the same address (after Kill);
// the LED and the counter survive, as if the sketch kept them in RTC memory.
func (b *Board) Restart() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln != nil {
		return
	}
	var ln net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", b.addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the port may linger for a moment after Kill
	}
	if err != nil {
		b.t.Fatalf("board listen %s: %v", b.addr, err)
	}
	b.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", b.serveWS)
	b.ln = ln
	b.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	srv := b.srv
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		_ = srv.Serve(ln)
	}()
}

// Kill stops the board like a pulled plug on a wired board: the listener and
// every connection close at once, with no close frame. It waits for the
// board's goroutines.
func (b *Board) Kill() {
	b.mu.Lock()
	if b.ln != nil {
		b.srv.Close()
		b.ln = nil
	}
	for c := range b.clients {
		c.conn.NetConn().Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// Clients is the number of connected WebSocket clients.
func (b *Board) Clients() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.clients)
}

// LED reports the LED state.
func (b *Board) LED() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.led
}

// Tick advances the counter and broadcasts it, as the sketch does each second.
func (b *Board) Tick() int {
	b.mu.Lock()
	b.count++
	n := b.count
	b.mu.Unlock()
	b.TextAll(websocket.TextMessage, Frame("count", n))
	return n
}

// TextAll sends one frame of type mt to every client.
func (b *Board) TextAll(mt int, data []byte) {
	b.mu.Lock()
	cs := make([]*boardClient, 0, len(b.clients))
	for c := range b.clients {
		cs = append(cs, c)
	}
	b.mu.Unlock()
	for _, c := range cs {
		_ = c.write(mt, data)
	}
}

func (b *Board) ledFrame() []byte {
	s := "LED OFF"
	if b.led {
		s = "LED ON"
	}
	return Frame("ledStatus", s)
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (b *Board) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &boardClient{conn: conn}
	b.mu.Lock()
	if b.ln == nil { // killed meanwhile
		b.mu.Unlock()
		conn.Close()
		return
	}
	b.clients[c] = struct{}{}
	b.wg.Add(1)
	hello := [][]byte{Frame("count", b.count), b.ledFrame()}
	b.mu.Unlock()
	b.Connects.Add(1)
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		delete(b.clients, c)
		b.mu.Unlock()
		conn.Close()
	}()
	for _, f := range hello { // WS_EVT_CONNECT: state to the new client
		if c.write(websocket.TextMessage, f) != nil {
			return
		}
	}
	for {
		mt, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if mt != websocket.TextMessage {
			continue
		}
		select {
		case b.Commands <- string(data):
		default:
		}
		if string(data) == "toggle" { // strcmp((char*)data, "toggle") == 0
			b.mu.Lock()
			b.led = !b.led
			f := b.ledFrame()
			b.mu.Unlock()
			b.TextAll(websocket.TextMessage, f)
		}
	}
}

// Frame is {"label":L,"value":V} as the sketch sends it.
func Frame(label string, value any) []byte {
	v, _ := json.Marshal(value)
	l, _ := json.Marshal(label)
	return []byte(fmt.Sprintf(`{"label":%s,"value":%s}`, l, v))
}

// Proxy is a TCP proxy on 127.0.0.1 that can blackhole its connections: bytes
// in both directions are swallowed while nothing is closed, as when a board
// loses power or Wi-Fi.
type Proxy struct {
	target string
	ln     net.Listener
	black  atomic.Bool

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewProxy forwards 127.0.0.1:PORT to target; it is closed at cleanup.
func NewProxy(t testing.TB, target string) *Proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &Proxy{target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Blackhole starts (true) or stops (false) swallowing bytes.
func (p *Proxy) Blackhole(on bool) { p.black.Store(on) }

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		if !p.track(in) || !p.track(out) {
			in.Close()
			out.Close()
			continue
		}
		p.wg.Add(2)
		go p.pipe(out, in)
		go p.pipe(in, out)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.black.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			// Pass a close on, as a real network would (unless blackholed).
			if !p.black.Load() {
				dst.Close()
			}
			return
		}
	}
}

// Close closes the listener and every connection and waits for the pipes.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// WaitFor polls cond every few milliseconds until it holds or within passes.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Next returns the next message on sub that match accepts, failing the test
// if none arrives within the duration.
func Next(t testing.TB, sub *gateway.Subscription, within time.Duration, what string, match func(*gateway.Message) bool) *gateway.Message {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case m := <-sub.C:
			if match(m) {
				return m
			}
		case <-sub.Done():
			t.Fatalf("subscription ended while waiting for %s: %v", what, sub.Err())
		case <-timer.C:
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
	}
}

// Event matches an event of device with label (and value, when not nil).
func Event(device, label string, value any) func(*gateway.Message) bool {
	var want []byte
	if value != nil {
		want, _ = json.Marshal(value)
	}
	return func(m *gateway.Message) bool {
		return m.Kind == gateway.KindEvent && m.Device == device && m.Label == label &&
			(want == nil || bytes.Equal(m.Value, want))
	}
}

// Status matches a status message of device with the given online state.
func Status(device string, online bool) func(*gateway.Message) bool {
	return func(m *gateway.Message) bool {
		return m.Kind == gateway.KindStatus && m.Device == device && m.Online == online
	}
}

// IsCloseCode reports whether err is a close frame with code.
func IsCloseCode(err error, code int) bool {
	var ce *websocket.CloseError
	return errors.As(err, &ce) && ce.Code == code
}
