package history

import (
	"encoding/binary"
	"math/bits"
)

// bitWriter appends bits most-significant first.
type bitWriter struct {
	buf []byte
	acc uint64 // pending bits, right-aligned
	n   uint   // number of pending bits in acc (< 64)
}

// write appends the low nb bits of v (nb ≤ 64).
func (w *bitWriter) write(v uint64, nb uint) {
	for nb > 0 {
		take := nb
		if free := 64 - w.n; take > free {
			take = free
		}
		chunk := v >> (nb - take)
		if take < 64 {
			chunk &= 1<<take - 1
		}
		if take == 64 {
			w.acc = chunk
		} else {
			w.acc = w.acc<<take | chunk
		}
		w.n += take
		nb -= take
		if w.n == 64 {
			w.buf = binary.BigEndian.AppendUint64(w.buf, w.acc)
			w.acc, w.n = 0, 0
		}
	}
}

// bytes flushes the pending bits (zero padded) and returns the buffer.
func (w *bitWriter) bytes() []byte {
	if w.n > 0 {
		v := w.acc << (64 - w.n)
		for i := uint(0); i < (w.n+7)/8; i++ {
			w.buf = append(w.buf, byte(v>>(56-8*i)))
		}
		w.acc, w.n = 0, 0
	}
	return w.buf
}

// riceEscape is the unary prefix length that announces a raw 64-bit value.
const riceEscape = 32

// rice appends v Rice-coded with parameter k: v>>k in unary (ones ended by a
// zero) then the k low bits; quotients of riceEscape or more are written as
// riceEscape ones followed by the raw 64 bits.
func (w *bitWriter) rice(v uint64, k uint) {
	q := v >> k
	if q >= riceEscape {
		w.write(1<<riceEscape-1, riceEscape)
		w.write(v, 64)
		return
	}
	w.write((1<<q-1)<<1, uint(q)+1)
	w.write(v, k)
}

// riceCost is the number of bits rice(v, k) writes.
func riceCost(v uint64, k uint) uint64 {
	q := v >> k
	if q >= riceEscape {
		return riceEscape + 64
	}
	return q + 1 + uint64(k)
}

// bestRice picks the Rice parameter that codes vs in the fewest bits.
func bestRice(vs []uint64) (k uint, cost uint64) {
	if len(vs) == 0 {
		return 0, 0
	}
	var sum uint64
	for _, v := range vs {
		if v > 1<<40 {
			v = 1 << 40
		}
		sum += v
	}
	est := uint(bits.Len64(sum / uint64(len(vs))))
	lo := uint(0)
	if est > 3 {
		lo = est - 3
	}
	cost = ^uint64(0)
	for c := lo; c <= est+2 && c < 64; c++ {
		var t uint64
		for _, v := range vs {
			t += riceCost(v, c)
		}
		if t < cost {
			k, cost = c, t
		}
	}
	return k, cost
}

// bitReader reads what bitWriter wrote; reads past the end fail.
type bitReader struct {
	buf []byte
	pos uint // bit position
}

func (r *bitReader) read(nb uint) (uint64, bool) {
	if nb == 0 {
		return 0, true
	}
	if nb > 56 {
		hi, ok := r.read(nb - 32)
		if !ok {
			return 0, false
		}
		lo, ok := r.read(32)
		return hi<<32 | lo, ok
	}
	if uint64(r.pos)+uint64(nb) > uint64(len(r.buf))*8 {
		return 0, false
	}
	x := r.peek64()
	v := (x << (r.pos % 8)) >> (64 - nb)
	r.pos += nb
	return v, true
}

// peek64 returns the 8 bytes from the current byte, zero padded.
func (r *bitReader) peek64() uint64 {
	i := r.pos / 8
	if i+8 <= uint(len(r.buf)) {
		return binary.BigEndian.Uint64(r.buf[i:])
	}
	var x uint64
	for j := uint(0); j < 8; j++ {
		x <<= 8
		if i+j < uint(len(r.buf)) {
			x |= uint64(r.buf[i+j])
		}
	}
	return x
}

func (r *bitReader) rice(k uint) (uint64, bool) {
	// Count leading ones (at most riceEscape) from the next bits.
	avail := uint64(len(r.buf))*8 - uint64(r.pos)
	x := r.peek64() << (r.pos % 8)
	q := uint(bits.LeadingZeros64(^x))
	if q > riceEscape {
		q = riceEscape
	}
	if uint64(q) >= avail {
		return 0, false
	}
	if q == riceEscape {
		r.pos += riceEscape
		return r.read(64)
	}
	r.pos += q + 1 // the ones and the terminating zero
	lo, ok := r.read(k)
	if !ok {
		return 0, false
	}
	return uint64(q)<<k | lo, true
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }
