package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/gateway"
)

// Browser connection limits (DESIGN.md "Numbers users can rely on").
const (
	browserReadLimit  = 16 << 10         // bytes per browser message; over it: close 1009
	browserReadBuffer = 1 << 10          // bytes; browsers send little, and a longer message is read in pieces
	browserWriteWait  = 5 * time.Second  // per write; a browser that cannot take a frame this fast is dropped
	browserPongWait   = 35 * time.Second // read deadline, extended by every pong or message
	browserPingPeriod = 25 * time.Second // must be shorter than browserPongWait
	slowCloseWait     = 10 * time.Second // a slow browser's time to read its backlog and answer 1013
	// Commands per socket: the same rate as one device takes
	// (gateway.CommandRate after a burst of gateway.CommandBurst); at most
	// 16 waiting for their boards at once.
	maxPendingCommands   = 16
	maxPendingReplies    = 16   // acks, errors and console lines waiting for the writer; then the reader waits
	maxBrowserConnsTotal = 2000 // default of limits.browsers: beyond it, new upgrades get 503
	// maxBatchFrames and maxBatchBytes bound one write: a browser whose
	// queue holds several frames gets them in one system call, and a batch
	// stays well below the send buffer's free room (sendQueue: the backlog
	// is under browserSendBuffer/2 before a write), so the writer never
	// blocks half-way through a frame on a browser that keeps up, and a
	// close frame still fits after it.
	maxBatchFrames = 128
	maxBatchBytes  = 64 << 10
)

// writeBufferPool lets gorilla take a write buffer only while it writes a
// data message, which this package never does (see wsconn.go); so no
// browser holds one.
var writeBufferPool sync.Pool

var upgrader = websocket.Upgrader{
	ReadBufferSize:    browserReadBuffer,
	WriteBufferPool:   &writeBufferPool,
	HandshakeTimeout:  10 * time.Second,
	EnableCompression: false, // frames are written pre-framed and uncompressed (textFrame)
	// The handlers check the Origin (and answer 403) before upgrading; this
	// repeats the check so the upgrader can never be reached without it.
	CheckOrigin: func(r *http.Request) bool { return r.Context().Value(originCheckedKey{}) == true },
}

type originCheckedKey struct{}

// upgrade is upgrader.Upgrade with the socket behind a lockedConn, through
// which every write to it goes.
func upgrade(w http.ResponseWriter, r *http.Request) (*websocket.Conn, *lockedConn, error) {
	h := &hijacker{ResponseWriter: w}
	ws, err := upgrader.Upgrade(h, r, nil)
	if err != nil {
		return nil, nil, err
	}
	return ws, h.conn, nil
}

// admit checks Origin (403) and token (401) before any upgrade.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	if !s.originAllowed(r) {
		s.log.Warn("cross-site WebSocket refused", "addr", r.RemoteAddr, "origin", r.Header.Get("Origin"))
		writeError(w, http.StatusForbidden, "cross-site WebSocket refused: add the origin to http.allowed_origins")
		return r, false
	}
	who, authed := s.auth.identify(r, true)
	if !authed {
		w.Header().Set("WWW-Authenticate", `Bearer realm="esp32gw"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong token: use ?token=TOKEN, Authorization: Bearer TOKEN or log in at /")
		return r, false
	}
	if s.browsers.Load() >= s.maxBrowsers {
		writeError(w, http.StatusServiceUnavailable, "too many browser connections")
		return r, false
	}
	ctx := context.WithValue(context.WithValue(r.Context(), originCheckedKey{}, true), identityKey{}, who)
	return r.WithContext(ctx), true
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
	ws, lc, err := upgrade(w, r)
	if err != nil {
		return // the upgrader has answered
	}
	c := s.newConn(ws, lc, renderBrowser)
	sub, first, err := s.hub.SubscribeQueue(since, 0, c.kick)
	if err != nil {
		closeNow(ws, websocket.CloseGoingAway, "gateway shutting down")
		return
	}
	c.sub = sub
	c.unbind = s.bindConn(r, c) // logout and a new token close it
	c.handle = c.handleBrowserMessage
	c.run(first)
}

// renderBrowser gives every message as its shared frame, encoded and
// framed once for every browser.
func renderBrowser(m *gateway.Message) ([]byte, bool) {
	f, _ := m.Prepared(prepareFrame).([]byte)
	return f, f != nil
}

func prepareFrame(data []byte) any { return textFrame(data) }

// conn is one browser WebSocket. One reader goroutine reads (started by
// run once the HTTP handler has upgraded; the handler returns, so the
// HTTP server's buffers for the request are released). The writer is not
// a goroutine per connection but a state: kick starts a flush goroutine
// when there is something to write and none runs; it writes until nothing
// is left and ends, so an idle browser costs no writer goroutine. At most
// one flush runs at a time, so the writer's frames go out in order. The
// last flush (the one that closes the connection) closes wrote; command
// goroutines are bounded by sem and waited for before the connection is
// released.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	lc     *lockedConn
	sub    *gateway.Subscription
	render func(*gateway.Message) (frame []byte, ok bool) // false: not for this browser
	handle func(data []byte)
	queue  *sendQueue // the socket's backlog; nil where the system does not tell

	ctx     context.Context // ends when the connection ends; cancels pending commands
	cancel  context.CancelFunc
	replies chan []byte   // acks and errors for the writer
	wrote   chan struct{} // closed when the writer has finished for good
	// deadlineMu orders the reader's deadline extensions with the writer's
	// end, so a lingering browser's deadline stays slowCloseWait.
	deadlineMu sync.Mutex
	cmds       sync.WaitGroup // command goroutines
	sem        chan struct{}

	commands gateway.TokenBucket // command rate limit; reader goroutine only
	logsOn   bool                // the browser subscribed to console lines; reader goroutine only
	viewer   bool                // a viewer's socket: commands are refused; set before run
	unbind   func()              // forgets the socket's identity (bindConn) when it ends
	quiet    bool                // compatibility dialect: binary frames are ignored, not answered

	// The writer's schedule.
	wmu      sync.Mutex
	started  bool      // run has begun: kick may start a flush
	running  bool      // a flush goroutine runs
	pending  bool      // something may be waiting since the flush last looked
	finished bool      // the writer has ended: nothing is written any more
	closeReq *closeMsg // the reader asks the writer to close
	pingDue  atomic.Bool
	ping     *time.Timer

	// The writer's own state: only the running flush touches it.
	msgs      []*gateway.Message // taken from the queue (at first: the snapshot or the replay), msgs[head:] not written yet
	head      int
	firstDone bool        // the first messages are written: replies and pings may follow
	carry     []byte      // a frame taken that did not fit in the last write, first in the next
	iov       net.Buffers // the frames of one write (consumed by it)
	iovBuf    net.Buffers // iov's storage, kept across writes
	lingering bool        // the writer closed a slow browser, which is given time to answer
}

type closeMsg struct {
	code   int
	reason string
}

func (s *Server) newConn(ws *websocket.Conn, lc *lockedConn, render func(*gateway.Message) ([]byte, bool)) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{
		s: s, ws: ws, lc: lc, render: render, ctx: ctx, cancel: cancel,
		replies: make(chan []byte, maxPendingReplies),
		wrote:   make(chan struct{}), sem: make(chan struct{}, maxPendingCommands),
		commands: gateway.NewTokenBucket(gateway.CommandRate, gateway.CommandBurst),
	}
}

// run starts serving the connection (first goes out before anything else)
// and returns; the reader goroutine releases everything the connection
// holds when it ends, and Server.Wait waits for it.
func (c *conn) run(first []*gateway.Message) {
	if !c.s.track() {
		closeNow(c.ws, websocket.CloseGoingAway, "gateway shutting down")
		c.cancel()
		c.sub.Close()
		c.forget()
		return
	}
	c.s.browsers.Add(1)
	c.msgs = first
	c.queue = newSendQueue(c.lc.Conn)
	c.ping = time.AfterFunc(browserPingPeriod, func() {
		c.pingDue.Store(true)
		c.kick()
	})
	c.wmu.Lock()
	c.started = true
	c.wmu.Unlock()
	c.kick()
	go c.serve()
}

// forget drops the socket from the set logout and token changes close.
func (c *conn) forget() {
	if c.unbind != nil {
		c.unbind()
	}
}

// serve is the reader goroutine: it reads until the connection ends, then
// lets the writer finish, stops pending commands and releases everything.
func (c *conn) serve() {
	defer c.s.conns.Done()
	defer c.forget()
	defer c.s.unlinger(c)
	defer c.s.browsers.Add(-1)
	c.readLoop()
	c.requestClose(websocket.CloseNormalClosure, "")
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
	c.wmu.Lock()
	if c.closeReq == nil {
		c.closeReq = &closeMsg{code, reason}
	}
	c.wmu.Unlock()
	c.kick()
}

// reply queues an ack or error (gateway.AckFrame, gateway.ErrorFrame) or a
// recent console line; it waits (stopping this browser's reading,
// never anyone else's) when the browser does not read its replies.
func (c *conn) reply(b []byte) {
	select {
	case c.replies <- b:
		c.kick()
	case <-c.wrote:
	}
}

// kick makes sure the writer looks at everything waiting for the browser:
// it starts a flush unless one runs (which looks again before it ends).
// The hub calls it with its lock held (a queue subscription's wake): it
// never blocks.
func (c *conn) kick() {
	c.wmu.Lock()
	c.pending = true
	start := c.started && !c.running && !c.finished
	if start {
		c.running = true
	}
	c.wmu.Unlock()
	if start {
		go c.flush()
	}
}

// flush is the writer while there is something to write. A lone event is
// written at once; what piled up meanwhile goes out together.
func (c *conn) flush() {
	for {
		c.wmu.Lock()
		if !c.pending {
			c.running = false
			c.wmu.Unlock()
			return
		}
		c.pending = false
		c.wmu.Unlock()
		if !c.writeAll() {
			c.finish()
			return
		}
	}
}

// writeAll writes what is waiting, in batches; false means the connection
// is closed (or closing, see lingering).
func (c *conn) writeAll() bool {
	for {
		// A subscription that ended (too slow, shutdown) wins over queued messages.
		select {
		case <-c.sub.Done():
			c.lingering = c.closeForSubscription()
			return false
		default:
		}
		c.wmu.Lock()
		cm := c.closeReq
		c.wmu.Unlock()
		if cm != nil {
			closeNow(c.ws, cm.code, cm.reason)
			return false
		}
		more, ok := c.writeBatch()
		if !ok {
			return false
		}
		if !more {
			return true
		}
	}
}

// writeBatch writes waiting frames, at most maxBatchFrames and (unless one
// frame is larger) maxBatchBytes, in one write: first the snapshot or
// replay; after it a ping if due, replies, then the subscription's queue.
// more says there may be more waiting.
func (c *conn) writeBatch() (more, ok bool) {
	iov := c.iovBuf[:0]
	size, frames := 0, 0
	add := func(f []byte) {
		iov = append(iov, f)
		size += len(f)
		frames++
	}
	if c.firstDone {
		if c.pingDue.Swap(false) {
			iov = append(iov, pingFrame)
			size += len(pingFrame)
			c.ping.Reset(browserPingPeriod)
		}
	replies:
		for len(iov) < maxBatchFrames/2 {
			select {
			case b := <-c.replies:
				add(textFrame(b))
			default:
				break replies
			}
		}
	}
	if c.carry != nil {
		add(c.carry)
		c.carry = nil
	}
	for len(iov) < maxBatchFrames && size < maxBatchBytes {
		if c.head == len(c.msgs) {
			c.msgs, c.head = c.msgs[:0], 0
			if !c.firstDone {
				// The replies that waited for the first messages go next.
				c.firstDone, c.msgs, more = true, nil, true
				break
			}
			if c.msgs = c.sub.Take(c.msgs, maxBatchFrames-len(iov)); len(c.msgs) == 0 {
				break
			}
		}
		m := c.msgs[c.head]
		c.msgs[c.head] = nil
		c.head++
		f, ok := c.render(m)
		if !ok {
			continue
		}
		if frames > 0 && size+len(f) > maxBatchBytes {
			c.carry, more = f, true
			break
		}
		add(f)
	}
	more = more || len(iov) >= maxBatchFrames || size >= maxBatchBytes || c.head < len(c.msgs)
	if len(iov) == 0 {
		return more, true
	}
	c.iovBuf = iov
	defer clear(iov) // the frames belong to their messages, not to this browser
	if c.queue != nil && !c.queue.room(size, browserWriteWait, c.sub.Done()) {
		select {
		case <-c.sub.Done(): // shutdown, or the hub found it behind (and counted it)
			c.lingering = c.closeForSubscription()
			return false, false
		default:
		}
		// The browser stopped taking data: close it while the close
		// frame still fits, rather than block on a frame and cut it in two.
		c.s.hub.Counters().SlowConsumers.Add(1)
		c.lingering = c.closeSlow()
		return false, false
	}
	c.iov = iov
	if err := c.lc.writeFrames(&c.iov, time.Now().Add(browserWriteWait)); err != nil {
		return false, false
	}
	c.s.hub.Counters().MessagesOut.Add(uint64(frames))
	return more, true
}

// finish ends the writer for good. However it ends, the connection ends
// with it, so the reader returns at once instead of at its deadline;
// except after closing a slow browser, which is given slowCloseWait to
// read what is still buffered for it and answer the close frame.
func (c *conn) finish() {
	// Register the linger before wrote is closed: serve unlingers only
	// after it has seen wrote closed, so no entry outlives its conn.
	keep := c.lingering && c.s.linger(c)
	c.ping.Stop()
	c.msgs, c.carry, c.iov, c.iovBuf = nil, nil, nil, nil
	c.deadlineMu.Lock()
	c.wmu.Lock()
	c.finished, c.running = true, false
	c.wmu.Unlock()
	close(c.wrote) // the reader no longer extends its deadline
	if keep {
		c.ws.SetReadDeadline(time.Now().Add(slowCloseWait))
	}
	c.deadlineMu.Unlock()
	if !keep {
		c.ws.Close()
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
		if c.viewer {
			c.reply(gateway.ErrorFrame(id, "not_allowed: viewer sessions cannot send commands"))
			return
		}
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
