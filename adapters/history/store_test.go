package history

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mixed appends n seconds of three labels (numeric, string, bool) from
// start and returns what it appended.
func mixed(s *Store, device string, start time.Time, n int) []Reading {
	var rs []Reading
	for i := 0; i < n; i++ {
		ts := start.Add(time.Duration(i)*time.Second + time.Duration(i%5)*time.Millisecond)
		rs = append(rs,
			rd(device, "temp", ts, strconv.FormatFloat(21+float64(i%50)/100, 'f', -1, 64)),
			rd(device, "mode", ts, []string{`"auto"`, `"auto"`, `"manual"`}[i/10%3]),
			rd(device, "led", ts, []string{"true", "false"}[i/7%2]),
		)
	}
	for i := range rs {
		rs[i].Seq = uint64(i + 1)
	}
	s.Append(rs...)
	return rs
}

func TestStoreRoundTripAndRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "history.db")
	s, clock := openTest(t, Options{Path: path})
	rs := mixed(s, "demo", t0, 300)
	flush(t, s)
	check := func(s *Store, stage string) {
		t.Helper()
		for _, label := range []string{"temp", "mode", "led"} {
			r := query(t, s, Query{Device: "demo", Label: label, From: t0, To: t0.Add(time.Hour), MaxPoints: 10000})
			if r.Resolution != "raw" || len(r.Points) != 300 {
				t.Fatalf("%s %s: %s with %d points, want raw 300", stage, label, r.Resolution, len(r.Points))
			}
			var want []Reading
			for _, x := range rs {
				if x.Label == label {
					want = append(want, x)
				}
			}
			for i, p := range r.Points {
				if !p.TS.Equal(want[i].TS.Truncate(time.Millisecond)) || string(p.Value) != string(want[i].Value) {
					t.Fatalf("%s %s point %d = %v %s, want %v %s", stage, label, i, p.TS, p.Value, want[i].TS, want[i].Value)
				}
			}
			rec, err := s.Recent(context.Background(), "demo", label, 10)
			if err != nil || len(rec) != 10 || !rec[9].TS.Equal(want[299].TS.Truncate(time.Millisecond)) {
				t.Fatalf("%s Recent %s = %d points, %v", stage, label, len(rec), err)
			}
		}
		last, maxSeq, err := s.Last(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if maxSeq != uint64(len(rs)) {
			t.Errorf("%s maxSeq %d, want %d", stage, maxSeq, len(rs))
		}
		if l := last["demo"]["temp"]; l.Seq != rs[len(rs)-3].Seq || string(l.Value) != string(rs[len(rs)-3].Value) {
			t.Errorf("%s last temp = %+v, want %+v", stage, l, rs[len(rs)-3])
		}
		labels, _ := s.Labels(context.Background(), "demo")
		if !slices.Equal(labels, []string{"led", "mode", "temp"}) {
			t.Errorf("%s labels %v", stage, labels)
		}
	}
	check(s, "hot")
	compactNow(t, s)
	check(s, "compacted")
	mixed(s, "other", t0, 10) // hot data of another device at restart
	flush(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s2, _ := openTest(t, Options{Path: path, Now: clock.Now})
	check(s2, "reopened")
	if r := query(t, s2, Query{Device: "other", Label: "temp", From: t0, To: t0.Add(time.Hour)}); len(r.Points) != 10 {
		t.Errorf("hot readings after restart: %d, want 10", len(r.Points))
	}
}

func TestBackfill(t *testing.T) {
	s, _ := openTest(t, Options{})
	var want []int64
	add := func(from, to int) {
		for i := from; i < to; i++ {
			ts := t0.Add(time.Duration(i) * time.Second)
			s.Append(rd("d", "x", ts, strconv.Itoa(i)))
			want = append(want, ts.UnixMilli())
		}
	}
	add(100, 200)
	compactNow(t, s)
	add(50, 100) // backfill, after compaction: its own chunk
	flush(t, s)
	add(150, 160) // equal timestamps again
	compactNow(t, s)
	slices.Sort(want)
	r := query(t, s, Query{Device: "d", Label: "x", From: t0, To: t0.Add(time.Hour), MaxPoints: 10000})
	if len(r.Points) != len(want) {
		t.Fatalf("%d points, want %d", len(r.Points), len(want))
	}
	for i, p := range r.Points {
		if p.TS.UnixMilli() != want[i] {
			t.Fatalf("point %d at %v, want %d", i, p.TS, want[i])
		}
	}
	last, _, _ := s.Last(context.Background())
	if v := string(last["d"]["x"].Value); v != "199" {
		t.Errorf("last value %s after backfill, want 199", v)
	}
	// Minute buckets over the same range count every reading once.
	r = query(t, s, Query{Device: "d", Label: "x", From: t0, To: t0.Add(4*time.Minute - time.Millisecond), MaxPoints: 4})
	total := 0
	for _, p := range r.Points {
		total += p.Count
	}
	if r.Resolution != "1m" || total != len(want) {
		t.Errorf("buckets %s total %d, want 1m %d", r.Resolution, total, len(want))
	}
}

// brute computes the expected buckets of width w over [from, to].
func brute(rs []Reading, label string, from, to time.Time, w int64) map[int64]agg {
	first := floorTo(from.UnixMilli(), w)
	end := first + bucketCount(from.UnixMilli(), to.UnixMilli(), w)*w
	out := make(map[int64]agg)
	for _, x := range rs {
		ts := x.TS.UnixMilli()
		if x.Label != label || ts < first || ts >= end {
			continue
		}
		f, _ := strconv.ParseFloat(string(x.Value), 64)
		a := out[floorTo(ts, w)]
		a.add(ts, f)
		out[floorTo(ts, w)] = a
	}
	return out
}

func TestQueryPlanner(t *testing.T) {
	s, clock := openTest(t, Options{Raw: 24 * time.Hour, Minute: 10 * 24 * time.Hour})
	// 30 days at one reading a minute, then 2 hours at 1 Hz, "now" at the end.
	var rs []Reading
	start := t0.Add(-30 * 24 * time.Hour)
	for ts := start; ts.Before(t0.Add(-2 * time.Hour)); ts = ts.Add(time.Minute) {
		rs = append(rs, rd("d", "v", ts, strconv.FormatFloat(float64(ts.Unix()%1000)/100, 'f', 2, 64)))
	}
	for ts := t0.Add(-2 * time.Hour); ts.Before(t0); ts = ts.Add(time.Second) {
		rs = append(rs, rd("d", "v", ts.Add(time.Duration(ts.Unix()%7)*time.Millisecond), strconv.FormatFloat(float64(ts.Unix()%1000)/100, 'f', 2, 64)))
	}
	clock.Set(start)
	for i := 0; i < len(rs); i += 5000 {
		s.Append(rs[i:min(i+5000, len(rs))]...)
		clock.Set(rs[min(i+5000, len(rs))-1].TS)
		compactNow(t, s)
	}
	clock.Set(t0)
	maintainNow(t, s) // raw older than 1 day and minute rollups older than 10 days go
	tests := []struct {
		name       string
		from, to   time.Time
		max        int
		resolution string
	}{
		{"ten minutes raw", t0.Add(-10 * time.Minute), t0, 1000, "raw"},
		{"two hours from raw", t0.Add(-2 * time.Hour), t0, 1000, "10s"},
		{"two hours from minutes", t0.Add(-2 * time.Hour), t0, 100, "2m"},
		{"three days from minutes", t0.Add(-3 * 24 * time.Hour), t0, 1000, "5m"},
		{"30 days from hours", t0.Add(-30 * 24 * time.Hour), t0, 1000, "1h"},
		{"20 days: minutes deleted, widened to hours", t0.Add(-20 * 24 * time.Hour), t0, 10000, "1h"},
		{"old raw deleted, widened to minutes", t0.Add(-5 * 24 * time.Hour), t0.Add(-4 * 24 * time.Hour), 10000, "1m"},
		{"one year", t0.Add(-365 * 24 * time.Hour), t0, 1000, "12h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := query(t, s, Query{Device: "d", Label: "v", From: tt.from, To: tt.to, MaxPoints: tt.max})
			if r.Resolution != tt.resolution {
				t.Fatalf("resolution %s, want %s", r.Resolution, tt.resolution)
			}
			if len(r.Points) > tt.max || len(r.Points) == 0 {
				t.Fatalf("%d points, max %d", len(r.Points), tt.max)
			}
			if r.Resolution == "raw" {
				return
			}
			w := map[string]int64{"10s": 10 * second, "2m": 2 * minute, "5m": 5 * minute, "1h": hour, "1m": minute, "12h": 12 * hour}[r.Resolution]
			want := brute(rs, "v", tt.from, tt.to, w)
			for _, p := range r.Points {
				a := want[p.TS.UnixMilli()]
				// Deleted raw data is only in rollups: compare where the
				// brute force is complete (raw still held or tier exact).
				if a.count != int64(p.Count) || a.min != p.Min || a.max != p.Max || a.last != p.Last || math.Abs(a.sum/float64(a.count)-p.Mean) > 1e-9 {
					t.Fatalf("bucket %v: got %+v, want %+v", p.TS, p, a)
				}
			}
			if len(r.Points) != len(want) {
				t.Fatalf("%d buckets, want %d", len(r.Points), len(want))
			}
		})
	}
	if r := query(t, s, Query{Device: "d", Label: "nope", From: start, To: t0}); len(r.Points) != 0 {
		t.Errorf("unknown label: %d points", len(r.Points))
	}
	if r := query(t, s, Query{Device: "nope", Label: "v", From: start, To: t0}); len(r.Points) != 0 {
		t.Errorf("unknown device: %d points", len(r.Points))
	}
}

func TestChanges(t *testing.T) {
	s, _ := openTest(t, Options{})
	var rs []Reading
	for i := 0; i < 3000; i++ {
		ts := t0.Add(time.Duration(i) * time.Second)
		rs = append(rs, rd("d", "state", ts, fmt.Sprintf(`"s%d"`, i/100)))
	}
	s.Append(rs...)
	compactNow(t, s)
	s.Append(rd("d", "state", t0.Add(3000*time.Second), `"s29"`), rd("d", "state", t0.Add(3001*time.Second), `"hot"`))
	flush(t, s)
	r := query(t, s, Query{Device: "d", Label: "state", From: t0.Add(250 * time.Second), To: t0.Add(time.Hour), MaxPoints: 100})
	if r.Resolution != "changes" {
		t.Fatalf("resolution %s", r.Resolution)
	}
	// in force at From: s2 (set at 200 s); changes s3..s29, hot
	if len(r.Points) != 29 || string(r.Points[0].Value) != `"s2"` || !r.Points[0].TS.Equal(t0.Add(250*time.Second)) ||
		string(r.Points[28].Value) != `"hot"` {
		t.Fatalf("changes: %d points, first %v %s, last %s", len(r.Points), r.Points[0].TS, r.Points[0].Value, r.Points[len(r.Points)-1].Value)
	}
	r = query(t, s, Query{Device: "d", Label: "state", From: t0, To: t0.Add(time.Hour), MaxPoints: 5})
	if len(r.Points) != 5 || string(r.Points[4].Value) != `"hot"` || string(r.Points[0].Value) != `"s26"` {
		t.Fatalf("most recent 5 changes: %+v", r.Points)
	}
}

func TestRetentionFakeClock(t *testing.T) {
	s, clock := openTest(t, Options{})
	for h := 0; h < 3; h++ {
		var rs []Reading
		for i := 0; i < 3600; i += 10 {
			rs = append(rs, rd("d", "t", t0.Add(time.Duration(h)*time.Hour+time.Duration(i)*time.Second), "20.5"))
		}
		s.Append(rs...)
	}
	compactNow(t, s)
	rangeQ := Query{Device: "d", Label: "t", From: t0, To: t0.Add(3 * time.Hour), MaxPoints: 2000}
	if r := query(t, s, rangeQ); r.Resolution != "raw" || len(r.Points) != 1080 {
		t.Fatalf("before retention: %s %d", r.Resolution, len(r.Points))
	}
	clock.Set(t0.Add(8 * 24 * time.Hour))
	maintainNow(t, s)
	if st := s.Stats(); st.RetentionDeleted < 1080 {
		t.Fatalf("retention deleted %d", st.RetentionDeleted)
	}
	r := query(t, s, rangeQ)
	if r.Resolution != "1m" || len(r.Points) != 180 || r.Points[0].Count != 6 {
		t.Fatalf("after raw retention: %s %d points", r.Resolution, len(r.Points))
	}
	clock.Set(t0.Add(91 * 24 * time.Hour))
	maintainNow(t, s)
	r = query(t, s, rangeQ)
	if r.Resolution != "1h" || len(r.Points) != 3 || r.Points[0].Count != 360 || r.Points[0].Mean != 20.5 {
		t.Fatalf("after minute retention: %s %+v", r.Resolution, r.Points)
	}
	clock.Set(t0.Add(6 * 365 * 24 * time.Hour))
	maintainNow(t, s)
	if r := query(t, s, rangeQ); len(r.Points) != 0 {
		t.Fatalf("after hour retention: %+v", r)
	}
	last, _, _ := s.Last(context.Background())
	if string(last["d"]["t"].Value) != "20.5" {
		t.Errorf("last value lost: %+v", last)
	}
}

func TestMaxSizeBigStrings(t *testing.T) {
	const maxSize = 1 << 20
	s, clock := openTest(t, Options{MaxSize: maxSize})
	big := strings.Repeat("x", 4000)
	for i := 0; i < 1200; i++ {
		ts := t0.Add(time.Duration(i) * time.Second)
		clock.Set(ts)
		s.Append(rd("d", "blob", ts, fmt.Sprintf(`"%05d%s"`, i, big)))
		if i%5 == 4 {
			flush(t, s)
		}
	}
	flush(t, s)
	st := s.Stats()
	fi, err := os.Stat(s.opts.Path)
	if err != nil {
		t.Fatal(err)
	}
	const slack = chunkBytes + 64<<10
	if st.SizeBytes > maxSize || fi.Size() > maxSize+slack {
		t.Fatalf("live size %d, file %d, max %d", st.SizeBytes, fi.Size(), maxSize)
	}
	if st.RetentionDeleted == 0 {
		t.Fatal("nothing deleted")
	}
	rec, err := s.Recent(context.Background(), "d", "blob", 1)
	if err != nil || len(rec) != 1 || !strings.HasPrefix(string(rec[0].Value), `"01199`) {
		t.Fatalf("newest reading lost: %v %d", err, len(rec))
	}
}

func TestAvailability(t *testing.T) {
	s, _ := openTest(t, Options{})
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	s.AppendStatus("d", at(0), true, "")
	s.AppendStatus("d", at(10), false, "timeout")
	s.AppendStatus("d", at(11), false, "timeout") // repeated: merged
	s.AppendStatus("d", at(20), true, "")
	s.AppendStatus("other", at(5), false, "x")
	flush(t, s)
	iv, err := s.Availability(context.Background(), "d", at(5), at(30))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		from, to int
		online   bool
	}{{5, 10, true}, {10, 20, false}, {20, -1, true}}
	if len(iv) != len(want) {
		t.Fatalf("%d intervals: %+v", len(iv), iv)
	}
	for i, w := range want {
		if !iv[i].From.Equal(at(w.from)) || iv[i].Online != w.online || (w.to < 0) != (iv[i].To == nil) ||
			(w.to >= 0 && !iv[i].To.Equal(at(w.to))) {
			t.Errorf("interval %d = %+v, want %+v", i, iv[i], w)
		}
	}
	if iv[1].Reason != "timeout" {
		t.Errorf("reason %q", iv[1].Reason)
	}
	iv, _ = s.Availability(context.Background(), "d", at(1), at(5))
	if len(iv) != 1 || iv[0].To == nil || !iv[0].To.Equal(at(10)) {
		t.Errorf("closed interval: %+v", iv)
	}
	if iv, _ := s.Availability(context.Background(), "nope", at(0), at(30)); len(iv) != 0 {
		t.Errorf("unknown device: %+v", iv)
	}
}

func TestExportOrder(t *testing.T) {
	s, _ := openTest(t, Options{})
	mixed(s, "a", t0, 200)
	mixed(s, "b", t0.Add(500*time.Millisecond), 200)
	compactNow(t, s)
	mixed(s, "a", t0.Add(-100*time.Second), 100) // backfill, hot
	flush(t, s)
	var got []Reading
	err := s.Export(context.Background(), ExportFilter{From: t0.Add(-time.Hour), To: t0.Add(time.Hour)}, func(r Reading) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3*500 {
		t.Fatalf("exported %d, want 1500", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].TS.Before(got[i-1].TS) {
			t.Fatalf("out of order at %d: %v after %v", i, got[i].TS, got[i-1].TS)
		}
	}
	n := 0
	err = s.Export(context.Background(), ExportFilter{From: t0, To: t0.Add(50 * time.Second), Device: "b", Label: "temp"}, func(r Reading) error {
		if r.Device != "b" || r.Label != "temp" {
			t.Fatalf("filter leaked %s/%s", r.Device, r.Label)
		}
		n++
		return nil
	})
	if err != nil || n != 50 {
		t.Fatalf("filtered export: %d, %v", n, err)
	}
	stop := fmt.Errorf("stop")
	if err := s.Export(context.Background(), ExportFilter{From: t0, To: t0.Add(time.Hour)}, func(Reading) error { return stop }); err != stop {
		t.Fatalf("callback error: %v", err)
	}
}

func TestBackup(t *testing.T) {
	s, clock := openTest(t, Options{})
	mixed(s, "d", t0, 100)
	compactNow(t, s)
	mixed(s, "d", t0.Add(100*time.Second), 50)
	flush(t, s)
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := s.Backup(context.Background(), dst); err != nil {
		t.Fatal(err)
	}
	if err := s.Backup(context.Background(), dst); err == nil {
		t.Fatal("backup over an existing file succeeded")
	}
	c, _ := openTest(t, Options{Path: dst, Now: clock.Now})
	r := query(t, c, Query{Device: "d", Label: "temp", From: t0, To: t0.Add(time.Hour), MaxPoints: 1000})
	if len(r.Points) != 150 {
		t.Fatalf("backup holds %d points, want 150", len(r.Points))
	}
	var ok string
	if err := c.r.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check %q %v", ok, err)
	}
}

func TestCorruptFileMovedAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "history.db")
	garbage := []byte(strings.Repeat("this is not a database ", 500))
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := openTest(t, Options{Path: path})
	mixed(s, "d", t0, 10)
	flush(t, s)
	if r := query(t, s, Query{Device: "d", Label: "temp", From: t0, To: t0.Add(time.Hour)}); len(r.Points) != 10 {
		t.Fatalf("fresh db: %d points", len(r.Points))
	}
	moved, _ := filepath.Glob(path + ".corrupt-*")
	if len(moved) == 0 {
		t.Fatal("corrupt file not moved aside")
	}
	b, _ := os.ReadFile(moved[0])
	if string(b) != string(garbage) {
		t.Fatal("moved file differs")
	}
}

func TestDiskFullPausesAndResumes(t *testing.T) {
	s, _ := openTest(t, Options{})
	mixed(s, "d", t0, 10)
	flush(t, s)
	var pages int64
	if err := s.w.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(fmt.Sprintf(`PRAGMA max_page_count=%d`, pages)); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("y", 3000)
	for i := 0; i < 50; i++ {
		s.Append(rd("d", "big", t0.Add(time.Duration(i)*time.Second), fmt.Sprintf(`"%d%s"`, i, big)))
	}
	if err := s.Flush(context.Background()); err == nil {
		t.Fatal("flush into a full database succeeded")
	}
	s.Append(rd("d", "big", t0.Add(time.Hour), `"more"`)) // never blocks
	st := s.Stats()
	if !st.Paused || st.WriteErrors == 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := s.w.Exec(`PRAGMA max_page_count=1073741823`); err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	if st := s.Stats(); st.Paused {
		t.Fatalf("still paused: %+v", st)
	}
	if r := query(t, s, Query{Device: "d", Label: "big", From: t0, To: t0.Add(2 * time.Hour)}); len(r.Points) != 51 {
		t.Fatalf("%d readings after resume, want 51", len(r.Points))
	}
}

func TestQueueOverflowDropsOldest(t *testing.T) {
	s, _ := openTest(t, Options{CommitInterval: time.Hour})
	// Hold the writer so nothing is committed meanwhile.
	release := make(chan struct{})
	held := make(chan struct{})
	go s.onWriter(context.Background(), func(context.Context) error { close(held); <-release; return nil })
	<-held
	n := queueMax + 100
	for i := 0; i < n; i++ {
		s.Append(rd("d", "c", t0.Add(time.Duration(i)*time.Millisecond), strconv.Itoa(i)))
	}
	close(release)
	flush(t, s)
	if st := s.Stats(); st.Dropped != 100 || st.Stored != queueMax {
		t.Fatalf("stats %+v", st)
	}
	rec, _ := s.Recent(context.Background(), "d", "c", 1)
	if string(rec[0].Value) != strconv.Itoa(n-1) {
		t.Fatalf("newest %s", rec[0].Value)
	}
}

func TestHostileInput(t *testing.T) {
	s, _ := openTest(t, Options{})
	huge := `"` + strings.Repeat("z", 1<<20) + `"`
	labels := []string{"", "ünïcødé", "'; DROP TABLE chunk; --", strings.Repeat("l", 10000), "$fw", "a\x00b"}
	times := []time.Time{{}, time.Unix(0, 0), time.Unix(-1, 0), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(200000, 1, 1, 0, 0, 0, 0, time.UTC), t0}
	values := []string{"1", huge, "1e308", "-1e-308", "123456789012345678901234567890", `{"a":[1,2,{"b":null}]}`, "null", `""`}
	for i, l := range labels {
		for j, ts := range times {
			s.Append(rd("dev", l, ts, values[(i+j)%len(values)]))
		}
	}
	s.Append(Reading{Device: "dev", Label: "empty", TS: t0}) // empty value: ignored
	compactNow(t, s)
	for _, l := range labels {
		for _, mp := range []int{1, 3, 1000} {
			if _, err := s.Query(context.Background(), Query{Device: "dev", Label: l, From: time.Time{}, To: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), MaxPoints: mp}); err != nil {
				t.Fatal(err)
			}
		}
	}
	n := 0
	s.Export(context.Background(), ExportFilter{From: time.Time{}, To: time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)}, func(Reading) error { n++; return nil })
	if n != len(labels)*len(times) {
		t.Errorf("exported %d, want %d", n, len(labels)*len(times))
	}
	var ok string
	if err := s.r.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check %q %v", ok, err)
	}
}

func TestCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for i := 0; i < 3; i++ {
		s, err := Open(Options{Path: filepath.Join(t.TempDir(), "h.db")})
		if err != nil {
			t.Fatal(err)
		}
		mixed(s, "d", t0, 5)
		s.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Close, %d before\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// A reading is visible to charts and exports as soon as it is appended, not
// only once committed (up to CommitInterval later), and never twice.
func TestQueuedReadingsAreVisible(t *testing.T) {
	s, _ := openTest(t, Options{CommitInterval: time.Hour})
	s.Append(Reading{Device: "d", Label: "n", TS: t0, Value: json.RawMessage(`1`), Seq: 1})
	flush(t, s) // the series exists from now on
	for i := 2; i <= 5; i++ {
		s.Append(Reading{Device: "d", Label: "n", TS: t0.Add(time.Duration(i) * time.Second), Value: json.RawMessage(strconv.Itoa(i)), Seq: uint64(i)})
	}
	ctx := context.Background()
	pts, err := s.Recent(ctx, "d", "n", 10)
	if err != nil || len(pts) != 5 || string(pts[4].Value) != "5" {
		t.Fatalf("Recent before commit = %v, %v; want the 5 readings", pts, err)
	}
	res, err := s.Query(ctx, Query{Device: "d", Label: "n", From: t0, To: t0.Add(time.Minute)})
	if err != nil || res.Resolution != "raw" || len(res.Points) != 5 {
		t.Fatalf("Query before commit = %+v, %v", res, err)
	}
	n := 0
	if err := s.Export(ctx, ExportFilter{From: t0, To: t0.Add(time.Minute)}, func(Reading) error { n++; return nil }); err != nil || n != 5 {
		t.Fatalf("Export before commit: %d readings, %v", n, err)
	}
	flush(t, s)
	if pts, _ := s.Recent(ctx, "d", "n", 10); len(pts) != 5 {
		t.Fatalf("Recent after commit: %d readings, want 5 (none twice)", len(pts))
	}
}

// A label whose first readings are not committed yet still answers.
func TestNewLabelAnswersBeforeCommit(t *testing.T) {
	s, _ := openTest(t, Options{CommitInterval: time.Hour})
	s.Append(Reading{Device: "d", Label: "fresh", TS: t0, Value: json.RawMessage(`7`), Seq: 1})
	pts, err := s.Recent(context.Background(), "d", "fresh", 10)
	if err != nil || len(pts) != 1 || string(pts[0].Value) != "7" {
		t.Fatalf("Recent = %v, %v; want the one queued reading", pts, err)
	}
	res, err := s.Query(context.Background(), Query{Device: "d", Label: "fresh", From: t0.Add(-time.Minute), To: t0.Add(time.Minute)})
	if err != nil || len(res.Points) != 1 {
		t.Fatalf("Query = %+v, %v", res, err)
	}
	if pts, _ := s.Recent(context.Background(), "d", "never", 10); len(pts) != 0 {
		t.Fatalf("unknown label gave %v", pts)
	}
}
