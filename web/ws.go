package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/gateway"
)

// Browser connection limits (DESIGN.md "Numbers users can rely on").
const (
	browserReadLimit  = 16 << 10         // bytes per browser message; over it: close 1009
	browserWriteWait  = 5 * time.Second  // per write; a browser that cannot take a frame this fast is dropped
	browserPongWait   = 35 * time.Second // read deadline, extended by every pong or message
	browserPingPeriod = 25 * time.Second // must be shorter than browserPongWait
	slowCloseWait     = 10 * time.Second // a slow browser's time to read its backlog and answer 1013
	// Commands per socket: the same rate as one device takes
	// (gateway.CommandRate after a burst of gateway.CommandBurst); at most
	// 16 waiting for their boards at once.
	maxPendingCommands   = 16
	maxBrowserConnsTotal = 2000 // default of limits.browsers: beyond it, new upgrades get 503
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:    4096,
	WriteBufferSize:   4096,
	HandshakeTimeout:  10 * time.Second,
	EnableCompression: false,
	// The handlers check the Origin (and answer 403) before upgrading; this
	// repeats the check so the upgrader can never be reached without it.
	CheckOrigin: func(r *http.Request) bool { return r.Context().Value(originCheckedKey{}) == true },
}

type originCheckedKey struct{}

// admit checks Origin (403) and token (401) before any upgrade.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	if !s.originAllowed(r) {
		s.log.Warn("cross-site WebSocket refused", "addr", r.RemoteAddr, "origin", r.Header.Get("Origin"))
		writeError(w, http.StatusForbidden, "cross-site WebSocket refused: add the origin to http.allowed_origins")
		return r, false
	}
	if !s.auth.ok(r, true) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="esp32gw"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong token: use ?token=TOKEN, Authorization: Bearer TOKEN or log in at /")
		return r, false
	}
	if s.browsers.Load() >= s.maxBrowsers {
		writeError(w, http.StatusServiceUnavailable, "too many browser connections")
		return r, false
	}
	return r.WithContext(context.WithValue(r.Context(), originCheckedKey{}, true)), true
}

// handleWS serves GET /ws: a snapshot (or the missed events after ?since=),
// then live events; commands and subscribe filters from the browser.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	r, ok := s.admit(w, r)
	if !ok {
		return
	}
	since := int64(-1)
	if v := r.URL.Query().Get("since"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 63); err == nil {
			since = int64(n)
		}
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	sub, first, err := s.hub.Subscribe(since, 0)
	if err != nil {
		closeNow(conn, websocket.CloseGoingAway, "gateway shutting down")
		return
	}
	c := s.newConn(conn, sub, renderBrowser)
	c.handle = c.handleBrowserMessage
	c.run(first)
}

// renderBrowser sends every message as its shared, encoded-once frame.
func renderBrowser(m *gateway.Message) (*websocket.PreparedMessage, bool) {
	pm, _ := m.Prepared(func(b []byte) any {
		p, err := websocket.NewPreparedMessage(websocket.TextMessage, b)
		if err != nil {
			return (*websocket.PreparedMessage)(nil)
		}
		return p
	}).(*websocket.PreparedMessage)
	return pm, pm != nil
}

// conn is one browser WebSocket: the handler goroutine reads, one writer
// goroutine owns every write, command goroutines are bounded by sem and
// waited for before the connection is released.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	sub    *gateway.Subscription
	render func(*gateway.Message) (*websocket.PreparedMessage, bool)
	handle func(data []byte)

	ctx      context.Context // ends when the connection ends; cancels pending commands
	cancel   context.CancelFunc
	replies  chan []byte   // acks and errors for the writer
	closeReq chan closeMsg // the reader asks the writer to close
	wrote    chan struct{} // closed when the writer has returned
	// deadlineMu orders the reader's deadline extensions with the writer's
	// end, so a lingering browser's deadline stays slowCloseWait.
	deadlineMu sync.Mutex
	cmds       sync.WaitGroup // command goroutines
	sem        chan struct{}

	commands gateway.TokenBucket // command rate limit; reader goroutine only
	logsOn   bool                // the browser subscribed to console lines; reader goroutine only
	quiet    bool                // compatibility dialect: binary frames are ignored, not answered
}

type closeMsg struct {
	code   int
	reason string
}

func (s *Server) newConn(ws *websocket.Conn, sub *gateway.Subscription, render func(*gateway.Message) (*websocket.PreparedMessage, bool)) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{
		s: s, ws: ws, sub: sub, render: render, ctx: ctx, cancel: cancel,
		replies: make(chan []byte, 32), closeReq: make(chan closeMsg, 1),
		wrote: make(chan struct{}), sem: make(chan struct{}, maxPendingCommands),
		commands: gateway.NewTokenBucket(gateway.CommandRate, gateway.CommandBurst),
	}
}

// run serves the connection until it ends and releases everything it holds.
func (c *conn) run(first []*gateway.Message) {
	if !c.s.track() {
		closeNow(c.ws, websocket.CloseGoingAway, "gateway shutting down")
		c.cancel()
		c.sub.Close()
		return
	}
	defer c.s.conns.Done()
	defer c.s.unlinger(c)
	c.s.browsers.Add(1)
	defer c.s.browsers.Add(-1)

	go c.writeLoop(first)
	c.readLoop()
	// The reader is done: let the writer finish, stop pending commands, release.
	select {
	case c.closeReq <- closeMsg{websocket.CloseNormalClosure, ""}:
	default:
	}
	<-c.wrote
	c.cancel()
	c.cmds.Wait()
	c.sub.Close()
	c.ws.Close()
}

func (c *conn) readLoop() {
	c.ws.SetReadDeadline(time.Now().Add(browserPongWait))
	c.ws.SetPongHandler(func(string) error {
		c.alive()
		return nil
	})
	for {
		mt, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		// Read at most one byte past the limit so an oversized message costs
		// no more memory than the limit, and say why we close.
		data, err := io.ReadAll(io.LimitReader(r, browserReadLimit+1))
		if err != nil {
			return
		}
		if len(data) > browserReadLimit {
			c.requestClose(websocket.CloseMessageTooBig, fmt.Sprintf("message over %d bytes", browserReadLimit))
			return
		}
		if !c.alive() {
			continue // closing: only the browser's close frame matters now
		}
		if mt != websocket.TextMessage {
			if !c.quiet {
				c.reply(gateway.ErrorFrame(nil, "binary messages are not supported: send JSON text"))
			}
			continue
		}
		if !utf8.Valid(data) {
			c.requestClose(websocket.CloseInvalidFramePayloadData, "invalid UTF-8 in text message")
			return
		}
		c.handle(data)
	}
}

// alive extends the read deadline after a sign of life from the browser,
// unless the writer has ended (a slow browser given time to answer its close
// frame), so a browser that keeps talking cannot keep a closed connection open.
func (c *conn) alive() bool {
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	select {
	case <-c.wrote:
		return false
	default:
		c.ws.SetReadDeadline(time.Now().Add(browserPongWait))
		return true
	}
}

func (c *conn) requestClose(code int, reason string) {
	select {
	case c.closeReq <- closeMsg{code, reason}:
	default:
	}
}

// reply queues an ack or error (gateway.AckFrame, gateway.ErrorFrame) or a
// recent console line; it waits (stopping this browser's reading,
// never anyone else's) when the browser does not read its replies.
func (c *conn) reply(b []byte) {
	select {
	case c.replies <- b:
	case <-c.wrote:
	}
}

func (c *conn) writeLoop(first []*gateway.Message) {
	// However the writer ends, the connection ends with it, so the reader
	// (and with it the handler) returns at once instead of at its deadline;
	// except after closing a slow browser, which is given slowCloseWait to
	// read what is still buffered for it and answer the close frame. (Runs
	// after wrote is closed, so the reader no longer extends its deadline.)
	lingering := false
	defer func() {
		// Register the linger before wrote is closed: run unlingers only
		// after it has seen wrote closed, so no entry outlives its conn.
		keep := lingering && c.s.linger(c)
		c.deadlineMu.Lock()
		close(c.wrote)
		if keep {
			c.ws.SetReadDeadline(time.Now().Add(slowCloseWait))
		}
		c.deadlineMu.Unlock()
		if !keep {
			c.ws.Close()
		}
	}()
	ping := time.NewTicker(browserPingPeriod)
	defer ping.Stop()
	queue := newSendQueue(c.ws.UnderlyingConn())
	write := func(m *gateway.Message) bool {
		pm, ok := c.render(m)
		if !ok {
			return true
		}
		if queue != nil && !queue.room(frameBound(m), browserWriteWait, c.sub.Done()) {
			select {
			case <-c.sub.Done(): // shutdown, or the hub found it behind (and counted it)
				lingering = c.closeForSubscription()
				return false
			default:
			}
			// The browser stopped taking data: close it while the close
			// frame still fits, rather than block on a frame and cut it in two.
			c.s.hub.Counters().SlowConsumers.Add(1)
			lingering = c.closeSlow()
			return false
		}
		c.ws.SetWriteDeadline(time.Now().Add(browserWriteWait))
		if err := c.ws.WritePreparedMessage(pm); err != nil {
			return false
		}
		c.s.hub.Counters().MessagesOut.Add(1)
		return true
	}
	for _, m := range first {
		if !write(m) {
			return
		}
	}
	for {
		// A subscription that ended (too slow, shutdown) wins over queued messages.
		select {
		case <-c.sub.Done():
			lingering = c.closeForSubscription()
			return
		default:
		}
		select {
		case m := <-c.sub.C:
			if !write(m) {
				return
			}
		case b := <-c.replies:
			c.ws.SetWriteDeadline(time.Now().Add(browserWriteWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				return
			}
			c.s.hub.Counters().MessagesOut.Add(1)
		case <-ping.C:
			c.ws.SetWriteDeadline(time.Now().Add(browserWriteWait))
			if err := c.ws.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		case cm := <-c.closeReq:
			closeNow(c.ws, cm.code, cm.reason)
			return
		case <-c.sub.Done():
			lingering = c.closeForSubscription()
			return
		}
	}
}

// closeForSubscription closes the browser for why its subscription ended;
// true means the connection lingers for the browser's answer (see closeSlow).
func (c *conn) closeForSubscription() bool {
	switch err := c.sub.Err(); {
	case errors.Is(err, gateway.ErrSlowConsumer):
		return c.closeSlow()
	case errors.Is(err, gateway.ErrShutdown):
		closeNow(c.ws, websocket.CloseGoingAway, "gateway shutting down")
	default:
		closeNow(c.ws, websocket.CloseNormalClosure, "")
	}
	return false
}

// frameBound is at least the size of m's frame as any renderer writes it:
// the /ws frame (Data) or a compatibility frame (label and value, also the
// only fields of the compatibility endpoint's initial messages), plus the
// largest WebSocket header. Over-estimating only costs an early look at the
// socket's backlog.
func frameBound(m *gateway.Message) int {
	return len(m.Data) + len(m.Label) + len(m.Value) + 32
}

// closeSlow closes a browser that fell behind with 1013; it resumes with ?since=.
//
// The TCP connection stays open (the writer returns, the reader waits at
// most slowCloseWait for the browser's close frame): closed at once, the
// socket would be orphaned with the browser's backlog still in it, and a
// browser that reads late might never get to the close frame.
func (c *conn) closeSlow() (lingering bool) {
	c.s.log.Info("browser too slow, disconnected", "addr", c.ws.RemoteAddr().String())
	err := c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "too slow: reconnect with ?since=LAST_SEQ"),
		time.Now().Add(time.Second))
	return err == nil
}

// closeNow sends a close frame and closes the connection.
func closeNow(ws *websocket.Conn, code int, reason string) {
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	ws.Close()
}

// browserMessage is everything a browser may send.
type browserMessage struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id"`
	Device  string          `json:"device"`
	Label   string          `json:"label"`
	Value   json.RawMessage `json:"value"`
	Devices []string        `json:"devices"`
	Logs    bool            `json:"logs"`
}

func (c *conn) handleBrowserMessage(data []byte) {
	var m browserMessage
	if err := json.Unmarshal(data, &m); err != nil {
		c.reply(gateway.ErrorFrame(peekID(data), "bad message: "+jsonProblem(err)))
		return
	}
	id := m.ID
	if len(id) > 0 && id[0] != '"' && !isNumber(id) {
		c.reply(gateway.ErrorFrame(nil, "bad message: id must be a string or number"))
		return
	}
	switch m.Type {
	case "command":
		c.command(id, m)
	case "subscribe":
		for _, d := range m.Devices {
			if !gateway.ValidID(d) {
				c.reply(gateway.ErrorFrame(id, fmt.Sprintf("bad subscribe: %q is not a device id", d)))
				return
			}
		}
		c.sub.SetFilter(m.Devices, m.Logs)
		if len(id) > 0 {
			c.reply(gateway.AckFrame(id))
		}
		// A console that opens late first shows the board's recent lines.
		if m.Logs && !c.logsOn {
			for _, l := range c.s.hub.RecentLogs(m.Devices) {
				c.reply(l.Data)
			}
		}
		c.logsOn = m.Logs
	case "":
		c.reply(gateway.ErrorFrame(id, `bad message: missing "type" (want command or subscribe)`))
	default:
		c.reply(gateway.ErrorFrame(id, fmt.Sprintf("bad message: unknown type %q (want command or subscribe)", m.Type)))
	}
}

func (c *conn) command(id json.RawMessage, m browserMessage) {
	if m.Device == "" {
		c.reply(gateway.ErrorFrame(id, `bad command: "device" is required`))
		return
	}
	if len(m.Value) == 0 || string(m.Value) == "null" {
		c.reply(gateway.ErrorFrame(id, `bad command: "value" is required`))
		return
	}
	if !c.commands.Allow(time.Now()) {
		c.reply(gateway.ErrorFrame(id, fmt.Sprintf("rate-limited: at most %d commands per second", int(gateway.CommandRate))))
		return
	}
	select {
	case c.sem <- struct{}{}:
	default:
		c.reply(gateway.ErrorFrame(id, fmt.Sprintf("rate-limited: at most %d commands may wait for boards", maxPendingCommands)))
		return
	}
	c.cmds.Add(1)
	go func() {
		defer c.cmds.Done()
		defer func() { <-c.sem }()
		err := c.s.hub.Command(c.ctx, m.Device, gateway.Command{Label: m.Label, Value: m.Value})
		if err != nil {
			c.reply(gateway.ErrorFrame(id, gateway.Describe(m.Device, err)))
			return
		}
		c.reply(gateway.AckFrame(id))
	}()
}

// peekID recovers the id of a message that failed to decode as a whole.
func peekID(data []byte) json.RawMessage {
	var m struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(data, &m) == nil && len(m.ID) > 0 && (m.ID[0] == '"' || isNumber(m.ID)) {
		return m.ID
	}
	return nil
}

func isNumber(raw json.RawMessage) bool {
	var f float64
	return len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') && json.Unmarshal(raw, &f) == nil
}

func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%q must be %s, not %s", te.Field, te.Type.String(), te.Value)
	}
	return err.Error()
}
