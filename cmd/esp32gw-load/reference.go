package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// The reference broadcaster is the naive Go program issue 12 measures
// esp32gw against: one WebSocket server that links to the boards, encodes
// each reading once as a /ws event, wraps it in a gorilla PreparedMessage and
// hands it to every browser's writer goroutine through a channel. Nothing
// else: no history, no ?since= (a reconnecting browser starts over), no
// pings. It runs in its own process (esp32gw-load -serve-reference SPEC) so
// its CPU and memory are read from /proc like the gateway's.

// refSpec is what the reference serves; the load tool passes it as JSON.
type refSpec struct {
	Listen string     `json:"listen"` // 127.0.0.1:PORT
	Token  string     `json:"token"`  // browsers present it as ?token= or Bearer
	Boards []refBoard `json:"boards"`
}

// refBoard is one board: dialled at URL (ws-dial), or dialling in at
// /device/ID with Token (ws-listen).
type refBoard struct {
	ID    string `json:"id"`
	URL   string `json:"url,omitempty"`
	Token string `json:"token,omitempty"`
}

const (
	refQueue     = 256 // frames per browser; a browser that falls behind is closed with 1013
	refWriteWait = 5 * time.Second
)

// refServer is the reference's state. mu guards browsers, seq and links.
type refServer struct {
	spec     refSpec
	mu       sync.Mutex
	browsers map[*refBrowser]struct{}
	seq      int64
	links    map[string]*refLink
	closed   bool           // shutting down: no new goroutines
	wg       sync.WaitGroup // board links and browser writers
}

// refBrowser is one browser; whoever closes send under mu sets code first.
type refBrowser struct {
	send chan *websocket.PreparedMessage
	code int // close code for the writer to send: 1013 too slow, 1001 shutdown, 0 none
}

// track counts a new goroutine in wg unless the server is shutting down.
func (s *refServer) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// refLink is a board link; mu orders command writes from browsers.
type refLink struct {
	mu sync.Mutex
	ws *websocket.Conn
}

var refUpgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	CheckOrigin:     func(*http.Request) bool { return true }, // a benchmark on loopback; the token is checked
}

// serveReference runs the reference until ctx ends.
func serveReference(ctx context.Context, spec refSpec) error {
	s := &refServer{spec: spec, browsers: map[*refBrowser]struct{}{}, links: map[string]*refLink{}}
	ln, err := net.Listen("tcp", spec.Listen)
	if err != nil {
		return fmt.Errorf("reference: listen %s: %w", spec.Listen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", s.handleBrowser)
	mux.HandleFunc("/device/", s.handleBoard)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, b := range spec.Boards {
		if b.URL != "" {
			s.wg.Go(func() { s.dialBoard(ctx, b) })
		}
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	cancel()
	srv.Close() // hijacked connections are closed by their goroutines below
	s.mu.Lock()
	s.closed = true
	for b := range s.browsers {
		delete(s.browsers, b)
		b.code = websocket.CloseGoingAway
		close(b.send)
	}
	for _, l := range s.links {
		l.ws.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// dialBoard keeps a ws-dial link up until ctx ends.
func (s *refServer) dialBoard(ctx context.Context, b refBoard) {
	for ctx.Err() == nil {
		ws, resp, err := websocket.DefaultDialer.DialContext(ctx, b.URL, nil)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err == nil {
			s.readBoard(ctx, b.ID, ws)
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// handleBoard accepts a ws-listen board at /device/ID.
func (s *refServer) handleBoard(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/device/")
	want := ""
	for _, b := range s.spec.Boards {
		if b.ID == id && b.URL == "" {
			want = b.Token
		}
	}
	if want == "" || !tokenMatches(r, want) {
		http.Error(w, "unknown board or bad token", http.StatusUnauthorized)
		return
	}
	ws, err := refUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	if !s.track() {
		ws.Close()
		return
	}
	defer s.wg.Done()
	s.readBoard(r.Context(), id, ws)
}

// readBoard broadcasts every reading of one board link until it ends.
func (s *refServer) readBoard(ctx context.Context, id string, ws *websocket.Conn) {
	l := &refLink{ws: ws}
	s.mu.Lock()
	s.links[id] = l
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer func() {
		stop()
		ws.Close()
		s.mu.Lock()
		if s.links[id] == l {
			delete(s.links, id)
		}
		s.mu.Unlock()
	}()
	ws.SetReadLimit(64 << 10)
	quoted, _ := json.Marshal(id)
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var in struct {
			Label string          `json:"label"`
			Value json.RawMessage `json:"value"`
		}
		if json.Unmarshal(data, &in) != nil || in.Label == "" || len(in.Value) == 0 {
			continue
		}
		label, _ := json.Marshal(in.Label)
		s.mu.Lock()
		s.seq++
		ev := make([]byte, 0, 96+len(data))
		ev = append(ev, `{"type":"event","device":`...)
		ev = append(ev, quoted...)
		ev = append(ev, `,"label":`...)
		ev = append(ev, label...)
		ev = append(ev, `,"value":`...)
		ev = append(ev, in.Value...)
		ev = append(ev, `,"seq":`...)
		ev = strconv.AppendInt(ev, s.seq, 10)
		ev = append(ev, '}')
		pm, err := websocket.NewPreparedMessage(websocket.TextMessage, ev)
		if err == nil {
			for b := range s.browsers {
				select {
				case b.send <- pm:
				default: // too slow: its writer closes it with 1013
					delete(s.browsers, b)
					b.code = websocket.CloseTryAgainLater
					close(b.send)
				}
			}
		}
		s.mu.Unlock()
	}
}

// handleBrowser serves /ws: a snapshot line, then every event; commands
// are forwarded to the board as their value's text.
func (s *refServer) handleBrowser(w http.ResponseWriter, r *http.Request) {
	if !tokenMatches(r, s.spec.Token) {
		http.Error(w, "missing or wrong token", http.StatusUnauthorized)
		return
	}
	ws, err := refUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	b := &refBrowser{send: make(chan *websocket.PreparedMessage, refQueue)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ws.Close()
		return
	}
	snap := fmt.Appendf(nil, `{"type":"snapshot","seq":%d,"devices":[]}`, s.seq)
	pm, _ := websocket.NewPreparedMessage(websocket.TextMessage, snap)
	b.send <- pm
	s.browsers[b] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() { // the writer: owns every write to ws
		defer s.wg.Done()
		defer ws.Close()
		for pm := range b.send {
			ws.SetWriteDeadline(time.Now().Add(refWriteWait))
			if ws.WritePreparedMessage(pm) != nil {
				s.drop(b)
				for range b.send {
				}
				return
			}
		}
		if b.code != 0 {
			ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(b.code, ""), time.Now().Add(time.Second))
		}
	}()
	ws.SetReadLimit(16 << 10)
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			s.drop(b)
			return
		}
		var c struct {
			Type   string          `json:"type"`
			Device string          `json:"device"`
			Value  json.RawMessage `json:"value"`
		}
		if json.Unmarshal(data, &c) != nil || c.Type != "command" {
			continue
		}
		text := string(c.Value)
		var str string
		if json.Unmarshal(c.Value, &str) == nil {
			text = str
		}
		s.mu.Lock()
		l := s.links[c.Device]
		s.mu.Unlock()
		if l != nil {
			l.mu.Lock()
			l.ws.SetWriteDeadline(time.Now().Add(refWriteWait))
			l.ws.WriteMessage(websocket.TextMessage, []byte(text))
			l.mu.Unlock()
		}
	}
}

// drop unregisters a browser (once): its writer ends.
func (s *refServer) drop(b *refBrowser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.browsers[b]; ok {
		delete(s.browsers, b)
		close(b.send)
	}
}

// tokenMatches checks ?token= or Authorization: Bearer in constant time.
func tokenMatches(r *http.Request, want string) bool {
	got := r.URL.Query().Get("token")
	if h, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		got = h
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
