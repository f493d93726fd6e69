// Command esp32gw-soak runs the real gateway binary for -duration with
// faults rotating every -fault-every (board restarts, half-open board
// links, slow browsers, hostile boards and browsers, browsers resuming
// with ?since=, SIGHUP reloads), then checks that goroutines, file
// descriptors, RSS and live heap are back within 5 % of the start, that
// the gateway's log holds no "panic" or "DATA RACE", and that every
// well-behaved browser got every reading of the well-behaved boards or a
// documented resume (a fresh snapshot after ?since=, counted).
//
// Progress goes to stderr every 10 s; the summary is one JSON object on
// stdout; the exit status is non-zero when a check fails. Every loop is
// bounded by -duration and the whole run by -timeout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/esp32gw/esp32gw/internal/gwproc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := run(ctx, os.Args[1:], os.Stderr)
	if sum != nil {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(sum)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "esp32gw-soak:", err)
		os.Exit(1)
	}
}

type options struct {
	Gateway    string
	Duration   time.Duration
	Timeout    time.Duration
	Warmup     time.Duration
	Settle     time.Duration
	FaultEvery time.Duration
	Boards     int
	Browsers   int
	Rate       float64
	MQTTBroker string
	RSSSlackKB int64
	HeapSlack  int64
}

// Summary is the JSON printed on stdout.
type Summary struct {
	Tool     string           `json:"tool"`
	Started  time.Time        `json:"started"`
	Seconds  float64          `json:"seconds"`
	Options  map[string]any   `json:"options"`
	Start    Resources        `json:"start"`
	End      Resources        `json:"end"`
	Faults   map[string]int64 `json:"faults"`
	Boards   []BoardSum       `json:"boards"`
	Browsers []BrowserSum     `json:"browsers"`
	Log      LogSum           `json:"log"`
	Checks   []Check          `json:"checks"`
	Passed   bool             `json:"passed"`
	Error    string           `json:"error,omitempty"`
}

type BoardSum struct {
	ID        string `json:"id"`
	Sent      int64  `json:"sent"`
	Uncertain int    `json:"uncertain"` // writes that failed mid-link: not required
	Links     int    `json:"links"`
}

type BrowserSum struct {
	Index           int   `json:"index"`
	Events          int64 `json:"events"`
	Duplicates      int64 `json:"duplicates"`
	Missing         int64 `json:"missing"`
	Covered         int64 `json:"covered_by_snapshot"`
	Reconnects      int64 `json:"reconnects"`
	ReplayResumes   int64 `json:"replay_resumes"`
	ResumeSnapshots int64 `json:"resume_snapshots"`
	LiveSnapshots   int64 `json:"live_snapshots"`
}

type LogSum struct {
	Path   string `json:"path"`
	Panics int    `json:"panics"`
	Races  int    `json:"data_races"`
	First  string `json:"first,omitempty"`
}

type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("esp32gw-soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Gateway, "gateway", "", "esp32gw binary `PATH` [go build ./cmd/esp32gw into a temp dir]")
	fs.DurationVar(&o.Duration, "duration", 15*time.Minute, "how long faults rotate")
	fs.DurationVar(&o.Timeout, "timeout", 0, "bound on the whole run [duration + warmup + settle + 3m]")
	fs.DurationVar(&o.Warmup, "warmup", 20*time.Second, "time before the start measurement (fills the replay buffer)")
	fs.DurationVar(&o.Settle, "settle", 20*time.Second, "time after the faults stop before the end measurement")
	fs.DurationVar(&o.FaultEvery, "fault-every", 3*time.Second, "interval between faults")
	fs.IntVar(&o.Boards, "boards", 3, "well-behaved ws-listen boards")
	fs.IntVar(&o.Browsers, "browsers", 3, "well-behaved browsers that track every reading")
	fs.Float64Var(&o.Rate, "rate", 20, "readings/s per well-behaved board")
	fs.StringVar(&o.MQTTBroker, "mqtt-broker", "", "MQTT broker URL (tcp://host:port) to enable the bridge [off]")
	fs.Int64Var(&o.RSSSlackKB, "rss-slack-kb", 4096, "absolute slack on the 5 % RSS check, kB (a small gateway's RSS moves by MBs)")
	// The history database keeps readings not yet compacted in memory (at
	// most 4 MB or 100k readings, compacted every 10 minutes), so the live
	// heap at any one moment is somewhere on that sawtooth: the slack
	// covers it, and a leak still shows as growth beyond it.
	fs.Int64Var(&o.HeapSlack, "heap-slack", 4<<20, "absolute slack on the 5 % live-heap check, bytes (the history's uncompacted readings: up to 4 MB)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.Duration <= 0 || o.Boards < 1 || o.Browsers < 1 || o.Rate <= 0 || o.Rate > 1000 || o.FaultEvery < 100*time.Millisecond {
		return o, errors.New("need -duration > 0, -boards >= 1, -browsers >= 1, 0 < -rate <= 1000, -fault-every >= 100ms")
	}
	if o.Timeout <= 0 {
		o.Timeout = o.Duration + o.Warmup + o.Settle + 3*time.Minute
	}
	return o, nil
}

// run is the whole tool. It returns the summary (nil only for a flag
// error) and an error when a check failed or the run could not complete.
func run(ctx context.Context, args []string, stderr io.Writer) (*Summary, error) {
	o, err := parse(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil
		}
		return nil, err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, o.Timeout, fmt.Errorf("-timeout %s reached", o.Timeout))
	defer cancel()
	sum := &Summary{Tool: "esp32gw-soak", Started: time.Now().UTC().Round(time.Millisecond), Faults: map[string]int64{},
		Options: map[string]any{"duration_s": o.Duration.Seconds(), "warmup_s": o.Warmup.Seconds(), "settle_s": o.Settle.Seconds(),
			"fault_every_s": o.FaultEvery.Seconds(), "boards": o.Boards, "browsers": o.Browsers, "rate": o.Rate,
			"mqtt": o.MQTTBroker != "", "timeout_s": o.Timeout.Seconds()}}
	err = soak(ctx, o, sum, stderr)
	sum.Seconds = time.Since(sum.Started).Seconds()
	sum.Passed = err == nil
	for _, c := range sum.Checks {
		if !c.OK {
			sum.Passed = false
		}
	}
	if err != nil {
		sum.Error = err.Error()
	} else if !sum.Passed {
		err = errors.New("a check failed (see checks)")
	}
	return sum, err
}

func soak(ctx context.Context, o options, sum *Summary, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "esp32gw-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := o.Gateway
	if bin == "" {
		fmt.Fprintln(stderr, "building ./cmd/esp32gw …")
		if bin, err = gwproc.BuildGateway(ctx, dir); err != nil {
			return err
		}
	} else if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	addr, err := gwproc.FreeAddr()
	if err != nil {
		return err
	}
	token, boardToken := gwproc.RandomToken(), gwproc.RandomToken()
	var ids []string
	for i := 0; i < o.Boards; i++ {
		ids = append(ids, fmt.Sprintf("b%d", i))
	}
	cfg := gatewayConfig(addr, token, o.MQTTBroker, append(append([]string{}, ids...), "halfopen", "hostile"), boardToken)
	gw, err := startGateway(ctx, bin, dir, cfg, addr, token)
	if err != nil {
		return err
	}
	gwStopped := false
	defer func() {
		if !gwStopped {
			gw.stop()
		}
	}()
	sum.Log.Path = "(temp dir, removed)"
	devURL := func(id string) string { return "ws://" + addr + "/device/" + id }
	wsURL := "ws://" + addr + "/ws?token=" + token

	// Steady actors: boards and browsers, stopped by steadyCancel.
	steadyCtx, steadyCancel := context.WithCancel(ctx)
	var steady sync.WaitGroup
	defer func() { steadyCancel(); steady.Wait() }()
	boards := make([]*board, o.Boards)
	tracked := map[string]int{}
	for i, id := range ids {
		boards[i] = &board{id: id, url: devURL(id), token: boardToken, rate: o.Rate, uncertain: map[int64]bool{}, restart: make(chan struct{}, 1)}
		tracked[id] = i
	}
	browsers := make([]*browser, o.Browsers)
	for i := range browsers {
		b := &browser{idx: i, url: wsURL, tracked: tracked, last: -1}
		for range boards {
			b.got = append(b.got, map[int64]uint8{})
		}
		browsers[i] = b
		steady.Go(func() { b.run(steadyCtx) })
	}
	sleep(ctx, 500*time.Millisecond) // browsers first: they see readings from 1 on
	for _, b := range boards {
		steady.Go(func() { b.run(steadyCtx) })
	}

	progressDone := make(chan struct{})
	var phase atomic.Value
	phase.Store("warmup")
	var faultCount atomic.Int64
	go func() { // progress, every 10 s
		defer close(progressDone)
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-steadyCtx.Done():
				return
			case <-t.C:
				r, _ := gw.resources()
				var sent int64
				for _, b := range boards {
					b.mu.Lock()
					sent += b.sent
					b.mu.Unlock()
				}
				fmt.Fprintf(stderr, "soak %5.0fs %-7s faults=%d sent=%d goroutines=%d threads=%d fds=%d rss=%dkB heap=%d\n",
					time.Since(start).Seconds(), phase.Load(), faultCount.Load(), sent, r.Goroutines, r.Threads, r.FDs, r.RSSKB, r.HeapLive)
			}
		}
	}()
	defer func() { <-progressDone }()

	sleep(ctx, o.Warmup)
	if err := context.Cause(ctx); ctx.Err() != nil {
		return err
	}
	if sum.Start, err = gw.resources(); err != nil {
		return fmt.Errorf("start measurement: %w", err)
	}
	fmt.Fprintf(stderr, "start: %+v\n", sum.Start)

	// Faults.
	phase.Store("faults")
	faultCtx, faultCancel := context.WithTimeout(ctx, o.Duration)
	defer faultCancel()
	var faults sync.WaitGroup
	var faultsMu sync.Mutex
	count := func(name string) {
		faultsMu.Lock()
		sum.Faults[name]++
		faultsMu.Unlock()
		faultCount.Add(1)
	}
	var halfOpenBusy, slowBusy atomic.Bool
	kinds := []string{"board_restart", "half_open", "slow_browser", "hostile_board", "hostile_browser", "browser_resume", "sighup"}
	tick := time.NewTicker(o.FaultEvery)
	for i := 0; faultCtx.Err() == nil; i++ {
		select {
		case <-faultCtx.Done():
		case <-tick.C:
		}
		if faultCtx.Err() != nil {
			break
		}
		k := kinds[i%len(kinds)]
		switch k {
		case "board_restart":
			b := boards[rand.IntN(len(boards))]
			select {
			case b.restart <- struct{}{}:
			default:
			}
		case "half_open":
			if !halfOpenBusy.CompareAndSwap(false, true) {
				continue
			}
			faults.Go(func() {
				defer halfOpenBusy.Store(false)
				halfOpen(faultCtx, devURL("halfopen"), boardToken, 20*time.Second)
			})
		case "slow_browser":
			if !slowBusy.CompareAndSwap(false, true) {
				continue
			}
			faults.Go(func() { defer slowBusy.Store(false); slowBrowser(faultCtx, wsURL, 10*time.Second) })
		case "hostile_board":
			faults.Go(func() { hostileBoard(faultCtx, devURL("hostile"), boardToken) })
		case "hostile_browser":
			faults.Go(func() { hostileBrowser(faultCtx, wsURL) })
		case "browser_resume":
			browsers[rand.IntN(len(browsers))].kick()
		case "sighup":
			if err := gw.hup(); err != nil {
				return err
			}
		}
		count(k)
	}
	tick.Stop()
	faults.Wait()
	faultCancel()
	if !gw.alive() {
		return fmt.Errorf("gateway exited during the soak: %v\n%s", gw.err, gw.logTail())
	}

	phase.Store("settle")
	sleep(ctx, o.Settle)
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if sum.End, err = gw.resources(); err != nil {
		return fmt.Errorf("end measurement: %w", err)
	}
	fmt.Fprintf(stderr, "end:   %+v\n", sum.End)
	// Stop the boards cleanly, then give browsers a moment for the last readings.
	for _, b := range boards {
		b.mu.Lock()
	}
	sent := make([]int64, len(boards))
	unc := make([]map[int64]bool, len(boards))
	for i, b := range boards {
		sent[i] = b.sent
		unc[i] = map[int64]bool{}
		for k := range b.uncertain {
			unc[i][k] = true
		}
		b.mu.Unlock()
	}
	// Readings up to sent are required; give the last ones time to arrive.
	sleep(ctx, 2*time.Second)

	for i, b := range boards {
		b.mu.Lock()
		sum.Boards = append(sum.Boards, BoardSum{ID: b.id, Sent: sent[i], Uncertain: len(unc[i]), Links: b.links})
		b.mu.Unlock()
	}
	var missingTotal, covered, resumeSnaps int64
	allUp := true
	for _, br := range browsers {
		bs := BrowserSum{Index: br.idx}
		for i := range boards {
			n, _ := br.missing(i, sent[i], unc[i])
			bs.Missing += n
		}
		br.mu.Lock()
		bs.Events, bs.Duplicates, bs.Covered, bs.Reconnects = br.events, br.duplicates, br.covered, br.reconnects
		bs.ReplayResumes, bs.ResumeSnapshots, bs.LiveSnapshots = br.replayResumes, br.resumeSnapshots, br.liveSnapshots
		br.mu.Unlock()
		if !br.connected.Load() {
			allUp = false
		}
		missingTotal += bs.Missing
		covered += bs.Covered
		resumeSnaps += bs.ResumeSnapshots
		sum.Browsers = append(sum.Browsers, bs)
	}

	steadyCancel()
	steady.Wait()
	gwStopped = true
	stopErr := gw.stop()
	p, r, first := gw.scanLog()
	sum.Log.Panics, sum.Log.Races, sum.Log.First = p, r, first

	add := func(name string, ok bool, format string, a ...any) {
		sum.Checks = append(sum.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, a...)})
	}
	within := func(start, end int64, slack int64) bool {
		return float64(end) <= float64(start)*1.05+float64(slack)
	}
	s, e := sum.Start, sum.End
	if s.Goroutines >= 0 && e.Goroutines >= 0 {
		add("goroutines", within(s.Goroutines, e.Goroutines, 5), "start %d end %d (5 %% + 5)", s.Goroutines, e.Goroutines)
	} else {
		add("threads", within(s.Threads, e.Threads, 3), "no go_goroutines in /metrics; threads start %d end %d (5 %% + 3)", s.Threads, e.Threads)
	}
	add("fds", within(s.FDs, e.FDs, 3), "start %d end %d (5 %% + 3)", s.FDs, e.FDs)
	add("rss", within(s.RSSKB, e.RSSKB, o.RSSSlackKB), "start %d kB end %d kB (5 %% + %d kB)", s.RSSKB, e.RSSKB, o.RSSSlackKB)
	if s.HeapLive > 0 && e.HeapLive >= 0 { // 0: no GC had run yet at the start
		add("heap_live", within(s.HeapLive, e.HeapLive, o.HeapSlack), "start %d end %d bytes (5 %% + %d)", s.HeapLive, e.HeapLive, o.HeapSlack)
	}
	add("log", p == 0 && r == 0, "%d panic lines, %d DATA RACE lines %s", p, r, first)
	add("readings", missingTotal == 0, "%d readings missing across browsers; %d covered by %d fresh snapshots after ?since=", missingTotal, covered, resumeSnaps)
	add("browsers_connected", allUp, "every well-behaved browser connected at the end: %v", allUp)
	add("faults", faultCount.Load() > 0, "%d faults injected", faultCount.Load())
	add("shutdown", stopErr == nil, "gateway exit after SIGINT: %v", stopErr)
	return nil
}
