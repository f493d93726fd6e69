package history

import (
	"bytes"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strconv"
	"testing"
)

func TestParseScaled(t *testing.T) {
	tests := []struct {
		in   string
		m    int64
		d    uint8
		want bool
	}{
		{"0", 0, 0, true},
		{"21.5", 215, 1, true},
		{"21.50", 2150, 2, true},
		{"-0.05", -5, 2, true},
		{"12345678901234567", 12345678901234567, 0, true},
		{"123456789012345678", 0, 0, false}, // 18 digits
		{"1e3", 0, 0, false},
		{"-0", 0, 0, false},
		{"-0.0", 0, 0, false},
		{"0.1234567891", 0, 0, false}, // 10 decimals
		{"\"21\"", 0, 0, false},
		{"true", 0, 0, false},
		{"1.", 0, 0, false},
		{"01", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m, d, ok := parseScaled([]byte(tt.in))
			if ok != tt.want || (ok && (m != tt.m || d != tt.d)) {
				t.Fatalf("parseScaled(%q) = %d, %d, %v; want %d, %d, %v", tt.in, m, d, ok, tt.m, tt.d, tt.want)
			}
		})
	}
}

func samples(ts []int64, vs ...string) []sample {
	out := make([]sample, len(ts))
	for i := range ts {
		out[i] = sample{ts: ts[i], v: []byte(vs[i%len(vs)])}
	}
	return out
}

func seq(start, step int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = start + int64(i)*step
	}
	return out
}

func checkRoundTrip(t *testing.T, in []sample) []byte {
	t.Helper()
	b := encodeChunk(nil, in)
	out, err := decodeChunk(b)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(out) != len(in) {
		t.Fatalf("decoded %d readings, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i].ts != in[i].ts || !bytes.Equal(out[i].v, in[i].v) {
			t.Fatalf("reading %d = %d %s, want %d %s", i, out[i].ts, out[i].v, in[i].ts, in[i].v)
		}
	}
	return b
}

func TestChunkRoundTrip(t *testing.T) {
	now := int64(1764669600123)
	tests := []struct {
		name string
		in   []sample
		kind byte
	}{
		{"one reading", samples([]int64{now}, "1"), kindNumeric},
		{"counter", func() []sample {
			var ss []sample
			for i := 0; i < 500; i++ {
				ss = append(ss, sample{now + int64(i)*1000 + int64(i%3), []byte(strconv.Itoa(1000 + i))})
			}
			return ss
		}(), kindNumeric},
		{"mixed decimals as sent", samples(seq(now, 1000, 9), "21.5", "21.53", "21.50", "-0.5", "3", "0.007"), kindNumeric},
		{"equal timestamps", samples([]int64{now, now, now, now + 1}, "1", "2", "3", "4"), kindNumeric},
		{"strings", samples(seq(now, 997, 50), `"on"`, `"on"`, `"off"`), kindGeneric},
		{"booleans", samples(seq(now, 1000, 20), "true", "false"), kindGeneric},
		{"objects and numbers", samples(seq(now, 1000, 7), `{"a":1}`, "1e300", "[1,2]", "12.5"), kindGeneric},
		{"huge number", samples(seq(now, 1000, 3), "123456789012345678901234567890"), kindGeneric},
		{"1970 and far future", samples([]int64{minTS, 0, 1, maxTS}, "1", "2", "3", "4"), kindNumeric},
		{"big jumps", samples([]int64{0, 1, 1 << 40, 1<<40 + 1, 1 << 45}, "9999999999999999", "-9999999999999999", "0"), kindNumeric},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := checkRoundTrip(t, tt.in)
			if b[0] != tt.kind {
				t.Errorf("kind %d, want %d", b[0], tt.kind)
			}
		})
	}
}

// TestChunkProperty round-trips random chunks: random values of every
// kind, random (sorted, sometimes equal, sometimes far apart) timestamps.
func TestChunkProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	gens := []func() string{
		func() string { return strconv.FormatInt(rng.Int63n(2000)-1000, 10) },
		func() string { return strconv.FormatFloat(20+rng.Float64()*5, 'f', rng.Intn(4), 64) },
		func() string { return strconv.FormatFloat(rng.NormFloat64()*1e6, 'f', -1, 64) },
		func() string { return []string{`"on"`, `"off"`, "true", "false", "null"}[rng.Intn(5)] },
		func() string { return strconv.Quote(fmt.Sprint(rng.Intn(10))) },
		func() string { return strconv.FormatFloat(rng.NormFloat64(), 'g', -1, 64) },
	}
	for iter := 0; iter < 300; iter++ {
		n := 1 + rng.Intn(700)
		ts := make([]int64, n)
		t0 := rng.Int63n(4e12) - 1e12
		for i := range ts {
			switch rng.Intn(10) {
			case 0:
				ts[i] = t0 // equal
			case 1:
				ts[i] = t0 + rng.Int63n(1e10)
			default:
				ts[i] = t0 + int64(i)*1000 + rng.Int63n(10)
			}
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		g1, g2 := gens[rng.Intn(len(gens))], gens[rng.Intn(len(gens))]
		in := make([]sample, n)
		for i := range in {
			g := g1
			if rng.Intn(50) == 0 {
				g = g2
			}
			in[i] = sample{ts: ts[i], v: []byte(g())}
		}
		checkRoundTrip(t, in)
	}
}

func TestChunkDecodeRejectsTruncation(t *testing.T) {
	b := encodeChunk(nil, samples(seq(1000, 1000, 100), "1.5", "2.25", `"x"`))
	for i := 0; i < len(b); i++ {
		decodeChunk(b[:i]) // must not panic; may or may not error
	}
}

func FuzzChunkDecode(f *testing.F) {
	f.Add(encodeChunk(nil, samples(seq(1764669600123, 1000, 50), "21.5", "21.53")))
	f.Add(encodeChunk(nil, samples(seq(0, 1001, 30), `"on"`, `"off"`, `{"a":[1]}`)))
	f.Add(encodeChunk(nil, samples([]int64{minTS, maxTS}, "1", "-99999999999999999")))
	f.Add([]byte{})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		ss, err := decodeChunk(b)
		if err == nil && len(ss) == 0 {
			t.Fatal("no error and no readings")
		}
		it, err := newChunkIter(b)
		if err != nil {
			return
		}
		for it.next() {
			it.Float()
		}
	})
}

func TestRollupRoundTrip(t *testing.T) {
	spec := tiers[tierMinute]
	p0 := int64(1764669600000)
	rng := rand.New(rand.NewSource(2))
	for _, mode := range []string{"decimals", "integers", "floats", "huge"} {
		t.Run(mode, func(t *testing.T) {
			slots := make([]agg, spec.slots())
			for i := range slots {
				if rng.Intn(4) == 0 {
					continue
				}
				for j := 0; j < 1+rng.Intn(80); j++ {
					var f float64
					switch mode {
					case "decimals":
						f = math.Round((20+rng.Float64()*3)*100) / 100
					case "integers":
						f = float64(rng.Int63n(1e6))
					case "floats":
						f = rng.NormFloat64()
					case "huge":
						f = 1e300 * rng.Float64()
					}
					slots[i].add(p0+int64(i)*spec.slot+rng.Int63n(spec.slot), f)
				}
			}
			b := encodeRollup(nil, p0, spec, slots)
			got := make([]agg, spec.slots())
			if err := decodeRollup(b, p0, spec, got); err != nil {
				t.Fatal(err)
			}
			for i := range slots {
				w, g := slots[i], got[i]
				if w.count != g.count || w.min != g.min || w.max != g.max || w.last != g.last || w.lastTS != g.lastTS ||
					math.Abs(w.sum-g.sum) > 1e-9*math.Max(1, math.Abs(w.sum)) {
					t.Fatalf("slot %d: got %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func FuzzRollupDecode(f *testing.F) {
	spec := tiers[tierHour]
	slots := make([]agg, spec.slots())
	slots[3].add(3*spec.slot, 21.5)
	f.Add(encodeRollup(nil, 0, spec, slots))
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeRollup(b, 0, spec, make([]agg, spec.slots()))
	})
}
