package web

import (
	"crypto/tls"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// browserSendBuffer is the kernel send buffer asked for each browser socket.
// A fixed buffer (rather than autotuning, which stops growing once a reader
// stalls) lets the writer see a browser fall behind while there is still
// room for a close frame, so the browser learns why it was closed.
const browserSendBuffer = 512 << 10

// sendQueue reads how many bytes wait in the kernel for a browser.
type sendQueue struct {
	raw   syscall.RawConn
	limit int // bytes waiting beyond this: the browser has fallen behind
	// bound is an upper bound of the backlog: the last one read plus what
	// was written since (the backlog only grows by our writes). While it
	// stays under limit, no system call is needed to know the browser keeps up.
	bound int
}

// newSendQueue returns nil where the socket does not tell (not TCP).
func newSendQueue(c net.Conn) *sendQueue {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	size := 0
	raw.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, browserSendBuffer)
		size, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	})
	if size <= 0 {
		return nil
	}
	// Linux reports twice the payload room; keep half of the room free.
	return &sendQueue{raw: raw, limit: size / 4}
}

// backlog is the number of bytes not yet taken by the browser.
func (q *sendQueue) backlog() int {
	n := 0
	q.raw.Control(func(fd uintptr) {
		n, _ = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
	})
	return n
}

// drainPoll is how often a browser over its backlog limit is looked at again.
const drainPoll = 10 * time.Millisecond

// room reports whether n more bytes may be written: it waits until the
// browser's backlog is under the limit, for at most wait (or until stop is
// closed); false means the browser did not take its data. A burst can fill
// the socket of a browser that keeps up; one that keeps the backlog up for
// the whole write deadline has fallen behind. The backlog is read only
// when the bound says it might be over the limit, so a browser that keeps
// up costs a system call per limit's worth of bytes, not per frame.
func (q *sendQueue) room(n int, wait time.Duration, stop <-chan struct{}) bool {
	if q.bound+n > q.limit {
		q.bound = q.backlog()
		if q.bound > q.limit && !q.drains(wait, stop) {
			return false
		}
	}
	q.bound += n
	return true
}

// drains waits until the backlog is under the limit, for at most wait (or
// until stop is closed).
func (q *sendQueue) drains(wait time.Duration, stop <-chan struct{}) bool {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			return false
		case <-stop:
			return false
		case <-tick.C:
			if q.bound = q.backlog(); q.bound <= q.limit {
				return true
			}
		}
	}
}
