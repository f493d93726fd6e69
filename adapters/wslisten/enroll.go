package wslisten

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/adapters/internal/boardlink"
	"github.com/esp32gw/esp32gw/gateway"
)

// Enroller serves /device/{id} for ids that are no ws-listen device
// (DESIGN.md, Fleet: enrollment). A board presenting the enroll token
// (Authorization: Bearer or ?token=) under an unknown id is held in the
// pending registry while its connection stays up: the usual board link
// (keepalive, 64 KiB frames), but its readings go nowhere and only its $
// attributes are kept, bounded by the registry. Adoption sends it its new id
// and token and closes the connection with 1000.
//
// Anything else is refused as the Listener refuses it: a wrong or missing
// token 401; the enroll token under the id of a configured device, or of a
// pending id already adopted, 403.
//
// Each pending board runs in its HTTP handler's goroutine plus the link's
// reader. Run owns them: when its context ends every pending connection
// closes (1001) and Run returns once their goroutines have exited.
type Enroller struct {
	o        EnrollOptions
	refuse   *Listener // knows no device: the refusal path (401, rate-limited logs)
	upgrader websocket.Upgrader

	mu  sync.Mutex
	ctx context.Context // Run's context; nil before Run and after it returned
	wg  sync.WaitGroup  // every ServeHTTP that upgraded
}

// EnrollOptions configure an Enroller.
type EnrollOptions struct {
	Token   string           // the enroll token; "" refuses every board
	Pending *gateway.Pending // where pending boards are held
	// Lookup says whether id is taken: configured is the device holding it,
	// or adoptedAs the device adopted from a board that enrolled as id.
	// Safe for concurrent use.
	Lookup func(id string) (configured, adoptedAs string)
	Log    *slog.Logger
	Link   boardlink.Options // timing; tests shorten it
}

// NewEnroller returns an Enroller; it accepts boards once Run has begun.
func NewEnroller(o EnrollOptions) *Enroller {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Lookup == nil {
		o.Lookup = func(string) (string, string) { return "", "" }
	}
	o.Link.Transport, o.Link.Log = gateway.TransportWSListen, o.Log
	return &Enroller{
		o:      o,
		refuse: New(nil, o.Log),
		upgrader: websocket.Upgrader{
			HandshakeTimeout: boardlink.WriteWait,
			ReadBufferSize:   4096,
			WriteBufferSize:  1024,
			// Boards are authenticated by the token, not by Origin.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
}

// Run accepts boards until ctx ends, then waits for every pending
// connection to close.
func (e *Enroller) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.ctx != nil {
		e.mu.Unlock()
		return fmt.Errorf("wslisten: enroller Run called twice")
	}
	e.ctx = ctx
	e.mu.Unlock()
	<-ctx.Done()
	e.wg.Wait()
	return nil
}

// ServeHTTP holds a board dialing /device/{id} with the enroll token as pending.
func (e *Enroller) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/device/")
	if e.o.Token == "" || e.o.Pending == nil || !tokenOK(r, e.o.Token) {
		e.refuse.ServeHTTP(w, r) // 401, as for any unknown id or bad token
		return
	}
	if !gateway.ValidID(id) || id == "bridge" {
		// "bridge" names the gateway's own MQTT topics: adoption refuses it too.
		http.Error(w, "a board enrolls under an id matching [a-z0-9_-]+ (at most 64 characters), other than bridge", http.StatusBadRequest)
		return
	}
	if configured, adoptedAs := e.o.Lookup(id); configured != "" || adoptedAs != "" {
		msg := fmt.Sprintf("device %s is configured: the enroll token does not open its link", id)
		if adoptedAs != "" {
			msg = fmt.Sprintf("already adopted as %s: dial /device/%s with the token the gateway sent", adoptedAs, adoptedAs)
		}
		e.o.Log.Debug("enrollment refused", "device", id, "addr", r.RemoteAddr, "why", msg)
		http.Error(w, msg, http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "boards connect with GET and a WebSocket upgrade", http.StatusMethodNotAllowed)
		return
	}
	e.mu.Lock()
	if e.ctx == nil || e.ctx.Err() != nil {
		e.mu.Unlock()
		http.Error(w, "gateway is not accepting boards right now", http.StatusServiceUnavailable)
		return
	}
	runCtx := e.ctx
	e.wg.Add(1)
	e.mu.Unlock()
	defer e.wg.Done()

	conn, err := e.upgrader.Upgrade(w, r, nil)
	if err != nil {
		e.o.Log.Debug("enrolling board: upgrade failed", "device", id, "addr", r.RemoteAddr, "err", err)
		return
	}
	ctx, cancel := context.WithCancelCause(runCtx)
	defer cancel(nil)
	sink := &pendingSink{pending: e.o.Pending}
	o := e.o.Link
	o.Device, o.Format, o.Addr = id, gateway.FormatText, r.RemoteAddr
	link, err := boardlink.Attach(sink, conn, o)
	if err != nil { // a pendingSink never refuses
		conn.Close()
		return
	}
	pl := &pendingLink{send: sink.send, cancel: cancel}
	sink.entry = e.o.Pending.Enroll(id, r.RemoteAddr, pl)
	e.o.Log.Info("board waiting for adoption", "device", id, "addr", r.RemoteAddr)

	_ = link.Run(ctx)
	e.o.Pending.Leave(sink.entry)
	e.o.Log.Info("pending board left", "device", id, "addr", r.RemoteAddr, "reason", link.Reason())
}

// pendingSink is the core as a pending board's link sees it: readings go
// nowhere, attributes to the registry.
type pendingSink struct {
	pending *gateway.Pending
	send    gateway.SendFunc
	entry   *gateway.PendingEntry // set before the link runs
	device  string
}

func (s *pendingSink) Attach(device string, send gateway.SendFunc) (gateway.Link, error) {
	s.device, s.send = device, send
	return s, nil
}

func (s *pendingSink) SetOfflineReason(string, string) {}

// The gateway.Link a pending board's boardlink reports to.
func (s *pendingSink) Device() string { return s.device }
func (s *pendingSink) Publish(rs ...gateway.Reading) {
	s.pending.Attrs(s.entry, rs)
}
func (s *pendingSink) Log(string)             {}
func (s *pendingSink) Malformed() bool        { return false }
func (s *pendingSink) Seen()                  {}
func (s *pendingSink) SetAddr(string, string) {}
func (s *pendingSink) Detach(string)          {}

// pendingLink is an enrolled board's connection for the registry.
type pendingLink struct {
	send   gateway.SendFunc
	cancel context.CancelCauseFunc
}

// adoptedFrame is the one frame an adopted board receives on its pending
// connection (DESIGN.md, Fleet).
func adoptedFrame(id, token string) []byte {
	b, _ := json.Marshal(struct {
		Type  string `json:"type"`
		ID    string `json:"id"`
		Token string `json:"token"`
	}{"adopted", id, token})
	return b
}

func (p *pendingLink) Adopt(ctx context.Context, id, token string) error {
	ctx, cancel := context.WithTimeout(ctx, gateway.CommandTimeout)
	defer cancel()
	if err := p.send(ctx, gateway.Command{Value: adoptedFrame(id, token), Frame: true}); err != nil {
		return fmt.Errorf("%w: %v", gateway.ErrBoardGone, err)
	}
	p.cancel(&boardlink.CloseReason{Code: websocket.CloseNormalClosure, Text: "adopted as " + id})
	return nil
}

func (p *pendingLink) Close(code int, reason string) {
	p.cancel(&boardlink.CloseReason{Code: code, Text: reason})
}
