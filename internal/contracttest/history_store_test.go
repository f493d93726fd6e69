package contracttest

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/testgw"
)

// histReading is one reading the test imported.
type histReading struct {
	ts    time.Time
	value string // JSON text
}

// histWeek is 7 days of a numeric label and an on/off label, ending at end.
type histWeek struct {
	from, to time.Time // [from, to): every reading's ts is inside
	temp     []histReading
	relay    []histReading
}

// histMakeWeek builds the readings: one every 10–30 s (with random
// milliseconds, never on a whole minute) for temp, a random walk with two
// decimals; for relay, one every 5–15 minutes, "on"/"off" repeated,
// switching every 5–7 hours.
func histMakeWeek(rng *rand.Rand, end time.Time) histWeek {
	w := histWeek{from: end.Add(-7 * 24 * time.Hour), to: end}
	step := func(ts time.Time) time.Time {
		ts = ts.Add(time.Duration(10000+rng.Intn(20000)) * time.Millisecond)
		if ts.UnixMilli()%60000 == 0 {
			ts = ts.Add(time.Millisecond)
		}
		return ts
	}
	temp := 21.0
	for ts := step(w.from); ts.Before(end); ts = step(ts) {
		temp += (rng.Float64() - 0.5) * 0.3
		v := math.Round(temp*100) / 100
		w.temp = append(w.temp, histReading{ts, strconv.FormatFloat(v, 'f', -1, 64)})
	}
	on := false
	next := w.from.Add(time.Duration(5*3600+rng.Intn(2*3600)) * time.Second)
	slow := func(ts time.Time) time.Time {
		return ts.Add(time.Duration(300000+rng.Intn(600000)) * time.Millisecond)
	}
	for ts := slow(w.from); ts.Before(end); ts = slow(ts) {
		if ts.After(next) {
			on = !on
			next = ts.Add(time.Duration(5*3600+rng.Intn(2*3600)) * time.Second)
		}
		v := `"off"`
		if on {
			v = `"on"`
		}
		w.relay = append(w.relay, histReading{ts, v})
	}
	return w
}

// histLines is the import body lines: ts alternately as unix milliseconds
// and RFC 3339 with milliseconds.
func histLines(label string, rs []histReading) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		ts := strconv.FormatInt(r.ts.UnixMilli(), 10)
		if i%2 == 1 {
			ts = `"` + r.ts.UTC().Format("2006-01-02T15:04:05.000Z07:00") + `"`
		}
		out[i] = fmt.Sprintf(`{"label":%q,"value":%s,"ts":%s}`, label, r.value, ts)
	}
	return out
}

// histIn is the readings with from <= ts <= to.
func histIn(rs []histReading, from, to time.Time) []histReading {
	var out []histReading
	for _, r := range rs {
		if !r.ts.Before(from) && !r.ts.After(to) {
			out = append(out, r)
		}
	}
	return out
}

// histResolution parses a bucket width such as "10s", "5m", "1h", "1d".
func histResolution(s string) (time.Duration, bool) {
	if len(s) < 2 {
		return 0, false
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n <= 0 {
		return 0, false
	}
	unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}[s[len(s)-1]]
	if unit == 0 {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// histCheckBuckets checks a bucketed answer against the imported readings.
func histCheckBuckets(t *testing.T, h histRanged, rs []histReading, from, to time.Time, maxPoints int) {
	t.Helper()
	if h.Resolution == "raw" || h.Resolution == "changes" {
		t.Fatalf("resolution %q for %d readings with max_points %d: want equal time buckets", h.Resolution, len(histIn(rs, from, to)), maxPoints)
	}
	if len(h.Points) == 0 || len(h.Points) > maxPoints {
		t.Fatalf("%d bucket points, want 1..%d (resolution %s)", len(h.Points), maxPoints, h.Resolution)
	}
	width, widthOK := histResolution(h.Resolution)
	if !widthOK {
		t.Errorf("resolution %q is not a bucket width like 10s, 1m, 1h", h.Resolution)
	}
	in := histIn(rs, from, to)
	sum := 0
	var prev time.Time
	for i, p := range h.Points {
		ts := histParseTS(t, p.TS)
		if p.Min == nil || p.Max == nil || p.Mean == nil || p.Last == nil || p.Count == nil {
			t.Fatalf("bucket %d lacks min/max/mean/last/count: %+v", i, p)
		}
		if i > 0 && !ts.After(prev) {
			t.Errorf("bucket %d ts %s not after bucket %d's %s: want oldest first", i, p.TS, i-1, prev.Format(time.RFC3339Nano))
		}
		prev = ts
		if *p.Count <= 0 {
			t.Errorf("bucket %s count %d, want > 0", p.TS, *p.Count)
		}
		if !(*p.Min <= *p.Mean && *p.Mean <= *p.Max && *p.Min <= *p.Last && *p.Last <= *p.Max) {
			t.Errorf("bucket %s: min %v mean %v last %v max %v: want min <= mean, last <= max", p.TS, *p.Min, *p.Mean, *p.Last, *p.Max)
		}
		sum += *p.Count
		if !widthOK {
			continue
		}
		// The bucket [ts, ts+width) against the readings themselves.
		var n int
		mn, mx, total, last := math.Inf(1), math.Inf(-1), 0.0, math.NaN()
		lo := sort.Search(len(in), func(i int) bool { return !in[i].ts.Before(ts) })
		hi := sort.Search(len(in), func(i int) bool { return !in[i].ts.Before(ts.Add(width)) })
		for _, r := range in[lo:hi] {
			v, _ := strconv.ParseFloat(r.value, 64)
			n++
			mn, mx, total, last = math.Min(mn, v), math.Max(mx, v), total+v, v
		}
		if n != *p.Count {
			t.Errorf("bucket %s (%s): count %d, the imported readings in it are %d", p.TS, h.Resolution, *p.Count, n)
			continue
		}
		const eps = 1e-6
		if math.Abs(mn-*p.Min) > eps || math.Abs(mx-*p.Max) > eps || math.Abs(last-*p.Last) > eps || math.Abs(total/float64(n)-*p.Mean) > 1e-3 {
			t.Errorf("bucket %s (%s): min/max/mean/last %v/%v/%v/%v, the imported readings give %v/%v/%v/%v",
				p.TS, h.Resolution, *p.Min, *p.Max, *p.Mean, *p.Last, mn, mx, total/float64(n), last)
		}
	}
	if sum != len(in) {
		t.Errorf("bucket counts sum to %d, the range holds %d readings (resolution %s, %d points)", sum, len(in), h.Resolution, len(h.Points))
	}
}

// TestHistoryRangesAndExport imports 7 days of a numeric and an on/off label
// into a device with no live board, then checks ranged queries at each
// resolution, the parameter errors, and CSV/NDJSON exports against what was
// imported.
func TestHistoryRangesAndExport(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gwrange", "")+`  - id: imp
    transport: ws-listen
    token: "imp-token-0123456789"
history:
  raw: 30d
`)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	end := time.Now().Truncate(time.Hour)
	w := histMakeWeek(rng, end)
	lines := append(histLines("temp", w.temp), histLines("relay", w.relay)...)
	// Requests of at most 1 MiB, so the import is split across several.
	res := histImport(t, g, "imp", lines, 1<<20)
	total := len(w.temp) + len(w.relay)
	if res.Imported != total || res.Rejected != 0 {
		t.Fatalf("import of %d good lines: imported %d rejected %d %v", total, res.Imported, res.Rejected, res.Errors)
	}
	t.Logf("imported %d temp and %d relay readings over 7 days", len(w.temp), len(w.relay))
	// Imported readings need not be visible at once: wait for all of them
	// (a coarse 7-day query counts temp, an export lists relay).
	histPoll(t, 20*time.Second, func() string {
		h := histQuery(t, g, "imp", url.Values{"label": {"temp"}, "from": {histMs(w.from)}, "to": {histMs(w.to)}, "max_points": {"10"}})
		n := 0
		for _, p := range h.Points {
			if p.Count != nil {
				n += *p.Count
			}
		}
		relay := histExport(t, g, url.Values{"device": {"imp"}, "label": {"relay"}})
		if n != len(w.temp) || len(relay) != len(w.relay) {
			return fmt.Sprintf("the history holds %d of %d temp and %d of %d relay readings", n, len(w.temp), len(relay), len(w.relay))
		}
		return ""
	})

	rq := func(label string, from, to time.Time, maxPoints int) url.Values {
		q := url.Values{"label": {label}, "from": {histMs(from)}, "to": {histMs(to)}}
		if maxPoints > 0 {
			q.Set("max_points", strconv.Itoa(maxPoints))
		}
		return q
	}

	t.Run("1h is raw, exactly the imported points, oldest first", func(t *testing.T) {
		from, to := end.Add(-time.Hour), end
		h := histQuery(t, g, "imp", rq("temp", from, to, 1000))
		if h.Resolution != "raw" {
			t.Fatalf("resolution %q, want raw", h.Resolution)
		}
		if h.Device != "imp" || h.Label != "temp" {
			t.Errorf("device/label %q/%q, want imp/temp", h.Device, h.Label)
		}
		if f := histParseTS(t, h.From); !f.Equal(from) {
			t.Errorf("from %s, want %s", h.From, from.UTC().Format(time.RFC3339Nano))
		}
		if f := histParseTS(t, h.To); !f.Equal(to) {
			t.Errorf("to %s, want %s", h.To, to.UTC().Format(time.RFC3339Nano))
		}
		want := histIn(w.temp, from, to)
		if len(h.Points) != len(want) {
			t.Fatalf("%d raw points, imported %d in range", len(h.Points), len(want))
		}
		for i, p := range h.Points {
			if ts := histParseTS(t, p.TS); !ts.Equal(want[i].ts) || histCompact(p.Value) != want[i].value {
				t.Fatalf("point %d: %s=%s, imported %s=%s", i, p.TS, p.Value, want[i].ts.UTC().Format(time.RFC3339Nano), want[i].value)
			}
		}
	})

	t.Run("24h is bucketed", func(t *testing.T) {
		from, to := end.Add(-24*time.Hour), end
		h := histQuery(t, g, "imp", rq("temp", from, to, 1000))
		t.Logf("24h: resolution %s, %d points", h.Resolution, len(h.Points))
		histCheckBuckets(t, h, w.temp, from, to, 1000)
	})

	t.Run("7d is bucketed", func(t *testing.T) {
		h := histQuery(t, g, "imp", rq("temp", w.from, w.to, 1000))
		t.Logf("7d: resolution %s, %d points", h.Resolution, len(h.Points))
		histCheckBuckets(t, h, w.temp, w.from, w.to, 1000)
	})

	t.Run("max_points 50 gives at most 50 points", func(t *testing.T) {
		for _, span := range []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour} {
			from, to := end.Add(-span), end
			h := histQuery(t, g, "imp", rq("temp", from, to, 50))
			t.Logf("%v with max_points 50: resolution %s, %d points", span, h.Resolution, len(h.Points))
			histCheckBuckets(t, h, w.temp, from, to, 50)
		}
	})

	t.Run("relative from and the default to", func(t *testing.T) {
		h := histQuery(t, g, "imp", url.Values{"label": {"temp"}, "from": {"-7d"}, "max_points": {"200"}})
		if len(h.Points) == 0 || len(h.Points) > 200 {
			t.Fatalf("from=-7d max_points=200: %d points (resolution %s)", len(h.Points), h.Resolution)
		}
		to := histParseTS(t, h.To)
		if d := time.Since(to); d < -5*time.Second || d > time.Minute {
			t.Errorf("to %s without a to parameter: want now", h.To)
		}
	})

	t.Run("on/off over 7 days gives its changes", func(t *testing.T) {
		from := w.from.Add(3*time.Hour + 17*time.Minute + 123*time.Millisecond)
		in := histIn(w.relay, from, w.to)
		// The value in force at from, then each differing reading.
		var inForce string
		for _, r := range w.relay {
			if r.ts.After(from) {
				break
			}
			inForce = r.value
		}
		want := []histReading{{from, inForce}}
		for _, r := range in {
			if r.value != want[len(want)-1].value {
				want = append(want, r)
			}
		}
		if len(want) > 100 {
			t.Fatalf("test data: %d changes, more than max_points 100", len(want))
		}
		h := histQuery(t, g, "imp", rq("relay", from, w.to, 100))
		if h.Resolution != "changes" {
			t.Fatalf("resolution %q for %d on/off readings with max_points 100, want changes", h.Resolution, len(in))
		}
		if len(h.Points) != len(want) {
			t.Errorf("%d change points, want %d (the value in force at from, then %d changes)", len(h.Points), len(want), len(want)-1)
		}
		for i := 0; i < len(h.Points) && i < len(want); i++ {
			p := h.Points[i]
			ts := histParseTS(t, p.TS)
			if histCompact(p.Value) != want[i].value {
				t.Errorf("change %d: value %s, want %s", i, p.Value, want[i].value)
			}
			if i == 0 {
				if ts.After(from) {
					t.Errorf("first change point at %s is after from %s: it must be the value in force at from", p.TS, from.UTC().Format(time.RFC3339Nano))
				}
				continue
			}
			if !ts.Equal(want[i].ts) {
				t.Errorf("change %d at %s, the reading that changed it is at %s", i, p.TS, want[i].ts.UTC().Format(time.RFC3339Nano))
			}
		}

		// Fewer points than changes: never more than max_points, each a
		// change, ending with the newest change.
		h = histQuery(t, g, "imp", rq("relay", from, w.to, 5))
		if h.Resolution != "changes" || len(h.Points) == 0 || len(h.Points) > 5 {
			t.Fatalf("max_points 5: resolution %q, %d points; want changes, 1..5", h.Resolution, len(h.Points))
		}
		for i := 1; i < len(h.Points); i++ {
			if histCompact(h.Points[i].Value) == histCompact(h.Points[i-1].Value) {
				t.Errorf("max_points 5: points %d and %d both %s: a change point must differ from the one before", i-1, i, h.Points[i].Value)
			}
		}
		if last := h.Points[len(h.Points)-1]; histCompact(last.Value) != want[len(want)-1].value || !histParseTS(t, last.TS).Equal(want[len(want)-1].ts) {
			t.Errorf("max_points 5: last point %s=%s, want the newest change %s=%s", last.TS, last.Value, want[len(want)-1].ts.UTC().Format(time.RFC3339Nano), want[len(want)-1].value)
		}
	})

	t.Run("unknown label is 200 with no points", func(t *testing.T) {
		h := histQuery(t, g, "imp", rq("nosuch", w.from, w.to, 100))
		if len(h.Points) != 0 {
			t.Errorf("unknown label: %d points", len(h.Points))
		}
	})

	t.Run("bad parameters are 400 naming the parameter", func(t *testing.T) {
		base := "/api/devices/imp/history?label=temp"
		cases := []struct {
			query string
			names []string // the error must name one of these
		}{
			{"&from=yesterday", []string{"from"}},
			{"&from=-1h&to=tomorrow", []string{"to"}},
			{"&from=2026-13-45T00:00:00Z", []string{"from"}},
			{"&from=" + histMs(end) + "&to=" + histMs(end.Add(-time.Hour)), []string{"from", "to"}},
			{"&from=-1h&max_points=0", []string{"max_points"}},
			{"&from=-1h&max_points=10001", []string{"max_points"}},
			{"&from=-1h&max_points=ten", []string{"max_points"}},
			{"&from=-1h&max_points=-5", []string{"max_points"}},
		}
		for _, c := range cases {
			code, body := g.Get(base + c.query)
			if code != 400 {
				t.Errorf("%s: %d %.200s, want 400", c.query, code, body)
				continue
			}
			named := false
			for _, n := range c.names {
				named = named || strings.Contains(string(body), n)
			}
			if !named {
				t.Errorf("%s: 400 %s does not name %v", c.query, body, c.names)
			}
		}
		if code, body := g.Get("/api/devices/imp/history?label=temp&from=-1h&max_points=10000"); code != 200 {
			t.Errorf("max_points=10000 (the maximum): %d %.200s, want 200", code, body)
		}
	})

	t.Run("unknown device is 404", func(t *testing.T) {
		for _, p := range []string{
			"/api/devices/nosuch/history?label=temp&from=-1h",
			"/api/devices/nosuch/availability?from=-1h",
		} {
			if code, body := g.Get(p); code != 404 {
				t.Errorf("GET %s: %d %.200s, want 404", p, code, body)
			}
		}
		if code, body := g.Do("POST", "/api/devices/nosuch/history", []byte(`{"label":"a","value":1,"ts":1000}`+"\n")); code != 404 {
			t.Errorf("import into an unknown device: %d %.200s, want 404", code, body)
		}
	})

	t.Run("CSV export parses back to what was imported", func(t *testing.T) {
		code, body := g.Get("/api/export?device=imp&label=temp&format=csv")
		if code != 200 {
			t.Fatalf("CSV export: %d %.300s", code, body)
		}
		recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if err != nil {
			t.Fatalf("CSV export does not parse: %v", err)
		}
		if len(recs) == 0 || strings.Join(recs[0], ",") != "ts,device,label,value" {
			t.Fatalf("CSV header %v, want ts,device,label,value", recs[:min(1, len(recs))])
		}
		rows := recs[1:]
		if len(rows) != len(w.temp) {
			t.Fatalf("CSV export: %d rows, imported %d", len(rows), len(w.temp))
		}
		for i, r := range rows {
			want := w.temp[i]
			if ts := histParseTS(t, r[0]); !ts.Equal(want.ts) || r[1] != "imp" || r[2] != "temp" || r[3] != want.value {
				t.Fatalf("CSV row %d: %v, imported %s imp temp %s", i+1, r, want.ts.UTC().Format(time.RFC3339Nano), want.value)
			}
		}
	})

	t.Run("NDJSON export parses line by line, in time order", func(t *testing.T) {
		recs := histExport(t, g, url.Values{"device": {"imp"}})
		if len(recs) != total {
			t.Fatalf("NDJSON export: %d lines, imported %d", len(recs), total)
		}
		byLabel := map[string][]histReading{}
		var prev time.Time
		for i, r := range recs {
			ts := histParseTS(t, r.TS)
			if ts.Before(prev) {
				t.Fatalf("NDJSON line %d at %s is before the line above (%s): want time order", i+1, r.TS, prev.Format(time.RFC3339Nano))
			}
			prev = ts
			if r.Device != "imp" {
				t.Fatalf("NDJSON line %d: device %q", i+1, r.Device)
			}
			byLabel[r.Label] = append(byLabel[r.Label], histReading{ts, histCompact(r.Value)})
		}
		for label, want := range map[string][]histReading{"temp": w.temp, "relay": w.relay} {
			got := byLabel[label]
			if len(got) != len(want) {
				t.Errorf("NDJSON %s: %d readings, imported %d", label, len(got), len(want))
				continue
			}
			for i := range got {
				if !got[i].ts.Equal(want[i].ts) || got[i].value != want[i].value {
					t.Errorf("NDJSON %s reading %d: %v=%s, imported %v=%s", label, i, got[i].ts, got[i].value, want[i].ts, want[i].value)
					break
				}
			}
		}
	})

	t.Run("time-filtered export holds only the range", func(t *testing.T) {
		from := w.from.Add(36*time.Hour + 12345*time.Millisecond)
		to := from.Add(5 * time.Hour)
		recs := histExport(t, g, url.Values{"device": {"imp"}, "from": {from.UTC().Format(time.RFC3339Nano)}, "to": {histMs(to)}})
		want := len(histIn(w.temp, from, to)) + len(histIn(w.relay, from, to))
		for _, r := range recs {
			if ts := histParseTS(t, r.TS); ts.Before(from) || ts.After(to) {
				t.Fatalf("export from %v to %v holds %s", from, to, r.TS)
			}
		}
		if len(recs) != want {
			t.Errorf("export from %v to %v: %d readings, imported %d in that range", from, to, len(recs), want)
		}
		tempOnly := histExport(t, g, url.Values{"device": {"imp"}, "label": {"relay"}, "from": {histMs(from)}, "to": {histMs(to)}})
		if len(tempOnly) != len(histIn(w.relay, from, to)) {
			t.Errorf("export label=relay in range: %d, imported %d", len(tempOnly), len(histIn(w.relay, from, to)))
		}
	})
}

// TestHistoryImportBadInput: bad lines are rejected by number (the first
// 10 listed, all counted) and the rest stored; a body over 16 MiB is 413
// and stores nothing.
func TestHistoryImportBadInput(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gwimp", "")+`  - id: imp
    transport: ws-listen
    token: "imp-token-0123456789"
`)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	good := func(i int) string {
		return fmt.Sprintf(`{"label":"v","value":%d,"ts":%d}`, i, base.Add(time.Duration(i)*time.Second).UnixMilli())
	}
	bad := []string{
		`{"label":"v","value":1,"ts":`, // bad JSON
		`not json at all`,
		`{"label":"v","ts":1700000000000}`,              // missing value
		`{"label":"v","value":null,"ts":1700000000000}`, // null value
		`{"label":"v","value":2,"ts":"yesterday"}`,      // bad ts
		`{"label":"v","value":2,"ts":-5}`,
		`{"label":"v","value":2}`,                                                             // missing ts
		`{"label":"a/b","value":2,"ts":1700000000000}`,                                        // bad label
		`{"label":"","value":2,"ts":1700000000000}`,                                           // empty label
		`{"value":2,"ts":1700000000000}`,                                                      // missing label
		`{"label":"v","value":2,"ts":"2026-02-30T00:00:00Z"}`,                                 // impossible date
		fmt.Sprintf(`{"label":"v","value":2,"ts":%d}`, time.Now().Add(time.Hour).UnixMilli()), // future
		`[1,2,3]`,
	}
	var lines []string
	var badLines []int
	n := 0
	for i := 0; i < 40; i++ {
		if i%3 == 1 && len(badLines) < len(bad) {
			lines = append(lines, bad[len(badLines)])
			badLines = append(badLines, len(lines))
			continue
		}
		lines = append(lines, good(n))
		n++
	}
	// A blank line is not an error.
	lines = append(lines[:5], append([]string{""}, lines[5:]...)...)
	for i := range badLines {
		if badLines[i] > 5 {
			badLines[i]++
		}
	}
	code, body := g.Do("POST", "/api/devices/imp/history", []byte(strings.Join(lines, "\n")+"\n"))
	if code != 200 {
		t.Fatalf("import with bad lines: %d %.300s, want 200 (the good lines stored)", code, body)
	}
	var res histImportResult
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("import answer: %v: %s", err, body)
	}
	t.Logf("answer: %s", body)
	if res.Imported != n || res.Rejected != len(bad) {
		t.Errorf("imported %d rejected %d, want %d and %d", res.Imported, res.Rejected, n, len(bad))
	}
	if len(res.Errors) != 10 {
		t.Errorf("%d errors listed, want the first 10 of %d", len(res.Errors), len(bad))
	}
	for i, e := range res.Errors {
		if i >= len(badLines) {
			break
		}
		if prefix := fmt.Sprintf("line %d: ", badLines[i]); !strings.HasPrefix(e, prefix) || len(e) <= len(prefix) {
			t.Errorf("error %d %q: want %q and the reason (the line is %q)", i, e, prefix+"…", lines[badLines[i]-1])
		}
	}
	histPoll(t, 10*time.Second, func() string {
		recs := histExport(t, g, url.Values{"device": {"imp"}})
		if len(recs) != n {
			return fmt.Sprintf("export holds %d readings, %d good lines were imported: %v", len(recs), n, recs)
		}
		for i, r := range recs {
			if r.Label != "v" || histCompact(r.Value) != strconv.Itoa(i) {
				return fmt.Sprintf("export reading %d is %s=%s, want v=%d", i, r.Label, r.Value, i)
			}
		}
		return ""
	})

	t.Run("over 16 MiB is 413 and stores nothing", func(t *testing.T) {
		// Good lines, 16 MiB and a little more.
		b := make([]byte, 0, 16<<20+100)
		for i := int64(0); len(b) <= 16<<20; i++ {
			b = append(b, `{"label":"big","value":1,"ts":`...)
			b = strconv.AppendInt(b, base.UnixMilli()+i, 10)
			b = append(b, "}\n"...)
		}
		code, body := g.Do("POST", "/api/devices/imp/history", b)
		if code != 413 {
			t.Fatalf("import of %d bytes: %d %.300s, want 413", len(b), code, body)
		}
		// A later import is a barrier: the refused one must not show up.
		res := histImport(t, g, "imp", []string{fmt.Sprintf(`{"label":"after","value":1,"ts":%d}`, base.UnixMilli())}, 1<<20)
		if res.Imported != 1 {
			t.Fatalf("import after the 413: %+v", res)
		}
		histPoll(t, 10*time.Second, func() string {
			if len(histExport(t, g, url.Values{"device": {"imp"}, "label": {"after"}})) != 1 {
				return "the import after the 413 is not in the export"
			}
			return ""
		})
		if recs := histExport(t, g, url.Values{"device": {"imp"}, "label": {"big"}}); len(recs) != 0 {
			t.Errorf("the refused body stored %d readings (first %s)", len(recs), recs[0].TS)
		}
		if h := histQuery(t, g, "imp", url.Values{"label": {"big"}, "from": {"-2h"}}); len(h.Points) != 0 {
			t.Errorf("the refused body shows %d points in the history", len(h.Points))
		}
	})
}
