package main

import (
	"math"
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram in microseconds: exact below 32 µs,
// then 16 buckets per power of two (a bucket is at most ~6 % wide). It is
// not safe for concurrent use; each browser owns its own and the controller
// merges them under the browser's lock.
type hist struct {
	counts [histBuckets]uint32
	n      uint64
	maxUS  uint64
}

const (
	histLinear  = 32 // values below this many µs have a bucket each
	histSubBits = 4  // 16 sub-buckets per power of two above that
	histSub     = 1 << histSubBits
	histBuckets = histLinear + 60*histSub
)

func histIndex(us uint64) int {
	if us < histLinear {
		return int(us)
	}
	shift := bits.Len64(us) - histSubBits - 1 // us>>shift is in [16, 32)
	i := histLinear + (shift-1)*histSub + int(us>>shift) - histSub
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// histValue is the middle of bucket i in µs.
func histValue(i int) float64 {
	if i < histLinear {
		return float64(i)
	}
	shift := (i-histLinear)/histSub + 1
	m := uint64((i-histLinear)%histSub + histSub)
	lo := m << shift
	hi := (m + 1) << shift
	return float64(lo+hi) / 2
}

func (h *hist) record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.counts[histIndex(us)]++
	h.n++
	if us > h.maxUS {
		h.maxUS = us
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	if o.maxUS > h.maxUS {
		h.maxUS = o.maxUS
	}
}

// quantileMS is the q-quantile (0..1) in milliseconds; 0 when empty.
func (h *hist) quantileMS(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			v := histValue(i)
			if m := float64(h.maxUS); v > m {
				v = m
			}
			return v / 1000
		}
	}
	return float64(h.maxUS) / 1000
}

// Latency is a latency summary in milliseconds.
type Latency struct {
	Samples uint64  `json:"samples"`
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
}

func (h *hist) summary() Latency {
	return Latency{
		Samples: h.n,
		P50:     round3(h.quantileMS(0.50)),
		P99:     round3(h.quantileMS(0.99)),
		Max:     round3(float64(h.maxUS) / 1000),
	}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
func round1(v float64) float64 { return math.Round(v*10) / 10 }

// Thresholds of a sustained window (issue 12): any one broken and the step
// is not sustained.
const (
	maxLossPct        = 0.1 // % of offered deliveries that never arrived
	maxP99MS          = 500 // ms from the board's send to the browser's receipt
	minDeliveredRatio = 0.95
)

// Window is one measured window: readings the boards sent while it was
// open, and what the browsers made of them.
type Window struct {
	Index          int     `json:"index"`
	Step           int     `json:"step"`        // ramp step (a retried step repeats its number)
	Rate           float64 `json:"rate"`        // target readings/s per board
	Seconds        float64 `json:"seconds"`     // how long the window was open
	BoardsSent     uint64  `json:"boards_sent"` // readings the boards wrote in the window
	Browsers       int     `json:"browsers"`
	OfferedPerS    float64 `json:"offered_per_s"`    // target rate × boards × browsers
	DeliveriesPerS float64 `json:"deliveries_per_s"` // distinct readings received / seconds
	Delivered      uint64  `json:"delivered"`
	Lost           uint64  `json:"lost"` // sent by a board, never received by a browser (within the drain)
	LossPct        float64 `json:"loss_pct"`
	Duplicates     uint64  `json:"duplicates"`
	Latency        Latency `json:"latency_ms"`
	ServerCPUPct   float64 `json:"server_cpu_pct"` // of one core
	CPUNsPerDeliv  float64 `json:"server_cpu_ns_per_delivery"`
	ServerRSSKB    int64   `json:"server_rss_kb"`
	LoadCPUPct     float64 `json:"load_tool_cpu_pct"` // this tool's own CPU: near 100 % × cores means the tool was the limit
	Reconnects     uint64  `json:"browser_reconnects"`
	Closes1013     uint64  `json:"browser_closes_1013"`
	Sustained      bool    `json:"sustained"`
	Reason         string  `json:"reason,omitempty"` // why not sustained
}

// judge fills Sustained and Reason from the thresholds.
func (w *Window) judge() {
	var why []string
	if w.LossPct > maxLossPct {
		why = append(why, "loss > 0.1 %")
	}
	if w.Latency.P99 > maxP99MS {
		why = append(why, "p99 > 500 ms")
	}
	if w.DeliveriesPerS < minDeliveredRatio*w.OfferedPerS {
		why = append(why, "deliveries < 95 % of offered")
	}
	w.Sustained = len(why) == 0
	w.Reason = ""
	for i, s := range why {
		if i > 0 {
			w.Reason += "; "
		}
		w.Reason += s
	}
}

// Idle is the memory cost of idle browsers.
type Idle struct {
	Browsers      int     `json:"browsers"`
	Connected     int     `json:"connected"`
	RSSBeforeKB   int64   `json:"rss_before_kb"`
	RSSAfterKB    int64   `json:"rss_after_kb"`
	KBPerBrowser  float64 `json:"kb_per_browser"`
	ConnectMillis float64 `json:"connect_ms"` // time to open them all
}

// Commands is the command round trip: browser command → board → ledStatus
// event back at the same browser.
type Commands struct {
	Sent     int     `json:"sent"`
	Answered int     `json:"answered"` // ledStatus came back
	Acks     int     `json:"acks"`
	Errors   int     `json:"errors"`
	Timeouts int     `json:"timeouts"`
	RTT      Latency `json:"rtt_ms"`
}

// Result is one server's run.
type Result struct {
	Server         string    `json:"server"` // gateway | reference
	PID            int       `json:"pid"`
	RSSNoBrowserKB int64     `json:"rss_no_browsers_kb"`
	Idle           *Idle     `json:"idle,omitempty"`
	Commands       *Commands `json:"commands,omitempty"`
	Windows        []Window  `json:"windows"`
	// Best is the sustained window with the most deliveries/s (ramp: the
	// highest sustained step); nil when none was sustained.
	Best  *Window `json:"best_sustained,omitempty"`
	Error string  `json:"error,omitempty"`
}

// bestSustained returns the sustained window with the most deliveries/s.
func bestSustained(ws []Window) *Window {
	var best *Window
	for i := range ws {
		if ws[i].Sustained && (best == nil || ws[i].DeliveriesPerS > best.DeliveriesPerS) {
			w := ws[i]
			best = &w
		}
	}
	return best
}

// Ratios compares the gateway with the reference (gateway ÷ reference);
// a ratio is absent when either side lacks the figure.
type Ratios struct {
	// Basis names the windows compared: each side's best sustained window,
	// or, when either has none, each side's last window (the same offered
	// load in a run without -ramp).
	Basis               string   `json:"basis"`
	SustainedDeliveries *float64 `json:"sustained_deliveries_per_s,omitempty"` // higher is better; best_sustained only
	DeliveriesPerS      *float64 `json:"deliveries_per_s,omitempty"`           // higher is better
	P99                 *float64 `json:"p99_latency,omitempty"`                // lower is better
	CPUPerDelivery      *float64 `json:"cpu_ns_per_delivery,omitempty"`        // lower is better
	IdleKBPerBrowser    *float64 `json:"idle_kb_per_browser,omitempty"`        // lower is better
	CommandRTTP50       *float64 `json:"command_rtt_p50,omitempty"`            // lower is better
}

// ratio is a ÷ b to three places, or nil when either is not positive.
func ratio(a, b float64) *float64 {
	if a <= 0 || b <= 0 {
		return nil
	}
	r := math.Round(a/b*1000) / 1000
	return &r
}

func compareResults(g, r *Result) Ratios {
	var x Ratios
	gw, rw := g.Best, r.Best
	x.Basis = "best_sustained"
	if gw == nil || rw == nil {
		gw, rw, x.Basis = nil, nil, "last_window"
		if len(g.Windows) > 0 && len(r.Windows) > 0 {
			gw, rw = &g.Windows[len(g.Windows)-1], &r.Windows[len(r.Windows)-1]
		}
	}
	if gw != nil && rw != nil {
		if x.Basis == "best_sustained" {
			x.SustainedDeliveries = ratio(gw.DeliveriesPerS, rw.DeliveriesPerS)
		}
		x.DeliveriesPerS = ratio(gw.DeliveriesPerS, rw.DeliveriesPerS)
		x.P99 = ratio(gw.Latency.P99, rw.Latency.P99)
		x.CPUPerDelivery = ratio(gw.CPUNsPerDeliv, rw.CPUNsPerDeliv)
	}
	if g.Idle != nil && r.Idle != nil {
		x.IdleKBPerBrowser = ratio(g.Idle.KBPerBrowser, r.Idle.KBPerBrowser)
	}
	if g.Commands != nil && r.Commands != nil {
		x.CommandRTTP50 = ratio(g.Commands.RTT.P50, r.Commands.RTT.P50)
	}
	return x
}
