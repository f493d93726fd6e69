package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/esp32gw/esp32gw/internal/gwproc"
)

// Phase timings.
const (
	settle         = time.Second            // before reading RSS: let the server finish connecting and collecting
	connectWait    = 30 * time.Second       // for all boards to link, and for a batch of browsers' first frames
	connectBatch   = 50                     // browsers opened at once
	commandTimeout = 2 * time.Second        // the contract's command answer bound
	commandGap     = 60 * time.Millisecond  // between commands: under the gateway's 20/s per socket
	drainPoll      = 10 * time.Millisecond  // how often the drain checks for stragglers
	warmupDefault  = 500 * time.Millisecond // at a new rate before its window opens
)

// browserSet owns the browsers' goroutines.
type browserSet struct {
	list   []*browser
	cancel []context.CancelFunc
	done   []chan struct{}
}

// start runs browser b until its own context (derived from ctx) ends.
func (s *browserSet) start(ctx context.Context, b *browser) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s.list, s.cancel, s.done = append(s.list, b), append(s.cancel, cancel), append(s.done, done)
	go func() {
		defer close(done)
		b.err = b.run(ctx)
	}()
}

// stopFrom stops browsers i.. and waits for them; the set keeps the first i.
func (s *browserSet) stopFrom(i int) {
	for j := i; j < len(s.list); j++ {
		s.cancel[j]()
	}
	for j := i; j < len(s.list); j++ {
		<-s.done[j]
	}
	s.list, s.cancel, s.done = s.list[:i], s.cancel[:i], s.done[:i]
}

// measure runs one whole measurement against one server kind ("gateway"
// with the binary gwBin, or "reference"): boards, server, idle browsers,
// command round trips, windows. Everything it starts is stopped before it
// returns.
func measure(ctx context.Context, o options, kind, gwBin string, progress io.Writer) (res *Result, err error) {
	res = &Result{Server: kind}
	ctl := newControl()
	dir, err := os.MkdirTemp("", "esp32gw-load-")
	if err != nil {
		return res, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	// Boards first: the server dials them (ws-dial), or they dial the
	// server until it answers (ws-listen).
	boards := make([]*board, o.Boards)
	devices := map[string]int{}
	specs := make([]boardSpec, o.Boards)
	for i := range boards {
		b := newBoard(i, ctl)
		boards[i], devices[b.id] = b, i
		specs[i] = boardSpec{id: b.id}
		if o.Transport == "ws-dial" {
			if err := b.listen(); err != nil {
				for _, b := range boards[:i] {
					b.ln.Close()
				}
				return res, err
			}
			specs[i].url = b.url()
		} else {
			specs[i].token = gwproc.RandomToken()
		}
	}
	addr, err := gwproc.FreeAddr()
	if err != nil {
		return res, err
	}
	boardCtx, stopBoards := context.WithCancel(context.Background())
	var boardWG sync.WaitGroup
	defer func() {
		stopBoards()
		boardWG.Wait()
	}()
	for i, b := range boards {
		wsURL := "ws://" + addr + "/device/" + b.id
		boardWG.Go(func() {
			if err := b.Run(boardCtx, wsURL, specs[i].token); err != nil {
				fmt.Fprintf(progress, "esp32gw-load: %v\n", err)
			}
		})
	}

	var srv *serverProc
	if kind == "gateway" {
		srv, err = startGateway(ctx, gwBin, dir, addr, specs)
	} else {
		srv, err = startReference(ctx, addr, specs)
	}
	if err != nil {
		return res, err
	}
	res.PID = srv.pid()
	defer func() {
		took, serr := srv.stop()
		if serr != nil && err == nil {
			err = serr
		}
		fmt.Fprintf(progress, "%s: stopped in %s\n", kind, took.Round(time.Millisecond))
	}()

	wctx, cancel := context.WithTimeout(ctx, connectWait)
	err = waitConnected(wctx, boards)
	cancel()
	if err != nil {
		return res, fmt.Errorf("%s: %w\n%s", kind, err, srv.log)
	}
	if !sleepCtx(ctx, settle) {
		return res, context.Cause(ctx)
	}
	base, err := readProc(srv.pid())
	if err != nil {
		return res, err
	}
	res.RSSNoBrowserKB = base.rssKB
	fmt.Fprintf(progress, "%s: pid %d, %d boards linked (%s), RSS %.1f MB with no browser\n",
		kind, srv.pid(), o.Boards, o.Transport, float64(base.rssKB)/1024)

	// Idle browsers: memory per connection.
	var header http.Header
	if o.TokenIn == "header" {
		header = http.Header{"Authorization": {"Bearer " + srv.token}}
	}
	var set browserSet
	browserCtx, stopBrowsers := context.WithCancel(ctx)
	defer func() {
		stopBrowsers()
		set.stopFrom(0)
	}()
	nIdle := max(o.IdleBrowsers, o.Browsers)
	t0 := time.Now()
	for i := 0; i < nIdle; i += connectBatch {
		for j := i; j < min(i+connectBatch, nIdle); j++ {
			b := newBrowser(j, srv.wsURL(o.TokenIn != "header"), header, ctl, boards, devices)
			if j == 0 {
				b.leds, b.replies = make(chan ledEvent, 4), make(chan reply, 4)
			}
			set.start(browserCtx, b)
		}
		if err := waitFirstFrames(ctx, &set, i, min(i+connectBatch, nIdle)); err != nil {
			return res, fmt.Errorf("%s: %w", kind, err)
		}
	}
	idle := &Idle{Browsers: nIdle, Connected: nIdle, RSSBeforeKB: base.rssKB, ConnectMillis: round1(float64(time.Since(t0)) / 1e6)}
	if !sleepCtx(ctx, settle) {
		return res, context.Cause(ctx)
	}
	after, err := readProc(srv.pid())
	if err != nil {
		return res, err
	}
	idle.RSSAfterKB = after.rssKB
	idle.KBPerBrowser = round3(float64(after.rssKB-base.rssKB) / float64(nIdle))
	res.Idle = idle
	fmt.Fprintf(progress, "%s: %d idle browsers: RSS %.1f MB → %.1f MB, %.1f KB per browser\n",
		kind, nIdle, float64(base.rssKB)/1024, float64(after.rssKB)/1024, idle.KBPerBrowser)
	set.stopFrom(o.Browsers)

	// Command round trips, with readings flowing at the base rate.
	ctl.setRate(o.Rate)
	if o.Commands > 0 {
		res.Commands = probeCommands(ctx, ctl, set.list[0], boards, o.Commands)
		fmt.Fprintf(progress, "%s: %d commands: %d answered, %d errors, %d timeouts, RTT p50 %.2f ms p99 %.2f ms\n",
			kind, res.Commands.Sent, res.Commands.Answered, res.Commands.Errors, res.Commands.Timeouts,
			res.Commands.RTT.P50, res.Commands.RTT.P99)
	}

	// Measured windows. A ramp steps the rate up after each sustained
	// window; a step that fails is tried again up to o.RampRetries times
	// (a busy machine can spoil one window), and the ramp ends at the
	// first step that fails them all.
	step, tries := 0, 0
windows:
	for k := 0; k < o.Windows && k < maxWindows; k++ {
		rate := o.Rate
		if o.Ramp {
			rate = math.Round(o.Rate * math.Pow(o.RampFactor, float64(step)))
		}
		ctl.setRate(rate)
		if !sleepCtx(ctx, o.Warmup) {
			break
		}
		w, err := measureWindow(ctx, o, ctl, srv, &set, boards, k, rate)
		if err != nil {
			return res, fmt.Errorf("%s: window %d: %w", kind, k, err)
		}
		w.Step = step
		res.Windows = append(res.Windows, w)
		fmt.Fprintln(progress, progressLine(kind, o, w))
		if ctx.Err() != nil {
			break
		}
		if o.Ramp {
			switch {
			case w.Sustained:
				step, tries = step+1, 0
			case tries < o.RampRetries:
				tries++
			default:
				break windows // the ramp is over
			}
		}
	}
	ctl.setRate(0)
	res.Best = bestSustained(res.Windows)
	if ctx.Err() != nil {
		return res, fmt.Errorf("%s: %w", kind, context.Cause(ctx))
	}
	return res, nil
}

// measureWindow opens window k for o.Window, then waits up to o.Drain for
// its readings to arrive and harvests the browsers' figures.
func measureWindow(ctx context.Context, o options, ctl *control, srv *serverProc, set *browserSet, boards []*board, k int, rate float64) (Window, error) {
	w := Window{Index: k, Rate: rate, Browsers: len(set.list)}
	s0, err := readProc(srv.pid())
	if err != nil {
		return w, err
	}
	self0, _ := readProc(os.Getpid())
	rc0, cl0 := reconnectTotals(set)
	ctl.window.Store(int32(k))
	opened := time.Now()
	sleepCtx(ctx, o.Window)
	ctl.window.Store(-1)
	w.Seconds = time.Since(opened).Seconds()
	s1, err := readProc(srv.pid())
	if err != nil {
		return w, err
	}
	self1, _ := readProc(os.Getpid())
	for _, b := range boards {
		w.BoardsSent += b.sentIn[k].Load()
	}
	want := w.BoardsSent * uint64(len(set.list))

	// Drain: readings sent just before the window closed may be in flight.
	deadline := time.Now().Add(o.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var got uint64
		for _, b := range set.list {
			got += b.delivered(k)
		}
		if got >= want {
			break
		}
		sleepCtx(ctx, drainPoll)
	}
	var lat hist
	for _, b := range set.list {
		if bw := b.harvest(k); bw != nil {
			w.Delivered += bw.delivered
			w.Duplicates += bw.dups
			lat.merge(&bw.lat)
		}
	}
	rc1, cl1 := reconnectTotals(set)
	w.Reconnects, w.Closes1013 = rc1-rc0, cl1-cl0
	if w.Delivered < want {
		w.Lost = want - w.Delivered
	}
	if want > 0 {
		w.LossPct = round3(float64(w.Lost) / float64(want) * 100)
	}
	w.Latency = lat.summary()
	w.OfferedPerS = round1(rate * float64(len(boards)) * float64(len(set.list)))
	w.DeliveriesPerS = round1(float64(w.Delivered) / w.Seconds)
	w.ServerCPUPct = round1(cpuPct(s0, s1))
	if w.Delivered > 0 {
		w.CPUNsPerDeliv = round1(float64(s1.cpu-s0.cpu) / float64(w.Delivered))
	}
	w.ServerRSSKB = s1.rssKB
	w.LoadCPUPct = round1(cpuPct(self0, self1))
	w.Seconds = round3(w.Seconds)
	w.judge()
	return w, nil
}

func reconnectTotals(set *browserSet) (reconnects, closes1013 uint64) {
	for _, b := range set.list {
		reconnects += b.reconnects.Load()
		closes1013 += b.closes1013.Load()
	}
	return reconnects, closes1013
}

// waitFirstFrames waits until browsers [from, to) have each had a frame
// (the snapshot), or one of them gave up.
func waitFirstFrames(ctx context.Context, set *browserSet, from, to int) error {
	t := time.NewTimer(connectWait)
	defer t.Stop()
	for i := from; i < to; i++ {
		select {
		case <-set.list[i].first:
		case <-set.done[i]:
			return fmt.Errorf("browser %d gave up: %v", i, set.list[i].err)
		case <-t.C:
			return fmt.Errorf("browser %d: no first frame within %s", i, connectWait)
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}

// probeCommands sends n toggles one at a time from browser b, round-robin
// over the boards, and times each until that board's ledStatus event
// arrives back at b.
func probeCommands(ctx context.Context, ctl *control, b *browser, boards []*board, n int) *Commands {
	res := &Commands{}
	var rtt hist
	for i := 0; i < n && ctx.Err() == nil; i++ {
		drainChans(b)
		bi := i % len(boards)
		id := fmt.Sprintf("c%d", i)
		msg := fmt.Appendf(nil, `{"type":"command","id":%q,"device":%q,"label":"led","value":"toggle"}`, id, boards[bi].id)
		start := ctl.now()
		if err := b.send(msg); err != nil {
			res.Errors++
			continue
		}
		res.Sent++
		timeout := time.NewTimer(commandTimeout)
	wait:
		for {
			select {
			case ev := <-b.leds:
				if ev.board == bi {
					rtt.record(time.Duration(ev.at - start))
					res.Answered++
					break wait
				}
			case r := <-b.replies:
				if r.id != id {
					continue
				}
				if r.typ == "ack" {
					res.Acks++
					continue
				}
				res.Errors++
				break wait
			case <-timeout.C:
				res.Timeouts++
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		timeout.Stop()
		sleepCtx(ctx, commandGap)
	}
	res.RTT = rtt.summary()
	return res
}

// drainChans forgets stale ledStatus events and replies.
func drainChans(b *browser) {
	for {
		select {
		case <-b.leds:
		case <-b.replies:
		default:
			return
		}
	}
}

// sleepCtx sleeps for d or until ctx ends; it reports whether ctx is live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// progressLine is the one stderr line per window.
func progressLine(kind string, o options, w Window) string {
	verdict := "sustained"
	if !w.Sustained {
		verdict = "NOT sustained: " + w.Reason
	}
	return fmt.Sprintf("%s window %d (step %d): %g/s × %d boards → %d browsers: offered %.0f/s, delivered %.0f/s, lost %d (%.3f %%), dup %d, latency p50 %.2f ms p99 %.2f ms max %.1f ms, server CPU %.0f %% (%.0f ns/delivery), RSS %.1f MB, tool CPU %.0f %%, reconnects %d (1013: %d): %s",
		kind, w.Index, w.Step, w.Rate, o.Boards, w.Browsers, w.OfferedPerS, w.DeliveriesPerS, w.Lost, w.LossPct, w.Duplicates,
		w.Latency.P50, w.Latency.P99, w.Latency.Max, w.ServerCPUPct, w.CPUNsPerDeliv, float64(w.ServerRSSKB)/1024,
		w.LoadCPUPct, w.Reconnects, w.Closes1013, verdict)
}
