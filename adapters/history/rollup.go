package history

import (
	"encoding/binary"
	"errors"
	"math"
)

// Rollup tiers. Each rollup row holds one period of one label's slots:
// tierMinute rows hold the 60 one-minute slots of an hour, tierHour rows the
// 24 one-hour slots of a day (UTC, aligned on the unix epoch).
const (
	tierMinute = 1
	tierHour   = 2
)

type tierSpec struct {
	slot   int64 // ms
	period int64 // ms
}

var tiers = map[int]tierSpec{
	tierMinute: {slot: 60_000, period: 3_600_000},
	tierHour:   {slot: 3_600_000, period: 86_400_000},
}

func (t tierSpec) slots() int { return int(t.period / t.slot) }

// agg is the rollup of the numeric readings of one slot.
type agg struct {
	count               int64
	min, max, sum, last float64
	lastTS              int64 // unix ms of last, to merge backfills correctly
}

func (a *agg) add(ts int64, f float64) {
	if a.count == 0 {
		*a = agg{count: 1, min: f, max: f, sum: f, last: f, lastTS: ts}
		return
	}
	a.count++
	a.min = math.Min(a.min, f)
	a.max = math.Max(a.max, f)
	a.sum += f
	if ts >= a.lastTS {
		a.last, a.lastTS = f, ts
	}
}

func (a *agg) merge(b agg) {
	if b.count == 0 {
		return
	}
	if a.count == 0 {
		*a = b
		return
	}
	a.count += b.count
	a.min = math.Min(a.min, b.min)
	a.max = math.Max(a.max, b.max)
	a.sum += b.sum
	if b.lastTS >= a.lastTS {
		a.last, a.lastTS = b.last, b.lastTS
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func floorTo(ts, width int64) int64 { return floorDiv(ts, width) * width }

const (
	rollupScaled = 1
	rollupFloat  = 2
	// maxExact bounds scaled rollup integers: exact in float64 and far from
	// int64 overflow.
	maxExact = 1 << 52
)

var errCorruptRollup = errors.New("history: corrupt rollup")

// encodeRollup writes the non-empty slots of one period. Values are stored
// as integers scaled by 10^S when that is exact (readings with a few
// decimals), as deltas from the previous slot's last value; otherwise as
// float64 bits.
func encodeRollup(dst []byte, periodStart int64, t tierSpec, slots []agg) []byte {
	S, scaled := rollupScale(slots)
	n := 0
	for _, a := range slots {
		if a.count > 0 {
			n++
		}
	}
	if scaled {
		dst = append(dst, rollupScaled, byte(S))
	} else {
		dst = append(dst, rollupFloat)
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	p := float64(pow10[S])
	prevSlot := -1
	var prevLast int64
	for i, a := range slots {
		if a.count == 0 {
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(i-prevSlot-1))
		prevSlot = i
		dst = binary.AppendUvarint(dst, uint64(a.count))
		off := a.lastTS - (periodStart + int64(i)*t.slot)
		dst = binary.AppendUvarint(dst, uint64(min(max(off, 0), t.slot-1)))
		if !scaled {
			for _, f := range [4]float64{a.min, a.max, a.sum, a.last} {
				dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
			}
			continue
		}
		last := int64(math.Round(a.last * p))
		mn := int64(math.Round(a.min * p))
		mx := int64(math.Round(a.max * p))
		sum := int64(math.Round(a.sum * p))
		dst = binary.AppendVarint(dst, last-prevLast)
		dst = binary.AppendUvarint(dst, uint64(last-mn))
		dst = binary.AppendUvarint(dst, uint64(mx-last))
		dst = binary.AppendVarint(dst, sum-a.count*last)
		prevLast = last
	}
	return dst
}

// rollupScale finds the smallest S for which every min, max and last is an
// integer at scale 10^S and every scaled value and sum is exactly
// representable.
func rollupScale(slots []agg) (uint8, bool) {
next:
	for S := uint8(0); S <= maxDecimals; S++ {
		p := float64(pow10[S])
		for _, a := range slots {
			if a.count == 0 {
				continue
			}
			for _, f := range [3]float64{a.min, a.max, a.last} {
				x := math.Round(f * p)
				if x/p != f {
					continue next
				}
			}
			if math.Abs(a.sum*p) >= maxExact || math.Abs(a.last*p)*float64(a.count) >= maxExact ||
				math.Abs(a.min*p) >= maxExact || math.Abs(a.max*p) >= maxExact || a.count >= maxExact {
				return 0, false
			}
		}
		return S, true
	}
	return 0, false
}

// decodeRollup fills slots (len t.slots()) from a blob.
func decodeRollup(b []byte, periodStart int64, t tierSpec, slots []agg) error {
	for i := range slots {
		slots[i] = agg{}
	}
	if len(b) < 1 {
		return errCorruptRollup
	}
	mode := b[0]
	p := 1
	var S uint8
	switch mode {
	case rollupScaled:
		if len(b) < 2 || b[1] > maxDecimals {
			return errCorruptRollup
		}
		S = b[1]
		p = 2
	case rollupFloat:
	default:
		return errCorruptRollup
	}
	div := float64(pow10[S])
	n, k := binary.Uvarint(b[p:])
	if k <= 0 || n > uint64(len(slots)) {
		return errCorruptRollup
	}
	p += k
	slot := -1
	var prevLast int64
	for j := uint64(0); j < n; j++ {
		var u [3]uint64
		for f := range u {
			v, k := binary.Uvarint(b[p:])
			if k <= 0 {
				return errCorruptRollup
			}
			u[f] = v
			p += k
		}
		if u[0] >= uint64(len(slots)) || slot+1+int(u[0]) >= len(slots) || u[1] == 0 || u[1] >= maxExact {
			return errCorruptRollup
		}
		slot += 1 + int(u[0])
		a := agg{count: int64(u[1]), lastTS: periodStart + int64(slot)*t.slot + int64(min(u[2], uint64(t.slot-1)))}
		if mode == rollupFloat {
			if p+32 > len(b) {
				return errCorruptRollup
			}
			var f [4]float64
			for i := range f {
				f[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[p:]))
				p += 8
			}
			a.min, a.max, a.sum, a.last = f[0], f[1], f[2], f[3]
		} else {
			dl, k1 := binary.Varint(b[p:])
			if k1 <= 0 {
				return errCorruptRollup
			}
			p += k1
			dmn, k2 := binary.Uvarint(b[p:])
			if k2 <= 0 {
				return errCorruptRollup
			}
			p += k2
			dmx, k3 := binary.Uvarint(b[p:])
			if k3 <= 0 {
				return errCorruptRollup
			}
			p += k3
			ds, k4 := binary.Varint(b[p:])
			if k4 <= 0 {
				return errCorruptRollup
			}
			p += k4
			last := prevLast + dl
			prevLast = last
			a.last = float64(last) / div
			a.min = float64(last-int64(dmn)) / div
			a.max = float64(last+int64(dmx)) / div
			a.sum = float64(ds+a.count*last) / div
		}
		slots[slot] = a
	}
	return nil
}
