package main

import (
	"math"
	"sync/atomic"
	"time"
)

// maxWindows bounds how many windows (or ramp steps) one run measures, so
// every per-window table is a fixed array.
const maxWindows = 64

// control is what the controller shares with every board and browser of a
// run: one clock, the target rate and the window that is open. All fields
// are safe for concurrent use.
type control struct {
	start  time.Time     // the one clock: send and receipt times are offsets from it
	rate   atomic.Uint64 // math.Float64bits of readings/s per board; 0 = boards are quiet
	window atomic.Int32  // the open window's index, or -1 between windows
}

func newControl() *control {
	c := &control{start: time.Now()}
	c.window.Store(-1)
	return c
}

func (c *control) now() int64 { return int64(time.Since(c.start)) }

func (c *control) setRate(r float64) { c.rate.Store(math.Float64bits(r)) }
func (c *control) getRate() float64  { return math.Float64frombits(c.rate.Load()) }

// sendLog records, for one board, when it wrote each reading and in which
// window, so a browser can look the send time up by SEQ: the payload stays
// exactly what the tutorial sketch sends. Stamps are written before the
// frame and read by browsers concurrently.
type sendLog struct {
	chunks [sendLogChunks]atomic.Pointer[[sendLogChunk]atomic.Int64]
}

const (
	sendLogChunk  = 1 << 13
	sendLogChunks = 1 << 11
	// maxSeq bounds one board's readings in a run (16.7 M: about 40 min
	// at 10,000/s); a board that reaches it stops sending.
	maxSeq = sendLogChunk * sendLogChunks
	// A stamp packs window+1 above stampShift and the send time (ns since
	// control.start) below; 0 means no stamp.
	stampShift = 47
)

func stamp(window int32, ns int64) int64 { return int64(window+1)<<stampShift | ns }

func unstamp(s int64) (window int32, ns int64) {
	return int32(s>>stampShift) - 1, s & (1<<stampShift - 1)
}

// put records seq's stamp; seq < maxSeq.
func (l *sendLog) put(seq int64, s int64) {
	c := l.chunks[seq/sendLogChunk].Load()
	if c == nil {
		c = new([sendLogChunk]atomic.Int64)
		l.chunks[seq/sendLogChunk].Store(c) // only the board's send loop writes
	}
	c[seq%sendLogChunk].Store(s)
}

// get returns seq's stamp, or 0 when it was never sent.
func (l *sendLog) get(seq int64) int64 {
	if seq < 0 || seq >= maxSeq {
		return 0
	}
	c := l.chunks[seq/sendLogChunk].Load()
	if c == nil {
		return 0
	}
	return c[seq%sendLogChunk].Load()
}
