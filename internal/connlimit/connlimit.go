// Package connlimit caps the connections a listener hands to a server: at
// most PerAddr open at once from one remote IP address and at most Total in
// all. A connection over a cap is answered with a fixed refusal (for HTTP, a
// minimal 503) and closed in Accept; the server never sees it.
//
// It also bounds how long a write may stall (Options.WriteStall): each write
// on an accepted connection must make progress within it, until the
// connection is marked hijacked (a WebSocket, whose writer sets its own
// deadlines). Unlike http.Server.WriteTimeout this does not cut a long
// download that keeps being read (a history export), only one that stops.
//
// Refusals are written by short goroutines (at most maxRefusing at once,
// each done within refuseLinger); Close waits for them.
package connlimit

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// HTTP503 is the whole answer written to a refused HTTP connection.
var HTTP503 = []byte("HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Length: 25\r\n" +
	"Connection: close\r\n\r\n" +
	"too many connections: 503")

const (
	// refuseLinger is how long a refused connection is kept to write the
	// refusal and read what the client sent meanwhile, so the close is a
	// FIN after the answer, not a reset that could destroy it.
	refuseLinger = 500 * time.Millisecond
	// maxRefusing bounds the refusals in progress; beyond it (a flood) a
	// refused connection is closed at once, without an answer.
	maxRefusing = 32
)

// Listener is a net.Listener with connection caps. Safe for concurrent use.
type Listener struct {
	net.Listener
	Options

	mu      sync.Mutex
	open    map[string]int // open connections by remote IP
	nOpen   int
	perIP   atomic.Uint64 // refused: over perAddr
	overAll atomic.Uint64 // refused: over total

	refusing chan struct{}  // one token per refusal in progress
	refusals sync.WaitGroup // refusal goroutines
}

// Options are a Listener's caps.
type Options struct {
	PerAddr int // open connections from one remote IP; 0: no cap
	Total   int // open connections in all; 0: no cap
	// Refusal is written to each refused connection before it is closed
	// (HTTP503 for a plain HTTP server; nil under TLS, where plain text
	// would be noise to the client, and the connection is just closed).
	Refusal []byte
	// WriteStall is how long one write may wait for the peer to take data
	// before it fails (and the server closes the connection); 0: no bound.
	WriteStall time.Duration
}

// New wraps ln with the caps of o.
func New(ln net.Listener, o Options) *Listener {
	return &Listener{Listener: ln, Options: o,
		open: map[string]int{}, refusing: make(chan struct{}, maxRefusing)}
}

// MarkHijacked stops the write-stall bound on c, a connection this package
// accepted that now belongs to a WebSocket (call it from
// http.Server.ConnState on http.StateHijacked). Other connections are ignored.
func MarkHijacked(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if lc, ok := c.(*conn); ok {
		lc.hijacked.Store(true)
	}
}

// Close closes the listener and waits for refusals in progress.
func (l *Listener) Close() error {
	err := l.Listener.Close()
	l.refusals.Wait()
	return err
}

// Refused is how many connections were refused: over the per-address cap
// and over the total cap.
func (l *Listener) Refused() (perAddr, total uint64) { return l.perIP.Load(), l.overAll.Load() }

// Open is how many accepted connections are open now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nOpen
}

// Accept returns the next connection within the caps, refusing (and
// closing) those over them.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		l.mu.Lock()
		switch {
		case l.PerAddr > 0 && l.open[ip] >= l.PerAddr:
			l.mu.Unlock()
			l.perIP.Add(1)
			l.refuse(c)
			continue
		case l.Total > 0 && l.nOpen >= l.Total:
			l.mu.Unlock()
			l.overAll.Add(1)
			l.refuse(c)
			continue
		}
		l.open[ip]++
		l.nOpen++
		l.mu.Unlock()
		return &conn{Conn: c, l: l, ip: ip}, nil
	}
}

func (l *Listener) refuse(c net.Conn) {
	if l.Refusal == nil {
		c.Close()
		return
	}
	select {
	case l.refusing <- struct{}{}:
	default:
		c.Close()
		return
	}
	l.refusals.Go(func() {
		defer func() { <-l.refusing }()
		defer c.Close()
		c.SetDeadline(time.Now().Add(refuseLinger))
		if _, err := c.Write(l.Refusal); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	})
}

func (l *Listener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
	l.nOpen--
}

func remoteIP(c net.Conn) string {
	a := c.RemoteAddr()
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// conn releases its slot once, on the first Close.
type conn struct {
	net.Conn
	l        *Listener
	ip       string
	closed   atomic.Bool
	hijacked atomic.Bool
}

// Write bounds each write by WriteStall until the connection is hijacked.
func (c *conn) Write(b []byte) (int, error) {
	if d := c.l.WriteStall; d > 0 && !c.hijacked.Load() {
		c.Conn.SetWriteDeadline(time.Now().Add(d))
	}
	return c.Conn.Write(b)
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c.ip)
	}
	return err
}

// SyscallConn exposes the socket (web's send-queue probe needs it).
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}
