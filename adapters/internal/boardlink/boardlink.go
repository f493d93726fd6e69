// Package boardlink pumps one WebSocket link to a board, whichever side
// dialed: adapters/wsdial (the gateway dials the board's server) and
// adapters/wslisten (the board dials /device/{id}) both hand it an upgraded
// *websocket.Conn.
//
// A Link runs exactly two goroutines: one reader, which owns every read, the
// read deadline and the frame limit, and one writer (the goroutine that calls
// Run), which owns every data write, the pings and the closing handshake. Run
// starts the reader and returns only after it has exited; the caller of Run
// owns the Link and stops it by cancelling Run's context.
//
// What a board can rely on (DESIGN.md, "Numbers users can rely on"):
//   - a ping every 5 s; the link is declared dead when nothing (a frame, a
//     ping or a pong) arrives for 15 s, and the device goes offline with a
//     reason;
//   - a frame over 64 KiB closes the link with close code 1009 and a reason;
//   - binary frames, frames that are not usable JSON and text that is not
//     valid UTF-8 are counted (gateway.Link.Malformed) and the link stays up;
//   - a command is written by the writer goroutine with a write deadline and
//     acknowledged only after the write succeeded; a command for a link that
//     has gone down fails at once with gateway.ErrOffline.
package boardlink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/gateway/wire"
)

// Contract numbers (DESIGN.md). Options can shorten them for tests.
const (
	// PingPeriod is how often the gateway pings a board.
	PingPeriod = 5 * time.Second
	// SilenceTimeout is how long the gateway waits for any sign of life (a
	// frame, a ping or a pong) before it declares the board dead. Three ping
	// periods, so one lost pong never drops a healthy link.
	SilenceTimeout = 15 * time.Second
	// MaxFrame is the largest board frame accepted, in bytes; a larger one
	// closes the link with 1009.
	MaxFrame = 64 << 10
	// WriteWait bounds a ping or command write: a board that stops reading
	// for this long has its link closed (boards read a few bytes a second at
	// the very least; a full TCP window for 5 s means the board is gone).
	// A command's write is further bounded by the command's own deadline.
	WriteWait = 5 * time.Second
	// CloseWait is how long the closing handshake may take: the board's
	// close reply, or the end of a frame being drained, before the TCP
	// connection is closed anyway. Short, so a shutdown stays within 5 s.
	CloseWait = time.Second
)

// Errors that end a link; the reason a device went offline names them.
var (
	// ErrSilent: nothing arrived from the board within the silence timeout.
	ErrSilent = errors.New("no frame or pong from the board")
	// ErrTooBig: the board sent a frame over the limit.
	ErrTooBig = errors.New("board frame over the size limit")
)

// CloseReason ends a link with a close frame. Cancel the context passed to
// Run with it (context.WithCancelCause) to choose the close code and the text
// the board and the device's status event see; any other cancellation closes
// with 1001 "gateway shutting down". A cause of another type does the same
// when it has a CloseCode method (see Closer): packages that cannot import
// this one (cmd/esp32gw) close links with a reason of their own.
type CloseReason struct {
	Code int    // a WebSocket close code, e.g. websocket.CloseNormalClosure
	Text string // at most 123 bytes reach the board
}

func (c *CloseReason) Error() string { return c.Text }

// CloseCode is the close code; it makes a *CloseReason a Closer.
func (c *CloseReason) CloseCode() int { return c.Code }

// Closer is a context cause that chooses the close frame: CloseCode is the
// code, Error the text (the board's close reason and the status event's).
type Closer interface {
	error
	CloseCode() int
}

// Options describe one link. Device and Sink are required; zero timing
// fields take the contract numbers above.
type Options struct {
	Device    string // device id
	Format    string // command_format: gateway.FormatText or gateway.FormatJSON
	Transport string // for logs: ws-dial, ws-listen
	Addr      string // for logs: the board's URL or remote address
	Log       *slog.Logger

	PingPeriod     time.Duration
	SilenceTimeout time.Duration
	WriteWait      time.Duration
	CloseWait      time.Duration
	MaxFrame       int
}

func (o *Options) defaults() {
	if o.PingPeriod <= 0 {
		o.PingPeriod = PingPeriod
	}
	if o.SilenceTimeout <= 0 {
		o.SilenceTimeout = SilenceTimeout
	}
	if o.WriteWait <= 0 {
		o.WriteWait = WriteWait
	}
	if o.CloseWait <= 0 {
		o.CloseWait = CloseWait
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = MaxFrame
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Link is one attached board link. Create it with Attach, then call Run
// exactly once.
type Link struct {
	o     Options
	conn  *websocket.Conn
	glink gateway.Link
	log   *slog.Logger

	cmds chan *cmdReq  // unbuffered: a command is handed straight to the writer
	dead chan struct{} // closed when the writer stops taking commands

	reason string // why the link ended; written by Run before it returns
}

type cmdReq struct {
	frame    []byte
	deadline time.Time // zero: only WriteWait bounds the write
	done     chan error
}

// Attach attaches the device to sink for an upgraded conn; the device goes
// online. On error the caller still owns conn and must close it; on success
// the Link owns conn and Run closes it.
func Attach(sink gateway.Sink, conn *websocket.Conn, o Options) (*Link, error) {
	o.defaults()
	l := &Link{
		o:    o,
		conn: conn,
		log:  o.Log.With("device", o.Device, "transport", o.Transport, "addr", o.Addr),
		cmds: make(chan *cmdReq),
		dead: make(chan struct{}),
	}
	gl, err := sink.Attach(o.Device, l.send)
	if err != nil {
		return nil, fmt.Errorf("boardlink %s: %w", o.Device, err)
	}
	l.glink = gl
	gl.SetAddr(conn.LocalAddr().String(), conn.RemoteAddr().String())
	return l, nil
}

// send is the device's gateway.SendFunc: it hands the command to the writer
// and returns once the frame is written (nil), the write failed, the link is
// down (gateway.ErrOffline) or ctx ended before the writer took it.
func (l *Link) send(ctx context.Context, c gateway.Command) error {
	req := &cmdReq{frame: wire.EncodeCommand(l.o.Format, c), done: make(chan error, 1)}
	req.deadline, _ = ctx.Deadline()
	select {
	case l.cmds <- req:
	case <-l.dead:
		return fmt.Errorf("%w: link closed", gateway.ErrOffline)
	case <-ctx.Done():
		return ctx.Err()
	}
	// The writer always answers a request it took, within its write deadline.
	return <-req.done
}

// Run pumps the link until the board goes away, a write fails, or ctx ends.
// It then detaches the device with the reason (a status event), closes the
// connection (with a close frame where one still makes sense), waits for the
// reader to exit and returns the cause: ErrSilent, ErrTooBig, a
// *websocket.CloseError from the board, a *CloseReason or ctx's error, or an
// I/O error, wrapped with the device id.
func (l *Link) Run(ctx context.Context) error {
	readDone := make(chan error, 1)
	go func() { readDone <- l.readLoop() }()

	cause, readEnded := l.writeLoop(ctx, readDone)
	close(l.dead) // from here on commands fail fast with ErrOffline
	reason := l.describe(ctx, cause)
	l.reason = reason
	l.glink.Detach(reason)

	// Closing handshake, bounded by CloseWait.
	code, text := l.closeFrame(ctx, cause)
	if code != 0 {
		msg := websocket.FormatCloseMessage(code, gateway.Truncate(text, 123))
		if err := l.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(l.o.CloseWait)); err != nil {
			l.log.Debug("close frame not sent", "err", err)
		}
	}
	switch {
	case !readEnded && code != 0:
		// The reader sees the board's close reply (or the timer closes the conn).
		t := time.NewTimer(l.o.CloseWait)
		select {
		case <-readDone:
			readEnded = true
		case <-t.C:
		}
		t.Stop()
	case readEnded && errors.Is(cause, ErrTooBig):
		// Drain the rest of the frame so the close frame is not lost to a
		// TCP reset, until the board closes or CloseWait passes.
		uc := l.conn.NetConn()
		_ = uc.SetReadDeadline(time.Now().Add(l.o.CloseWait))
		_, _ = io.Copy(io.Discard, io.LimitReader(uc, int64(16*l.o.MaxFrame)))
	}
	l.conn.Close()
	if !readEnded {
		<-readDone
	}

	l.log.Debug("board link closed", "reason", reason)
	return fmt.Errorf("boardlink %s: %w", l.o.Device, cause)
}

// Reason is why the link ended, as the device's status event says it; read
// it after Run has returned.
func (l *Link) Reason() string { return l.reason }

// writeLoop is the single writer: pings, commands, and it watches the reader
// and ctx. It returns why the link ended and whether the reader has exited.
func (l *Link) writeLoop(ctx context.Context, readDone <-chan error) (cause error, readEnded bool) {
	ping := time.NewTicker(l.o.PingPeriod)
	defer ping.Stop()
	for {
		select {
		case err := <-readDone:
			return err, true
		case <-ctx.Done():
			if c := context.Cause(ctx); c != nil {
				return c, false
			}
			return ctx.Err(), false
		case <-ping.C:
			if err := l.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(l.o.WriteWait)); err != nil {
				return fmt.Errorf("write ping: %w", err), false
			}
		case req := <-l.cmds:
			deadline := time.Now().Add(l.o.WriteWait)
			if !req.deadline.IsZero() && req.deadline.Before(deadline) {
				deadline = req.deadline
			}
			_ = l.conn.SetWriteDeadline(deadline)
			err := l.conn.WriteMessage(websocket.TextMessage, req.frame)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && !req.deadline.IsZero() && !time.Now().Before(req.deadline) {
					req.done <- fmt.Errorf("write command: %w", context.DeadlineExceeded)
				} else {
					req.done <- fmt.Errorf("%w: write command: %v", gateway.ErrOffline, err)
				}
				// A failed or partial write leaves the stream unusable.
				return fmt.Errorf("write command: %w", err), false
			}
			req.done <- nil
		}
	}
}

// readLoop is the single reader. It returns why reading stopped.
func (l *Link) readLoop() error {
	c := l.conn
	alive := func() {
		_ = c.SetReadDeadline(time.Now().Add(l.o.SilenceTimeout))
	}
	alive()
	c.SetPongHandler(func(string) error {
		alive()
		l.glink.Seen()
		return nil
	})
	c.SetPingHandler(func(data string) error {
		alive()
		l.glink.Seen()
		err := c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(l.o.WriteWait))
		var ne net.Error
		if err == nil || errors.Is(err, websocket.ErrCloseSent) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil
		}
		return err
	})
	var buf bytes.Buffer
	limit := int64(l.o.MaxFrame)
	for {
		mt, r, err := c.NextReader()
		if err != nil {
			return l.readErr(err)
		}
		alive()
		buf.Reset()
		if _, err := buf.ReadFrom(io.LimitReader(r, limit+1)); err != nil {
			return l.readErr(err)
		}
		if int64(buf.Len()) > limit {
			return fmt.Errorf("%w: more than %d bytes", ErrTooBig, limit)
		}
		l.frame(mt, buf.Bytes())
	}
}

func (l *Link) readErr(err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w for %s", ErrSilent, l.o.SilenceTimeout)
	case errors.Is(err, websocket.ErrReadLimit):
		return fmt.Errorf("%w: %v", ErrTooBig, err)
	}
	return err
}

// frame handles one whole message from the board.
func (l *Link) frame(mt int, b []byte) {
	var bad error
	switch {
	case mt != websocket.TextMessage:
		bad = errors.New("binary frame")
	case !utf8.Valid(b):
		bad = errors.New("text frame is not valid UTF-8")
	default:
		rs, err := wire.Parse(b)
		if len(rs) > 0 {
			l.glink.Publish(rs...)
		} else {
			l.glink.Seen()
		}
		bad = err
	}
	if bad != nil && l.glink.Malformed() {
		l.log.Debug("bad frame from board ignored", "err", bad, "bytes", len(b), "frame", gateway.Truncate(string(b), 80))
	}
}

// describe turns the cause into the reason browsers see in the status event.
func (l *Link) describe(ctx context.Context, cause error) string {
	var cr Closer
	var ce *websocket.CloseError
	switch {
	case errors.As(cause, &cr):
		return cr.Error()
	case ctx.Err() != nil && (errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded)):
		return "gateway shutting down"
	case errors.As(cause, &ce) && ce.Code == websocket.CloseAbnormalClosure:
		return "connection to the board lost without a close frame"
	case errors.As(cause, &ce):
		if ce.Text != "" {
			return fmt.Sprintf("board closed the link (%d: %s)", ce.Code, gateway.Truncate(ce.Text, 80))
		}
		return fmt.Sprintf("board closed the link (%d)", ce.Code)
	case errors.Is(cause, ErrSilent), errors.Is(cause, ErrTooBig):
		return cause.Error()
	case errors.Is(cause, io.EOF), errors.Is(cause, io.ErrUnexpectedEOF):
		return "board closed the connection without a close frame"
	}
	return "link lost: " + cause.Error()
}

// closeFrame says which close frame to send, if any: none when the board
// closed first (gorilla already answered) or the connection is broken.
func (l *Link) closeFrame(ctx context.Context, cause error) (code int, text string) {
	var cr Closer
	switch {
	case errors.As(cause, &cr):
		return cr.CloseCode(), cr.Error()
	case ctx.Err() != nil:
		return websocket.CloseGoingAway, "gateway shutting down"
	case errors.Is(cause, ErrTooBig):
		return websocket.CloseMessageTooBig, fmt.Sprintf("frame over %d bytes", l.o.MaxFrame)
	case errors.Is(cause, ErrSilent):
		return websocket.CloseGoingAway, fmt.Sprintf("no frame or pong for %s", l.o.SilenceTimeout)
	}
	return 0, ""
}
