// Command esp32gw-load measures how many browsers a gateway can serve. It
// runs emulated ESP32 boards in-process (the classic tutorial sketch:
// {"label":"count","value":SEQ} at a set rate, "toggle" answered with
// ledStatus), starts the esp32gw binary with a generated config (or, with
// -reference, a built-in naive broadcaster in a child process), opens
// browsers on /ws and measures memory per idle browser, deliveries/s, loss,
// duplicates, latency from the board's send to the browser's receipt,
// the server's CPU per delivery and RSS, and the command round trip.
//
// Progress goes to stderr, one line per window; the summary is one JSON
// object on stdout. All traffic stays on loopback; every phase is bounded
// in time and the whole run by -timeout. measure owns every goroutine and
// child process it starts and stops them before it returns.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/esp32gw/esp32gw/internal/gwproc"
)

// serveReferenceFlag runs the reference broadcaster (hidden: the tool
// starts itself with it as a child process).
const serveReferenceFlag = "-serve-reference"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) == 3 && os.Args[1] == serveReferenceFlag {
		err = runReference(ctx, os.Args[2])
	} else {
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "esp32gw-load:", err)
		os.Exit(1)
	}
}

// runReference is the child process of -reference: spec is a refSpec as JSON.
func runReference(ctx context.Context, spec string) error {
	var s refSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		return fmt.Errorf("%s: bad spec: %w", serveReferenceFlag, err)
	}
	return serveReference(ctx, s)
}

// options are the flags.
type options struct {
	Boards       int
	Browsers     int
	IdleBrowsers int
	Rate         float64
	Window       time.Duration
	Windows      int
	Ramp         bool
	RampFactor   float64
	RampRetries  int
	Warmup       time.Duration
	Drain        time.Duration
	Commands     int
	Transport    string
	TokenIn      string
	Reference    bool
	Compare      bool
	Gateway      string
	Timeout      time.Duration
}

// Summary is the JSON object printed on stdout.
type Summary struct {
	Tool      string    `json:"tool"`
	Started   time.Time `json:"started"`
	Seconds   float64   `json:"seconds"`
	Machine   Machine   `json:"machine"`
	Config    Config    `json:"config"`
	Gateway   *Result   `json:"gateway,omitempty"`
	Reference *Result   `json:"reference,omitempty"`
	// Ratios are gateway ÷ reference, with -compare.
	Ratios *Ratios `json:"ratios,omitempty"`
}

// Machine describes where the run happened; the load average says how
// busy the machine was besides this run.
type Machine struct {
	CPUs        int    `json:"cpus"`
	GOOS        string `json:"goos"`
	GOARCH      string `json:"goarch"`
	GoVersion   string `json:"go_version"`
	LoadAvgFrom string `json:"loadavg_start"`
	LoadAvgTo   string `json:"loadavg_end"`
}

// Config is the options as they appear in the summary.
type Config struct {
	Boards       int     `json:"boards"`
	Browsers     int     `json:"browsers"`
	IdleBrowsers int     `json:"idle_browsers"`
	Rate         float64 `json:"rate"`
	WindowS      float64 `json:"window_s"`
	Windows      int     `json:"windows"`
	Ramp         bool    `json:"ramp"`
	RampFactor   float64 `json:"ramp_factor,omitempty"`
	RampRetries  int     `json:"ramp_retries,omitempty"`
	WarmupS      float64 `json:"warmup_s"`
	DrainS       float64 `json:"drain_s"`
	Commands     int     `json:"commands"`
	Transport    string  `json:"transport"`
	TokenIn      string  `json:"token_in"`
	Servers      string  `json:"servers"` // gateway | reference | both
	Gateway      string  `json:"gateway_binary,omitempty"`
	TimeoutS     float64 `json:"timeout_s"`
}

// run is the whole tool; main only adds signals and the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("esp32gw-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Boards, "boards", 1, "emulated boards `N`")
	fs.IntVar(&o.Browsers, "browsers", 50, "browsers `M` on /ws during the windows")
	fs.IntVar(&o.IdleBrowsers, "idle-browsers", 0, "browsers held idle to measure memory per browser [-browsers]; the extra ones close before the windows")
	fs.Float64Var(&o.Rate, "rate", 100, "readings/s per board (with -ramp: the first step)")
	fs.DurationVar(&o.Window, "window", 3*time.Second, "length of one measured window")
	fs.IntVar(&o.Windows, "windows", 0, "windows to measure, or with -ramp the most windows, retries included [3; with -ramp 20]")
	fs.BoolVar(&o.Ramp, "ramp", false, "step the rate up by -ramp-factor each window until one is not sustained")
	fs.Float64Var(&o.RampFactor, "ramp-factor", 1.5, "rate multiplier between ramp steps")
	fs.IntVar(&o.RampRetries, "ramp-retries", 1, "times a failed ramp step is measured again before the ramp ends")
	fs.DurationVar(&o.Warmup, "warmup", warmupDefault, "time at a new rate before its window opens")
	fs.DurationVar(&o.Drain, "drain", time.Second, "how long after a window to wait for its readings still in flight")
	fs.IntVar(&o.Commands, "commands", 20, "toggle commands for the round-trip measure (0: none)")
	fs.StringVar(&o.Transport, "transport", "ws-dial", "board links: ws-dial (the server dials the boards) or ws-listen (the boards dial /device/ID)")
	fs.StringVar(&o.TokenIn, "token-in", "query", "how browsers present the token: query (?token=) or header (Bearer)")
	fs.BoolVar(&o.Reference, "reference", false, "measure the built-in naive reference broadcaster instead of the gateway")
	fs.BoolVar(&o.Compare, "compare", false, "measure the gateway, then the reference, and report both and their ratios")
	fs.StringVar(&o.Gateway, "gateway", "", "esp32gw binary `PATH` [go build ./cmd/esp32gw into a temp dir]")
	fs.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "bound on the whole run")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: esp32gw-load [flags]   (progress on stderr, one JSON summary on stdout)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see -h)", fs.Arg(0))
	}
	if err := o.validate(); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeoutCause(ctx, o.Timeout, fmt.Errorf("-timeout %s reached", o.Timeout))
	defer cancel()
	sum := Summary{
		Tool:    "esp32gw-load",
		Started: time.Now().UTC().Round(time.Millisecond),
		Machine: Machine{CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
			GoVersion: runtime.Version(), LoadAvgFrom: loadAvg()},
		Config: o.config(),
	}
	gw := o.Gateway
	if gw != "" {
		// The gateway runs in its temp dir: a relative path would not resolve there.
		abs, err := filepath.Abs(gw)
		if err != nil {
			return fmt.Errorf("-gateway: %w", err)
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("-gateway: %w", err)
		}
		gw = abs
	}
	var errs []error
	if !o.Reference || o.Compare {
		if gw == "" {
			dir, err := os.MkdirTemp("", "esp32gw-load-bin-")
			if err != nil {
				return fmt.Errorf("temp dir: %w", err)
			}
			defer os.RemoveAll(dir)
			fmt.Fprintln(stderr, "building ./cmd/esp32gw …")
			if gw, err = gwproc.BuildGateway(ctx, dir); err != nil {
				return err
			}
		}
		sum.Config.Gateway = gw
		res, err := measure(ctx, o, "gateway", gw, stderr)
		if err != nil {
			res.Error = err.Error()
			errs = append(errs, err)
		}
		sum.Gateway = res
	}
	if (o.Reference || o.Compare) && ctx.Err() == nil {
		res, err := measure(ctx, o, "reference", "", stderr)
		if err != nil {
			res.Error = err.Error()
			errs = append(errs, err)
		}
		sum.Reference = res
	}
	if sum.Gateway != nil && sum.Reference != nil {
		r := compareResults(sum.Gateway, sum.Reference)
		sum.Ratios = &r
	}
	sum.Seconds = round3(time.Since(sum.Started).Seconds())
	sum.Machine.LoadAvgTo = loadAvg()
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(sum); err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	return errors.Join(errs...)
}

func (o *options) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.Boards < 1 || o.Boards > 1000 {
		bad("-boards must be 1..1000, got %d", o.Boards)
	}
	if o.Browsers < 1 || o.Browsers > 20000 {
		bad("-browsers must be 1..20000, got %d", o.Browsers)
	}
	if o.IdleBrowsers < 0 || o.IdleBrowsers > 20000 {
		bad("-idle-browsers must be 0..20000, got %d", o.IdleBrowsers)
	}
	if o.Rate <= 0 || o.Rate > 100000 {
		bad("-rate must be in (0, 100000] readings/s per board, got %g", o.Rate)
	}
	if o.Window < 100*time.Millisecond {
		bad("-window must be at least 100ms, got %s", o.Window)
	}
	if o.Windows == 0 {
		o.Windows = 3
		if o.Ramp {
			o.Windows = 20
		}
	}
	if o.Windows < 1 || o.Windows > maxWindows {
		bad("-windows must be 1..%d, got %d", maxWindows, o.Windows)
	}
	if o.Ramp && o.RampFactor <= 1 {
		bad("-ramp-factor must be above 1, got %g", o.RampFactor)
	}
	if o.RampRetries < 0 || o.RampRetries > 5 {
		bad("-ramp-retries must be 0..5, got %d", o.RampRetries)
	}
	if o.Warmup < 0 || o.Drain < 0 {
		bad("-warmup and -drain must not be negative")
	}
	if o.Commands < 0 || o.Commands > 10000 {
		bad("-commands must be 0..10000, got %d", o.Commands)
	}
	if o.Transport != "ws-dial" && o.Transport != "ws-listen" {
		bad("-transport must be ws-dial or ws-listen, got %q", o.Transport)
	}
	if o.TokenIn != "query" && o.TokenIn != "header" {
		bad("-token-in must be query or header, got %q", o.TokenIn)
	}
	if o.Timeout <= 0 {
		bad("-timeout must be positive, got %s", o.Timeout)
	}
	return errors.Join(errs...)
}

func (o *options) config() Config {
	servers := "gateway"
	switch {
	case o.Compare:
		servers = "both"
	case o.Reference:
		servers = "reference"
	}
	c := Config{
		Boards: o.Boards, Browsers: o.Browsers, IdleBrowsers: max(o.IdleBrowsers, o.Browsers),
		Rate: o.Rate, WindowS: o.Window.Seconds(), Windows: o.Windows, Ramp: o.Ramp,
		WarmupS: o.Warmup.Seconds(), DrainS: o.Drain.Seconds(), Commands: o.Commands,
		Transport: o.Transport, TokenIn: o.TokenIn, Servers: servers, TimeoutS: o.Timeout.Seconds(),
	}
	if o.Ramp {
		c.RampFactor, c.RampRetries = o.RampFactor, o.RampRetries
	}
	return c
}
