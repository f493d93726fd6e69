// Package wslisten accepts boards that dial the gateway at
// GET /device/{id}, for every ws-listen device. A board proves itself with
// its device token (Authorization: Bearer TOKEN, or ?token=TOKEN); Origin is
// ignored, since Arduino WebSocket clients send "Origin: file://". The link
// itself (keepalive, limits, commands) is adapters/internal/boardlink.
//
// Each board link runs in the HTTP handler's goroutine plus the link's
// reader. Run owns them all: when its context ends it closes every board
// link with a close frame and returns only after their goroutines exited.
package wslisten

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/adapters/internal/boardlink"
	"github.com/esp32gw/esp32gw/gateway"
)

// The core starts and stops a Listener through gateway.Transport.
var _ gateway.Transport = (*Listener)(nil)

// refusalLogEvery is how often a refused id is logged at Warn.
const refusalLogEvery = time.Minute

// Listener serves /device/{id} for every ws-listen device and is their Transport.
type Listener struct {
	devs map[string]gateway.DeviceConfig
	log  *slog.Logger
	link boardlink.Options // timing for every link; tests shorten it

	upgrader websocket.Upgrader

	mu      sync.Mutex
	sink    gateway.Sink
	ctx     context.Context // Run's context; nil before Run and after it returned
	active  map[string]*session
	refused map[string]time.Time // when a refusal for an id was last logged at Warn
	// refusals bounds Warn lines for refusals of all ids together (a
	// stranger trying many ids): one per gateway.LogEvery, with a count.
	refusals gateway.LogLimiter
	wg       sync.WaitGroup // every ServeHTTP that upgraded
}

// session is one board link, cancelled with a boardlink.CloseReason.
type session struct {
	cancel context.CancelCauseFunc
	addr   string
}

// New returns a Listener for the ws-listen devices.
func New(devs []gateway.DeviceConfig, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Listener{
		devs:    map[string]gateway.DeviceConfig{},
		log:     log,
		active:  map[string]*session{},
		refused: map[string]time.Time{},
		link:    boardlink.Options{Transport: gateway.TransportWSListen, Log: log},
		upgrader: websocket.Upgrader{
			HandshakeTimeout: boardlink.WriteWait,
			ReadBufferSize:   4096,
			WriteBufferSize:  1024,
			// Boards are authenticated by their token, not by Origin:
			// arduinoWebSockets sends "Origin: file://".
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	for _, d := range devs {
		if d.CommandFormat == "" {
			d.CommandFormat = gateway.FormatText
		}
		l.devs[d.ID] = d
	}
	return l
}

// Run implements gateway.Transport: it holds the sink until ctx ends, then
// closes every board link (close 1001 "gateway shutting down") and returns
// once their goroutines have exited.
func (l *Listener) Run(ctx context.Context, s gateway.Sink) error {
	l.mu.Lock()
	if l.ctx != nil {
		l.mu.Unlock()
		return fmt.Errorf("wslisten: Run called twice")
	}
	l.sink, l.ctx = s, ctx
	l.mu.Unlock()

	<-ctx.Done() // every link's context derives from ctx: they are closing now

	l.mu.Lock()
	l.sink = nil // refuse new boards (503) from here on
	l.mu.Unlock()
	l.wg.Wait()
	return nil
}

// ServeHTTP upgrades a board at /device/{id}: 401 before the upgrade for an
// unknown id or a bad or missing token, 503 while the gateway is not running
// board links (before Run, or shutting down).
func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/device/")
	dev, known := l.devs[id]
	// Compare against a token even for unknown ids, so timing says nothing
	// about which ids exist.
	want := dev.Token
	if !known {
		want = "\x00unknown device"
	}
	if !tokenOK(r, want) || !known {
		lvl, args := slog.LevelDebug, []any{"device", gateway.Truncate(id, 64), "transport", gateway.TransportWSListen, "addr", r.RemoteAddr}
		if l.firstRefusal(id) {
			if n, ok := l.refusals.Allow(time.Now()); ok {
				lvl, args = slog.LevelWarn, append(args, "suppressed", n)
			}
		}
		l.log.Log(r.Context(), lvl, "board refused: unknown device or bad token", args...)
		w.Header().Set("WWW-Authenticate", `Bearer realm="esp32gw device"`)
		http.Error(w, "unknown device or bad token", http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "boards connect with GET and a WebSocket upgrade", http.StatusMethodNotAllowed)
		return
	}

	l.mu.Lock()
	if l.sink == nil || l.ctx == nil || l.ctx.Err() != nil {
		l.mu.Unlock()
		http.Error(w, "gateway is not accepting boards right now", http.StatusServiceUnavailable)
		return
	}
	runCtx, sink := l.ctx, l.sink
	l.wg.Add(1)
	l.mu.Unlock()
	defer l.wg.Done()

	conn, err := l.upgrader.Upgrade(w, r, nil) // writes the HTTP error itself
	if err != nil {
		l.log.Debug("board upgrade failed", "device", id, "addr", r.RemoteAddr, "err", err)
		return
	}
	o := l.link
	o.Device, o.Format, o.Addr = id, dev.CommandFormat, r.RemoteAddr
	ctx, cancel := context.WithCancelCause(runCtx)
	me := &session{cancel: cancel, addr: r.RemoteAddr}
	// The hub attach and the swap into l.active are one critical section
	// (the hub's Attach never blocks), so the order in which links are
	// attached is the order in which they become active: the link the hub
	// holds is always the active one, and every older one is cancelled.
	// Apart, two simultaneous dial-ins could interleave so that the newer
	// link is cancelled, detaches the device, and the older socket stays up
	// on a dead hub link.
	l.mu.Lock()
	link, err := boardlink.Attach(sink, conn, o)
	var old *session
	if err == nil {
		old = l.active[id]
		l.active[id] = me
	}
	l.mu.Unlock()
	if err != nil {
		cancel(nil)
		l.log.Error("board link refused by the hub", "device", id, "addr", r.RemoteAddr, "err", err)
		msg := websocket.FormatCloseMessage(websocket.CloseInternalServerErr, "gateway refused the device")
		_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(boardlink.CloseWait))
		conn.Close()
		return
	}

	// The new link is attached: only now close the one it replaces, so the
	// device never flickers offline.
	if old != nil {
		l.log.Warn("board connected again: replacing its previous link", "device", id, "addr", r.RemoteAddr, "previous", old.addr)
		old.cancel(&boardlink.CloseReason{Code: websocket.CloseNormalClosure, Text: "replaced by a new connection from the same device"})
	} else {
		l.log.Info("board connected", "device", id, "addr", r.RemoteAddr)
	}

	_ = link.Run(ctx)
	why := context.Cause(ctx) // nil: the link ended by itself
	cancel(nil)

	l.mu.Lock()
	if l.active[id] == me {
		delete(l.active, id)
	}
	l.mu.Unlock()
	if why == nil {
		l.log.Warn("board link lost; waiting for the board to dial again", "device", id, "addr", r.RemoteAddr, "reason", link.Reason())
	}
}

// firstRefusal reports whether id was not refused in the last refusalLogEvery,
// so a misconfigured board retrying every few seconds logs one warning, not
// one per attempt.
func (l *Listener) firstRefusal(id string) bool {
	id = gateway.Truncate(id, 64)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if t, ok := l.refused[id]; ok && now.Sub(t) < refusalLogEvery {
		return false
	}
	if len(l.refused) >= 256 { // bound the map whatever ids strangers try
		clear(l.refused)
	}
	l.refused[id] = now
	return true
}

// tokenOK reports whether r presents want, in constant time.
func tokenOK(r *http.Request, want string) bool {
	got := ""
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		got = strings.TrimSpace(h[7:])
	} else {
		got = r.URL.Query().Get("token")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
