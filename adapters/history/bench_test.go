package history

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mix generates the realistic load: 50 labels at 1 Hz with
// millisecond timestamps jittered by a few ms: 15 counters, 15 temperatures
// and 10 humidities (two decimals, drift and noise, written shortest as a
// board's JSON library does), 10 on/off labels.
type mix struct {
	rng    *rand.Rand
	labels []string
	state  []float64
	buf    []Reading
	seq    uint64
}

func newMix(seed int64) *mix {
	m := &mix{rng: rand.New(rand.NewSource(seed))}
	for i := 0; i < 50; i++ {
		var name string
		switch {
		case i < 15:
			name = fmt.Sprintf("count%02d", i)
		case i < 30:
			name = fmt.Sprintf("temp%02d", i)
			m.state = append(m.state, 0)
		case i < 40:
			name = fmt.Sprintf("hum%02d", i)
		default:
			name = fmt.Sprintf("relay%02d", i)
		}
		m.labels = append(m.labels, name)
	}
	m.state = make([]float64, 50)
	for i := range m.state {
		switch {
		case i < 15:
			m.state[i] = float64(m.rng.Intn(100000))
		case i < 30:
			m.state[i] = 18 + m.rng.Float64()*6
		case i < 40:
			m.state[i] = 40 + m.rng.Float64()*20
		}
	}
	return m
}

// second returns the 50 readings of one second (reused buffer).
func (m *mix) second(at time.Time) []Reading {
	m.buf = m.buf[:0]
	for i, name := range m.labels {
		ts := at.Add(time.Duration(m.rng.Intn(9)-4) * time.Millisecond)
		var v string
		switch {
		case i < 15:
			m.state[i] += float64(m.rng.Intn(3))
			v = strconv.FormatFloat(m.state[i], 'f', -1, 64)
		case i < 40:
			m.state[i] += m.rng.NormFloat64() * 0.005 // drift
			x := m.state[i] + m.rng.NormFloat64()*0.03
			v = strconv.FormatFloat(math.Round(x*100)/100, 'f', -1, 64)
		default:
			if m.rng.Intn(600) == 0 {
				m.state[i] = 1 - m.state[i]
			}
			v = []string{`"off"`, `"on"`}[int(m.state[i])]
		}
		m.seq++
		m.buf = append(m.buf, Reading{Device: "board", Label: name, TS: ts, Value: []byte(v), Seq: m.seq})
	}
	return m.buf
}

// simulate feeds the mix from start for dur, one second at a time, with the
// fake clock following; it commits every commitEvery simulated seconds and
// runs maintenance every simulated minute when maintain is set.
func simulate(tb testing.TB, s *Store, clock *fakeClock, m *mix, start time.Time, dur, step, commitEvery time.Duration, maintain bool) int {
	n := 0
	lastCommit, lastMaint := start, start
	for at := start; at.Before(start.Add(dur)); at = at.Add(step) {
		clock.Set(at)
		rs := m.second(at)
		s.Append(rs...)
		n += len(rs)
		if at.Sub(lastCommit) >= commitEvery {
			flush(tb, s)
			lastCommit = at
		}
		if maintain && at.Sub(lastMaint) >= time.Minute {
			maintainNow(tb, s)
			lastMaint = at
		}
	}
	flush(tb, s)
	return n
}

// Shared benchmark databases, built once per test process.
var (
	benchDir  string
	benchOnce sync.Once
	bench7d   struct {
		once     sync.Once
		path     string
		readings int
		end      time.Time
		err      error
	}
	bench1y struct {
		once sync.Once
		path string
		end  time.Time
	}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func benchPath(tb testing.TB, name string) string {
	benchOnce.Do(func() {
		d, err := os.MkdirTemp("", "history-bench-")
		if err != nil {
			tb.Fatal(err)
		}
		benchDir = d
	})
	return filepath.Join(benchDir, name)
}

// build7d writes 7 simulated days of the mix (commits every 5 minutes of
// simulated time to keep the run short; the layout on disk is the same as
// with 5 s commits, as batches are compacted away).
func build7d(tb testing.TB) (string, int, time.Time) {
	bench7d.once.Do(func() {
		bench7d.path = benchPath(tb, "7d.db")
		start := t0.Add(-7 * 24 * time.Hour)
		clock := newFakeClock(start)
		s, err := Open(Options{Path: bench7d.path, Now: clock.Now})
		if err != nil {
			tb.Fatal(err)
		}
		bench7d.readings = simulate(tb, s, clock, newMix(1), start, 7*24*time.Hour, time.Second, 5*time.Minute, false)
		compactNow(tb, s)
		maintainNow(tb, s)
		bench7d.end = t0
		s.Close()
	})
	return bench7d.path, bench7d.readings, bench7d.end
}

// build1y writes one simulated year of the same 50 labels at one reading
// every 5 minutes (the 1-year chart reads hour rollups, whose size does not
// depend on the rate), then the last day at 1 Hz.
func build1y(tb testing.TB) (string, time.Time) {
	bench1y.once.Do(func() {
		bench1y.path = benchPath(tb, "1y.db")
		start := t0.Add(-365 * 24 * time.Hour)
		clock := newFakeClock(start)
		s, err := Open(Options{Path: bench1y.path, Now: clock.Now})
		if err != nil {
			tb.Fatal(err)
		}
		m := newMix(2)
		simulate(tb, s, clock, m, start, 364*24*time.Hour, 5*time.Minute, 24*time.Hour, false)
		simulate(tb, s, clock, m, t0.Add(-24*time.Hour), 24*time.Hour, time.Second, 10*time.Minute, false)
		compactNow(tb, s)
		maintainNow(tb, s)
		bench1y.end = t0
		s.Close()
	})
	return bench1y.path, bench1y.end
}

func fileSizes(path string) int64 {
	var n int64
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(path + suffix); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// BenchmarkDiskSize7d reports bytes per reading over 7 simulated days of
// the mix, rollups and indexes included (live pages × page size).
func BenchmarkDiskSize7d(b *testing.B) {
	for i := 0; i < b.N; i++ {
		path, n, end := build7d(b)
		s, err := Open(Options{Path: path, Now: func() time.Time { return end }})
		if err != nil {
			b.Fatal(err)
		}
		live := s.Stats().SizeBytes
		s.Close()
		b.ReportMetric(float64(live)/float64(n), "bytes/reading")
		b.ReportMetric(float64(fileSizes(path))/float64(n), "file-bytes/reading")
		b.ReportMetric(float64(n), "readings")
		b.ReportMetric(float64(live)/1e6, "live-MB")
	}
}

// TestDiskSizeSmall is the small version of BenchmarkDiskSize7d for the
// test run: 2 simulated hours, logged.
func TestDiskSizeSmall(t *testing.T) {
	s, clock := openTest(t, Options{})
	n := simulate(t, s, clock, newMix(3), t0, 2*time.Hour, time.Second, 10*time.Minute, false)
	compactNow(t, s)
	maintainNow(t, s)
	t.Logf("%d readings, %.2f bytes/reading", n, float64(s.Stats().SizeBytes)/float64(n))
}

type procIO struct{ wchar, writeBytes int64 }

func readProcIO(tb testing.TB) procIO {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		tb.Skip("no /proc/self/io")
	}
	var p procIO
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "wchar":
			p.wchar = n
		case "write_bytes":
			p.writeBytes = n
		}
	}
	return p
}

func copyFile(tb testing.TB, src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
	if err := out.Sync(); err != nil {
		tb.Fatal(err)
	}
	out.Close()
}

// BenchmarkWriteRate runs real commit cycles (one Flush, with its fsync,
// per 5 simulated seconds of the mix: 250 readings) on top of the 7-day
// database, with compaction every 10 simulated minutes and maintenance
// every simulated minute, and reports what reached the disk per simulated
// second: write_bytes from /proc/self/io (block layer, WAL and checkpoints
// included) and wchar (every write syscall).
func BenchmarkWriteRate(b *testing.B) {
	src, _, end := build7d(b)
	for i := 0; i < b.N; i++ {
		dst := filepath.Join(b.TempDir(), "history.db")
		copyFile(b, src, dst)
		clock := newFakeClock(end)
		s, err := Open(Options{Path: dst, Now: clock.Now})
		if err != nil {
			b.Fatal(err)
		}
		const cycles = 720 // one simulated hour
		m := newMix(4)
		flush(b, s)
		b.ResetTimer()
		before := readProcIO(b)
		at := end
		for c := 0; c < cycles; c++ {
			for k := 0; k < 5; k++ {
				s.Append(m.second(at)...)
				at = at.Add(time.Second)
			}
			clock.Set(at)
			flush(b, s)
			if c%12 == 11 {
				maintainNow(b, s)
			}
		}
		after := readProcIO(b)
		b.StopTimer()
		secs := float64(cycles * 5)
		b.ReportMetric(float64(after.writeBytes-before.writeBytes)/secs/1024, "write_bytes-KB/s")
		b.ReportMetric(float64(after.wchar-before.wchar)/secs/1024, "wchar-KB/s")
		b.ReportMetric(float64(s.Stats().CommitLatency.Microseconds()), "last-commit-µs")
		s.Close()
	}
}

// BenchmarkIngest appends the mix as fast as it can, flushing every 30,000
// readings (the writer also commits early when the queue fills, and
// compacts every 100,000 readings) and reports readings stored per second.
func BenchmarkIngest(b *testing.B) {
	clock := newFakeClock(t0)
	s, err := Open(Options{Path: filepath.Join(b.TempDir(), "history.db"), Now: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := newMix(5)
	// Pre-generate 10 minutes of readings so generation is not measured.
	var pre [][]Reading
	for k := 0; k < 600; k++ {
		pre = append(pre, slices.Clone(m.second(t0.Add(time.Duration(k)*time.Second))))
	}
	b.ResetTimer()
	start := time.Now()
	n := 0
	tmp := make([]Reading, 50)
	for pass := 0; n < b.N; pass++ {
		off := time.Duration(pass) * 10 * time.Minute // every pass is new data
		for _, rs := range pre {
			for j := range rs {
				tmp[j] = rs[j]
				tmp[j].TS = rs[j].TS.Add(off)
			}
			s.Append(tmp[:len(rs)]...)
			n += len(rs)
			if n >= b.N {
				break
			}
		}
		clock.Add(10 * time.Minute)
		flush(b, s) // 30,000 readings per Flush: measure what is stored
	}
	flush(b, s)
	el := time.Since(start)
	b.ReportMetric(float64(s.Stats().Stored)/el.Seconds(), "stored-readings/s")
	if st := s.Stats(); st.Dropped > 0 {
		b.ReportMetric(float64(st.Dropped), "dropped")
	}
}

func p95(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[(len(ds)*95+99)/100-1]
}

func benchQuery(b *testing.B, path string, end time.Time, span time.Duration, wantPrefix string) {
	s, err := Open(Options{Path: path, Now: func() time.Time { return end }})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	q := Query{Device: "board", Label: "temp20", From: end.Add(-span), To: end, MaxPoints: 1000}
	r := query(b, s, q) // warm
	if len(r.Points) == 0 || !strings.HasPrefix(r.Resolution, wantPrefix) {
		b.Fatalf("resolution %s, %d points", r.Resolution, len(r.Points))
	}
	var ds []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		query(b, s, q)
		ds = append(ds, time.Since(t))
	}
	b.ReportMetric(float64(p95(ds).Microseconds())/1000, "p95-ms")
	b.ReportMetric(float64(len(r.Points)), "points")
	b.Logf("resolution %s, %d points", r.Resolution, len(r.Points))
}

// BenchmarkQuery7d: a 7-day chart of one temperature (604,800 raw readings
// in range) at MaxPoints 1000, warm: 30-minute buckets (10-minute ones
// would be 1009) from minute rollups.
func BenchmarkQuery7d(b *testing.B) {
	path, _, end := build7d(b)
	benchQuery(b, path, end, 7*24*time.Hour, "30m")
}

// BenchmarkQuery1y: a 1-year chart at MaxPoints 1000, warm.
func BenchmarkQuery1y(b *testing.B) {
	path, end := build1y(b)
	benchQuery(b, path, end, 365*24*time.Hour, "12h")
}

// evict drops the file's pages from the OS page cache, so a "cold" query
// reads the disk as after a reboot.
func evict(path string) {
	for _, suffix := range []string{"", "-wal"} {
		f, err := os.Open(path + suffix)
		if err != nil {
			continue
		}
		unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
	}
}

// BenchmarkQueryCold: Open plus the first 7-day and 1-year chart queries,
// with the database evicted from the OS page cache first.
func BenchmarkQueryCold(b *testing.B) {
	p7, _, end := build7d(b)
	p1, _ := build1y(b)
	var open, q7, q1 []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, c := range []struct {
			path string
			span time.Duration
			out  *[]time.Duration
		}{{p7, 7 * 24 * time.Hour, &q7}, {p1, 365 * 24 * time.Hour, &q1}} {
			evict(c.path)
			t := time.Now()
			s, err := Open(Options{Path: c.path, Now: func() time.Time { return end }})
			if err != nil {
				b.Fatal(err)
			}
			open = append(open, time.Since(t))
			t = time.Now()
			query(b, s, Query{Device: "board", Label: "temp20", From: end.Add(-c.span), To: end, MaxPoints: 1000})
			*c.out = append(*c.out, time.Since(t))
			s.Close()
		}
	}
	b.ReportMetric(float64(p95(open).Microseconds())/1000, "open-p95-ms")
	b.ReportMetric(float64(p95(q7).Microseconds())/1000, "first7d-p95-ms")
	b.ReportMetric(float64(p95(q1).Microseconds())/1000, "first1y-p95-ms")
}

// TestRSSHelper is run in a child process by BenchmarkRSS: it opens the
// database at HISTORY_RSS_DB, writes 10 simulated minutes of the mix in 5 s
// commits, runs 7-day and 1-day queries and a 1-day export, and prints its
// peak RSS.
func TestRSSHelper(t *testing.T) {
	path := os.Getenv("HISTORY_RSS_DB")
	if path == "" {
		t.Skip("helper for BenchmarkRSS")
	}
	end := t0
	clock := newFakeClock(end)
	s, err := Open(Options{Path: path, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	simulate(t, s, clock, newMix(6), end, 10*time.Minute, time.Second, 5*time.Second, false)
	now := clock.Now()
	for _, span := range []time.Duration{7 * 24 * time.Hour, 24 * time.Hour, time.Hour} {
		for _, l := range []string{"temp20", "relay45", "count03"} {
			query(t, s, Query{Device: "board", Label: l, From: now.Add(-span), To: now, MaxPoints: 1000})
		}
	}
	n := 0
	s.Export(context.Background(), ExportFilter{From: now.Add(-24 * time.Hour), To: now}, func(Reading) error { n++; return nil })
	s.Close()
	st, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(st), "\n") {
		if strings.HasPrefix(line, "VmHWM:") || strings.HasPrefix(line, "VmRSS:") {
			fmt.Println("RSS", line)
		}
	}
	fmt.Println("RSS exported", n)
}

func childRSS(b *testing.B, path string) (hwmKB int64) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestRSSHelper$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "HISTORY_RSS_DB="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("helper: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "RSS" && f[1] == "VmHWM:" {
			hwmKB, _ = strconv.ParseInt(f[2], 10, 64)
		}
	}
	return hwmKB
}

// BenchmarkRSS reports the peak RSS of a process working on the 7-day
// database minus that of the same work on an empty one.
func BenchmarkRSS(b *testing.B) {
	path, _, _ := build7d(b)
	for i := 0; i < b.N; i++ {
		full := filepath.Join(b.TempDir(), "full.db")
		copyFile(b, path, full)
		empty := childRSS(b, filepath.Join(b.TempDir(), "empty.db"))
		with := childRSS(b, full)
		b.ReportMetric(float64(empty)/1024, "empty-peak-MB")
		b.ReportMetric(float64(with)/1024, "7d-peak-MB")
		b.ReportMetric(float64(with-empty)/1024, "delta-MB")
	}
}
