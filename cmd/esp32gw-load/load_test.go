package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/testgw"
)

// TestMain lets the test binary serve as the reference's child process:
// the tool starts os.Executable() with -serve-reference, as the real binary.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == serveReferenceFlag {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := runReference(ctx, os.Args[2])
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestTinyLoad runs a trivial load (2 boards × 20/s → 5 browsers for 2 s)
// against the real gateway binary and the reference. It checks that
// readings arrive, none is lost or duplicated, commands come back, and the
// summary parses; it asserts no timing.
func TestTinyLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the gateway: skipped with -short")
	}
	gw := testgw.Binary(t)
	before := runtime.NumGoroutine()
	t.Run("runs", func(t *testing.T) { tinyLoads(t, gw) })
	// Everything run started has stopped.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines left after the runs (%d before):\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func tinyLoads(t *testing.T, gw string) {
	tests := []struct {
		name  string
		args  []string
		check []string // results that must be present: gateway, reference
	}{
		{"compare ws-dial", []string{"-compare", "-transport", "ws-dial"}, []string{"gateway", "reference"}},
		{"gateway ws-listen bearer", []string{"-transport", "ws-listen", "-token-in", "header"}, []string{"gateway"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{
				"-gateway", gw, "-boards", "2", "-rate", "20", "-browsers", "5",
				"-window", "2s", "-windows", "1", "-commands", "3", "-timeout", "60s",
				"-drain", "5s", // ends as soon as every reading is in: a busy machine must not fail the test
			}, tt.args...)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, &stdout, &stderr)
			t.Logf("progress:\n%s", stderr.String())
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			var sum Summary
			dec := json.NewDecoder(&stdout)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&sum); err != nil {
				t.Fatalf("summary does not parse: %v\n%s", err, stdout.String())
			}
			results := map[string]*Result{"gateway": sum.Gateway, "reference": sum.Reference}
			for _, kind := range tt.check {
				r := results[kind]
				if r == nil {
					t.Fatalf("summary has no %s result", kind)
				}
				checkResult(t, r)
			}
			if len(tt.check) == 2 && sum.Ratios == nil {
				t.Error("-compare summary has no ratios")
			}
		})
	}
}

func checkResult(t *testing.T, r *Result) {
	t.Helper()
	if r.Error != "" {
		t.Errorf("%s: error %s", r.Server, r.Error)
	}
	if r.PID == 0 || r.RSSNoBrowserKB <= 0 {
		t.Errorf("%s: no process figures: pid %d, rss %d kB", r.Server, r.PID, r.RSSNoBrowserKB)
	}
	if r.Idle == nil || r.Idle.Connected != 5 {
		t.Errorf("%s: idle browsers: %+v", r.Server, r.Idle)
	}
	if c := r.Commands; c == nil || c.Sent != 3 || c.Answered != 3 {
		t.Errorf("%s: commands: %+v", r.Server, c)
	}
	if len(r.Windows) != 1 {
		t.Fatalf("%s: %d windows, want 1", r.Server, len(r.Windows))
	}
	w := r.Windows[0]
	if w.BoardsSent == 0 {
		t.Fatalf("%s: the boards sent nothing in the window", r.Server)
	}
	if w.Delivered != w.BoardsSent*5 || w.Lost != 0 || w.Duplicates != 0 {
		t.Errorf("%s: sent %d to 5 browsers: delivered %d, lost %d, duplicates %d",
			r.Server, w.BoardsSent, w.Delivered, w.Lost, w.Duplicates)
	}
	if w.Latency.Samples != w.Delivered {
		t.Errorf("%s: %d latency samples for %d deliveries", r.Server, w.Latency.Samples, w.Delivered)
	}
}

func TestHist(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want float64 // ms
	}{{0.5, 500}, {0.99, 990}, {1, 1000}} {
		got := h.quantileMS(c.q)
		if d := got/c.want - 1; d < -0.04 || d > 0.04 {
			t.Errorf("quantile %.2f = %.1f ms, want %.0f ms within 4 %%", c.q, got, c.want)
		}
	}
	if h.summary().Max != 1000 {
		t.Errorf("max = %v ms, want 1000", h.summary().Max)
	}
	for us := uint64(0); us < 1<<22; us = us*5/4 + 1 { // buckets are ordered and contain their values
		i := histIndex(us)
		if i > 0 && histIndex(us-1) > i {
			t.Fatalf("histIndex not monotonic at %d µs", us)
		}
		if v := histValue(i); v < float64(us)*0.94 || v > float64(us)*1.07+1 {
			t.Fatalf("bucket %d of %d µs has value %.1f", i, us, v)
		}
	}
}

func TestField(t *testing.T) {
	f := []byte(`{"type":"event","device":"b001","label":"count","value":42,"ts":"2026-01-01T00:00:00.000Z","seq":7}`)
	for key, want := range map[string]string{
		`"device":`: `"b001"`, `"label":`: `"count"`, `"value":`: `42`, `"seq":`: `7`, `"ts":`: `"2026-01-01T00:00:00.000Z"`, `"nope":`: ``,
	} {
		if got := string(field(f, key)); got != want {
			t.Errorf("field %s = %q, want %q", key, got, want)
		}
	}
	if got := string(field([]byte(`{"value":"LED \"ON\"","seq":3}`), `"value":`)); got != `"LED \"ON\""` {
		t.Errorf("escaped string: %q", got)
	}
	if got := unquote([]byte(`"a\u0062"`)); got != "ab" {
		t.Errorf("unquote = %q", got)
	}
	if !strings.Contains(redact("ws://h/ws?token=secret"), "REDACTED") {
		t.Error("redact kept the token")
	}
}

func TestStamp(t *testing.T) {
	for _, c := range []struct {
		w  int32
		ns int64
	}{{-1, 0}, {-1, 12345}, {0, 1}, {63, 1<<stampShift - 1}} {
		w, ns := unstamp(stamp(c.w, c.ns))
		if w != c.w || ns != c.ns {
			t.Errorf("stamp(%d, %d) → %d, %d", c.w, c.ns, w, ns)
		}
	}
	var l sendLog
	l.put(maxSeq-1, stamp(2, 99))
	if w, ns := unstamp(l.get(maxSeq - 1)); w != 2 || ns != 99 {
		t.Errorf("sendLog: %d, %d", w, ns)
	}
	if l.get(5) != 0 || l.get(-1) != 0 || l.get(maxSeq) != 0 {
		t.Error("sendLog: unset seq has a stamp")
	}
}

func TestCompareResults(t *testing.T) {
	win := func(d, p99, cpu float64, ok bool) Window {
		return Window{DeliveriesPerS: d, Latency: Latency{P99: p99}, CPUNsPerDeliv: cpu, Sustained: ok}
	}
	g := &Result{Windows: []Window{win(100, 10, 2000, true), win(200, 900, 1000, false)}, Idle: &Idle{KBPerBrowser: 12}}
	r := &Result{Windows: []Window{win(100, 20, 4000, true)}, Idle: &Idle{KBPerBrowser: 0}}
	g.Best, r.Best = bestSustained(g.Windows), bestSustained(r.Windows)
	x := compareResults(g, r)
	if x.Basis != "best_sustained" || *x.SustainedDeliveries != 1 || *x.P99 != 0.5 || *x.CPUPerDelivery != 0.5 {
		t.Errorf("best sustained: %+v", x)
	}
	if x.IdleKBPerBrowser != nil || x.CommandRTTP50 != nil {
		t.Errorf("a ratio without both figures: %+v", x)
	}
	r.Windows[0].Sustained, r.Best = false, nil
	x = compareResults(g, r)
	if x.Basis != "last_window" || x.SustainedDeliveries != nil || *x.DeliveriesPerS != 2 {
		t.Errorf("last window: %+v", x)
	}
}
