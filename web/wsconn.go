package web

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Browser sockets carry two kinds of writes: gorilla's (the handshake, the
// pong it answers a ping with, the close frames its reader sends on a
// protocol error, and the close frames this package sends with
// WriteControl), and the writer's batches of frames that were encoded and
// framed once for every browser (see conn.flush).
//
// Invariant: every write to a browser's socket goes through its lockedConn,
// under one mutex, and every call writes whole frames (gorilla writes a
// control frame with a single Write; the writer writes a batch with one
// writev). So frames never interleave, whatever goroutine writes. This
// package never calls gorilla's data writers (WriteMessage, NextWriter,
// WritePreparedMessage) on a browser connection: their frames could be
// split over two writes.
//
// After a close frame has gone out, nothing more is written.

// lockedConn is a browser's net.Conn as gorilla sees it.
type lockedConn struct {
	net.Conn // reads and read deadlines pass through

	mu        sync.Mutex
	deadline  time.Time // gorilla's write deadline, applied to its next Write
	closeSent bool
}

// SetWriteDeadline records gorilla's deadline for its next Write: set on the
// socket now, it could cut short a batch the writer is writing.
func (c *lockedConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

func (c *lockedConn) SetDeadline(t time.Time) error {
	c.SetWriteDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

// Write is gorilla's: one whole frame (or the handshake's response).
func (c *lockedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return 0, websocket.ErrCloseSent
	}
	c.Conn.SetWriteDeadline(c.deadline)
	n, err := c.Conn.Write(p)
	if len(p) > 0 && p[0] == finalBit|closeOpcode {
		c.closeSent = true
	}
	return n, err
}

// writeFrames writes whole frames in one system call where the socket
// allows (writev on TCP), within deadline. It consumes bufs.
func (c *lockedConn) writeFrames(bufs *net.Buffers, deadline time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return websocket.ErrCloseSent
	}
	c.Conn.SetWriteDeadline(deadline)
	_, err := bufs.WriteTo(c.Conn)
	return err
}

// hijacker hands gorilla a lockedConn in place of the hijacked socket.
type hijacker struct {
	http.ResponseWriter
	conn *lockedConn
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = &lockedConn{Conn: c}
	return h.conn, brw, nil
}

// WebSocket frame bits (RFC 6455 section 5.2).
const (
	finalBit    = 0x80
	textOpcode  = 0x1
	closeOpcode = 0x8
	pingOpcode  = 0x9
)

// pingFrame is a server's ping with no payload (unmasked, as from a server).
var pingFrame = []byte{finalBit | pingOpcode, 0}

// textFrame returns payload as one whole, unmasked, uncompressed
// server-to-client text frame: header and payload in one slice, so a
// message framed once can be written to every browser as it is.
// Compression is never negotiated (upgrader.EnableCompression is false).
func textFrame(payload []byte) []byte {
	n := len(payload)
	var b []byte
	switch {
	case n < 126:
		b = make([]byte, 2, 2+n)
		b[1] = byte(n)
	case n <= 0xffff:
		b = make([]byte, 4, 4+n)
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		b = make([]byte, 10, 10+n)
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	b[0] = finalBit | textOpcode
	return append(b, payload...)
}
