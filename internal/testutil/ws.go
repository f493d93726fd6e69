package testutil

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Msg is one decoded JSON text frame.
type Msg = map[string]any

// WSReader owns the read side of one WebSocket: a goroutine reads every
// frame into a buffer until the connection fails or is closed, which also
// ends the goroutine (close the conn, or let the test's cleanup do it).
// Text frames are read with Next, WaitFor and WaitAll; binary frames are
// kept apart (Binary), so a text reader never mistakes one for the other.
type WSReader struct {
	c      *websocket.Conn
	frames chan []byte
	binary chan []byte
	done   chan struct{} // closed after frames
	err    error         // set before frames and done close
}

// wsBuffer is how many unread text frames a WSReader keeps; more block the
// read goroutine (and with it the connection) until the test reads.
const wsBuffer = 100000

// NewWSReader starts reading c.
func NewWSReader(c *websocket.Conn) *WSReader {
	r := &WSReader{c: c, frames: make(chan []byte, wsBuffer), binary: make(chan []byte, 100), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer close(r.frames)
		for {
			mt, b, err := c.ReadMessage()
			if err != nil {
				r.err = err
				return
			}
			if mt == websocket.BinaryMessage {
				select {
				case r.binary <- b:
				default:
				}
				continue
			}
			r.frames <- b
		}
	}()
	return r
}

// Conn is the connection being read.
func (r *WSReader) Conn() *websocket.Conn { return r.c }

// Frames delivers the text frames not yet read by another method; it is
// closed once the connection has ended and every frame was received.
func (r *WSReader) Frames() <-chan []byte { return r.frames }

// Binary delivers binary frames (the first 100 unread; later ones are dropped).
func (r *WSReader) Binary() <-chan []byte { return r.binary }

// Next returns the next text frame, failing the test when none arrives
// within d or the connection ends first.
func (r *WSReader) Next(t testing.TB, d time.Duration) []byte {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case b, ok := <-r.frames:
		if !ok {
			t.Fatalf("connection ended while waiting for a frame: %v", r.err)
		}
		return b
	case <-timer.C:
		t.Fatalf("no frame within %v", d)
	}
	return nil
}

// NextMsg is Next, decoded as a JSON object.
func (r *WSReader) NextMsg(t testing.TB, d time.Duration) Msg {
	t.Helper()
	b := r.Next(t, d)
	var m Msg
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("frame is not a JSON object: %v: %q", err, b)
	}
	return m
}

// WaitFor reads text frames until one decodes to a JSON object that pred
// accepts, within d, and returns it; frames read on the way are consumed.
// It fails the test, naming what and the last frames seen, on timeout or
// when the connection ends.
func (r *WSReader) WaitFor(t testing.TB, d time.Duration, what string, pred func(Msg) bool) Msg {
	t.Helper()
	var m Msg
	r.WaitAll(t, d, what, func(got Msg) bool {
		if pred(got) {
			m = got
			return true
		}
		return false
	})
	return m
}

// WaitAll reads text frames until every pred has accepted one (each its own
// frame, in any order: a board's new state may overtake the gateway's ack),
// within d.
func (r *WSReader) WaitAll(t testing.TB, d time.Duration, what string, preds ...func(Msg) bool) {
	t.Helper()
	matched := make([]bool, len(preds))
	left := len(preds)
	timer := time.NewTimer(d)
	defer timer.Stop()
	var seen []string
	for left > 0 {
		select {
		case b, ok := <-r.frames:
			if !ok {
				t.Fatalf("connection ended while waiting for %s: %v; last frames:\n%s", what, r.err, lastFrames(seen))
			}
			var m Msg
			if json.Unmarshal(b, &m) == nil {
				for i, p := range preds {
					if !matched[i] && p(m) {
						matched[i] = true
						left--
						break
					}
				}
			}
			seen = append(seen, string(b))
		case <-timer.C:
			t.Fatalf("no %s within %v; last frames:\n%s", what, d, lastFrames(seen))
		}
	}
}

// Closed waits up to d for the connection to end and returns its error.
func (r *WSReader) Closed(d time.Duration) (err error, ok bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-r.done:
		return r.err, true
	case <-timer.C:
		return nil, false
	}
}

// lastFrames is the last few frames, shortened, for a failure message.
func lastFrames(s []string) string {
	if len(s) > 5 {
		s = s[len(s)-5:]
	}
	out := make([]string, len(s))
	for i, f := range s {
		if len(f) > 300 {
			f = f[:300] + "…"
		}
		out[i] = f
	}
	return strings.Join(out, "\n")
}

// Drain reads text frames until the connection ends, within d, and returns
// how many it read and the connection's error; ended is false on timeout.
func (r *WSReader) Drain(d time.Duration) (n int, err error, ended bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-r.frames:
			if !ok {
				return n, r.err, true
			}
			n++
		case <-timer.C:
			return n, nil, false
		}
	}
}
