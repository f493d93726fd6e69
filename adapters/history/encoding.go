package history

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// A chunk is one label's readings, sorted by time, in one blob:
//
//	numeric: 1 | n uvarint | t0 varint | tsK | S | flags | vK | v0 varint | [d0]
//	generic: 2 | n uvarint | t0 varint | tsK | dictN uvarint | dictN × (len uvarint, JSON)
//
// followed by a bit stream with, for each reading after the first:
//
//   - its timestamp (unix ms) as the zigzagged delta-of-delta, Rice-coded
//     with parameter tsK (jitter of a few ms around a steady period costs a
//     few bits);
//   - numeric chunks (every value a plain JSON number with at most 17 digits
//     and 9 decimals): the value as an integer scaled by 10^S, coded as the
//     zigzagged delta (or delta-of-delta when flags&flagDoD, whichever is
//     smaller, e.g. for counters) with parameter vK; when flags&flagDStream
//     the number of decimals as written (so "21.50" and "21.5" both come
//     back as sent) follows as 0 = same as before, or 1 and 4 bits;
//   - generic chunks (strings, booleans, objects, odd numbers): 0 when the
//     value equals the previous one, else 1 and its index in the chunk's
//     dictionary of distinct values, in just enough bits.
//
// The same encoding carries each label's readings inside a commit's batch row.
const (
	kindNumeric = 1
	kindGeneric = 2

	flagDStream = 1
	flagDoD     = 2

	maxDecimals = 9
	// maxScaled bounds |value × 10^S| so deltas of deltas cannot overflow.
	maxScaled = 1e17
)

var errCorruptChunk = errors.New("history: corrupt chunk")

// sample is one reading inside the store: unix milliseconds and compact JSON.
type sample struct {
	ts int64
	v  []byte
}

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// parseScaled reads a JSON number written as -?digits[.digits] (no
// exponent, not negative zero, at most 17 digits and 9 decimals) as m×10^-d,
// and only when formatting m and d gives back exactly the same text.
func parseScaled(v []byte) (m int64, d uint8, ok bool) {
	if len(v) == 0 || len(v) > 20 {
		return 0, 0, false
	}
	i, neg := 0, false
	if v[0] == '-' {
		neg, i = true, 1
	}
	digits, dot := 0, -1
	for ; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= '0' && c <= '9':
			m = m*10 + int64(c-'0')
			digits++
		case c == '.' && dot < 0:
			dot = i
		default:
			return 0, 0, false
		}
	}
	if digits == 0 || digits > 17 {
		return 0, 0, false
	}
	if dot >= 0 {
		d = uint8(len(v) - dot - 1)
		if d == 0 || d > maxDecimals {
			return 0, 0, false
		}
	}
	if neg {
		if m == 0 {
			return 0, 0, false
		}
		m = -m
	}
	var tmp [24]byte
	if !bytes.Equal(appendScaled(tmp[:0], m, d), v) {
		return 0, 0, false
	}
	return m, d, true
}

// appendScaled writes m×10^-d with exactly d decimals.
func appendScaled(dst []byte, m int64, d uint8) []byte {
	if m < 0 {
		dst = append(dst, '-')
	}
	var tmp [24]byte
	u := uint64(m)
	if m < 0 {
		u = uint64(-m)
	}
	s := strconv.AppendUint(tmp[:0], u, 10)
	for len(s) < int(d)+1 {
		s = append([]byte{'0'}, s...)
	}
	if d == 0 {
		return append(dst, s...)
	}
	dst = append(dst, s[:len(s)-int(d)]...)
	dst = append(dst, '.')
	return append(dst, s[len(s)-int(d):]...)
}

// encodeChunk appends the chunk of ss (sorted by ts, at least one) to dst.
func encodeChunk(dst []byte, ss []sample) []byte {
	if len(ss) == 0 {
		panic("history: encodeChunk of no samples")
	}
	tsv := make([]uint64, 0, len(ss))
	var prevDelta int64
	for i := 1; i < len(ss); i++ {
		delta := ss[i].ts - ss[i-1].ts
		tsv = append(tsv, zigzag(delta-prevDelta))
		prevDelta = delta
	}
	tsK, _ := bestRice(tsv)
	if out, ok := encodeNumeric(dst, ss, tsv, tsK); ok {
		return out
	}
	return encodeGeneric(dst, ss, tsv, tsK)
}

func encodeNumeric(dst []byte, ss []sample, tsv []uint64, tsK uint) ([]byte, bool) {
	ms := make([]int64, len(ss))
	ds := make([]uint8, len(ss))
	var S uint8
	for i, s := range ss {
		m, d, ok := parseScaled(s.v)
		if !ok {
			return dst, false
		}
		ms[i], ds[i] = m, d
		S = max(S, d)
	}
	dStream := false
	for i := range ms {
		if ds[i] != S {
			dStream = true
		}
		f := pow10[S-ds[i]]
		if math.Abs(float64(ms[i]))*float64(f) >= maxScaled {
			return dst, false
		}
		ms[i] *= f
	}
	deltas := make([]uint64, 0, len(ms))
	dods := make([]uint64, 0, len(ms))
	var prev int64
	for i := 1; i < len(ms); i++ {
		delta := ms[i] - ms[i-1]
		deltas = append(deltas, zigzag(delta))
		dods = append(dods, zigzag(delta-prev))
		prev = delta
	}
	vK, cost := bestRice(deltas)
	flags := byte(0)
	vals := deltas
	if k2, c2 := bestRice(dods); c2 < cost {
		vK, vals, flags = k2, dods, flagDoD
	}
	if dStream {
		flags |= flagDStream
	}
	dst = append(dst, kindNumeric)
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	dst = binary.AppendVarint(dst, ss[0].ts)
	dst = append(dst, byte(tsK), S, flags, byte(vK))
	dst = binary.AppendVarint(dst, ms[0])
	if dStream {
		dst = append(dst, ds[0])
	}
	w := bitWriter{buf: dst}
	for i := 1; i < len(ss); i++ {
		w.rice(tsv[i-1], tsK)
		w.rice(vals[i-1], vK)
		if dStream {
			if ds[i] == ds[i-1] {
				w.write(0, 1)
			} else {
				w.write(1, 1)
				w.write(uint64(ds[i]), 4)
			}
		}
	}
	return w.bytes(), true
}

func encodeGeneric(dst []byte, ss []sample, tsv []uint64, tsK uint) []byte {
	index := make(map[string]int)
	var dict [][]byte
	idx := make([]int, len(ss))
	for i, s := range ss {
		j, ok := index[string(s.v)]
		if !ok {
			j = len(dict)
			index[string(s.v)] = j
			dict = append(dict, s.v)
		}
		idx[i] = j
	}
	dst = append(dst, kindGeneric)
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	dst = binary.AppendVarint(dst, ss[0].ts)
	dst = append(dst, byte(tsK))
	dst = binary.AppendUvarint(dst, uint64(len(dict)))
	for _, v := range dict {
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	width := indexWidth(len(dict))
	w := bitWriter{buf: dst}
	for i := 1; i < len(ss); i++ {
		w.rice(tsv[i-1], tsK)
		if idx[i] == idx[i-1] {
			w.write(0, 1)
		} else {
			w.write(1, 1)
			w.write(uint64(idx[i]), width)
		}
	}
	return w.bytes()
}

func indexWidth(n int) uint {
	w := uint(0)
	for 1<<w < n {
		w++
	}
	return w
}

// chunkIter decodes a chunk reading by reading without allocating per
// reading (except Value of numeric chunks).
type chunkIter struct {
	kind byte
	n, i int
	r    bitReader
	err  error

	ts, delta int64
	tsK, vK   uint

	// numeric
	scale, d      uint8
	flags         byte
	v, vdelta     int64
	divisorFloat  float64
	firstDecimals uint8

	// generic
	dict  [][]byte
	fval  []float64
	fstat []int8 // 0 unknown, 1 number, 2 not a number
	width uint
	idx   int
}

// newChunkIter parses the header; the first next() yields the first reading.
func newChunkIter(b []byte) (*chunkIter, error) {
	it := &chunkIter{}
	if err := it.reset(b); err != nil {
		return nil, err
	}
	return it, nil
}

func (it *chunkIter) reset(b []byte) error {
	*it = chunkIter{dict: it.dict[:0], fval: it.fval[:0], fstat: it.fstat[:0]}
	if len(b) < 1 {
		return errCorruptChunk
	}
	it.kind = b[0]
	p := 1
	n, k := binary.Uvarint(b[p:])
	if k <= 0 || n == 0 {
		return errCorruptChunk
	}
	p += k
	t0, k := binary.Varint(b[p:])
	if k <= 0 {
		return errCorruptChunk
	}
	p += k
	it.ts = t0
	if p >= len(b) {
		return errCorruptChunk
	}
	it.tsK = uint(b[p])
	p++
	switch it.kind {
	case kindNumeric:
		if p+3 > len(b) {
			return errCorruptChunk
		}
		it.scale, it.flags, it.vK = b[p], b[p+1], uint(b[p+2])
		p += 3
		v0, k := binary.Varint(b[p:])
		if k <= 0 || it.scale > maxDecimals {
			return errCorruptChunk
		}
		p += k
		it.v = v0
		it.d = it.scale
		if it.flags&flagDStream != 0 {
			if p >= len(b) || b[p] > it.scale {
				return errCorruptChunk
			}
			it.d = b[p]
			p++
		}
		it.divisorFloat = float64(pow10[it.scale])
	case kindGeneric:
		dn, k := binary.Uvarint(b[p:])
		if k <= 0 || dn == 0 || dn > uint64(len(b)) {
			return errCorruptChunk
		}
		p += k
		for j := uint64(0); j < dn; j++ {
			l, k := binary.Uvarint(b[p:])
			if k <= 0 || l > uint64(len(b)-p-k) {
				return errCorruptChunk
			}
			p += k
			it.dict = append(it.dict, b[p:p+int(l):p+int(l)])
			p += int(l)
		}
		it.width = indexWidth(len(it.dict))
		it.fval = append(it.fval, make([]float64, len(it.dict))...)
		it.fstat = append(it.fstat, make([]int8, len(it.dict))...)
	default:
		return errCorruptChunk
	}
	if it.tsK > 63 || it.vK > 63 {
		return errCorruptChunk
	}
	// Every reading after the first takes at least two bits.
	if n-1 > uint64(len(b)-p)*4 {
		return errCorruptChunk
	}
	it.n = int(n)
	it.r = bitReader{buf: b[p:]}
	return nil
}

func (it *chunkIter) next() bool {
	if it.err != nil || it.i >= it.n {
		return false
	}
	if it.i > 0 && !it.step() {
		it.err = errCorruptChunk
		return false
	}
	it.i++
	return true
}

func (it *chunkIter) step() bool {
	u, ok := it.r.rice(it.tsK)
	if !ok {
		return false
	}
	it.delta += unzigzag(u)
	it.ts += it.delta
	if it.kind == kindNumeric {
		u, ok := it.r.rice(it.vK)
		if !ok {
			return false
		}
		if it.flags&flagDoD != 0 {
			it.vdelta += unzigzag(u)
			it.v += it.vdelta
		} else {
			it.v += unzigzag(u)
		}
		if it.flags&flagDStream != 0 {
			b, ok := it.r.read(1)
			if !ok {
				return false
			}
			if b == 1 {
				d, ok := it.r.read(4)
				if !ok || uint8(d) > it.scale {
					return false
				}
				it.d = uint8(d)
			}
		}
		return true
	}
	b, ok := it.r.read(1)
	if !ok {
		return false
	}
	if b == 1 {
		j, ok := it.r.read(it.width)
		if !ok || j >= uint64(len(it.dict)) {
			return false
		}
		it.idx = int(j)
	}
	return true
}

// TS is the current reading's time in unix milliseconds.
func (it *chunkIter) TS() int64 { return it.ts }

// Value appends the current reading's JSON to dst.
func (it *chunkIter) Value(dst []byte) []byte {
	if it.kind == kindNumeric {
		return appendScaled(dst, it.v/pow10[it.scale-it.d], it.d)
	}
	return append(dst, it.dict[it.idx]...)
}

// Float is the current value as a number, when it is a JSON number.
func (it *chunkIter) Float() (float64, bool) {
	if it.kind == kindNumeric {
		return float64(it.v) / it.divisorFloat, true
	}
	switch it.fstat[it.idx] {
	case 1:
		return it.fval[it.idx], true
	case 2:
		return 0, false
	}
	f, ok := jsonNumber(it.dict[it.idx])
	it.fval[it.idx] = f
	it.fstat[it.idx] = 2
	if ok {
		it.fstat[it.idx] = 1
	}
	return f, ok
}

// jsonNumber parses v when it is a JSON number (true/false are not).
func jsonNumber(v []byte) (float64, bool) {
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// decodeChunk decodes a whole chunk (tests, compaction of small chunks).
func decodeChunk(b []byte) ([]sample, error) {
	it, err := newChunkIter(b)
	if err != nil {
		return nil, err
	}
	out := make([]sample, 0, min(it.n, 4096))
	for it.next() {
		out = append(out, sample{ts: it.TS(), v: it.Value(nil)})
	}
	if it.err != nil {
		return out, fmt.Errorf("reading %d of %d: %w", it.i, it.n, it.err)
	}
	return out, nil
}
