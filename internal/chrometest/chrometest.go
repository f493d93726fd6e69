// Package chrometest drives a headless Chromium for tests: one browser
// process per test, tabs that record what they request and every problem the
// page reports (uncaught exceptions, console errors, failed loads), and
// actions that fail the test on error or timeout. Every wait polls with a
// deadline; nothing sleeps blindly.
//
// Tests that use it are skipped when Chromium is missing, and fail when the
// environment variable CI is set (.ci/run must install it).
package chrometest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ActionTimeout bounds one browser action or evaluation; waits have their
// own deadlines.
const ActionTimeout = 20 * time.Second

// Require returns the path of Chromium: $ESP32GW_CHROMIUM, or the first of
// chromium, chromium-browser, google-chrome, google-chrome-stable on PATH.
// Without one the test is skipped, or fails when CI is set.
func Require(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ESP32GW_CHROMIUM"); p != "" {
		return p
	}
	names := []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("chromium is not installed (none of %s on PATH, ESP32GW_CHROMIUM unset), and CI is set: .ci/run must install it", strings.Join(names, ", "))
	}
	t.Skipf("chromium is not installed (none of %s on PATH, ESP32GW_CHROMIUM unset); skipping (install it to run this test)", strings.Join(names, ", "))
	return ""
}

// Browser is one headless Chromium with a temporary profile; it is stopped
// when the test ends.
type Browser struct {
	ctx context.Context
}

// Start starts Chromium with a window of width×height CSS pixels. It skips
// the test in -short mode and without Chromium (see Require).
func Start(t testing.TB, width, height int) *Browser {
	t.Helper()
	if testing.Short() {
		t.Skip("drives Chromium")
	}
	path := Require(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return &Browser{ctx: ctx}
}

// Problem is one thing a page reported going wrong.
type Problem struct {
	// Kind is "exception", "console.error", "console.warning",
	// "console.assert" or "log" (an error-level browser log entry, such as
	// a failed load).
	Kind string
	Text string
}

func (p Problem) String() string { return p.Kind + ": " + p.Text }

// Tab is one tab of a Browser. It records every URL it requests (WebSockets
// included) and every Problem.
type Tab struct {
	// Name prefixes the tab's failure messages when set ("page A").
	Name string
	// Describe, when set, is a JavaScript expression returning a string that
	// describes the page; failure messages include it.
	Describe string

	t   testing.TB
	ctx context.Context

	mu       sync.Mutex
	requests []string
	problems []Problem
}

// NewTab opens a tab; it is closed when the test ends.
func (b *Browser) NewTab(t testing.TB) *Tab {
	t.Helper()
	tab := &Tab{t: t}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithListener(tab.record))
	t.Cleanup(cancel)
	tab.ctx = ctx
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	return tab
}

// record runs on chromedp's reader goroutine: it only appends under a lock.
func (tab *Tab) record(ev any) {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		tab.requests = append(tab.requests, ev.Request.URL)
	case *network.EventWebSocketCreated:
		tab.requests = append(tab.requests, ev.URL)
	case *runtime.EventExceptionThrown:
		tab.problems = append(tab.problems, Problem{"exception", (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error()})
	case *runtime.EventConsoleAPICalled:
		switch ev.Type {
		case runtime.ConsoleAPICalledTypeError, runtime.ConsoleAPICalledTypeWarning, runtime.ConsoleAPICalledTypeAssert:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			tab.problems = append(tab.problems, Problem{"console." + string(ev.Type), strings.Join(args, " ")})
		}
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError {
			tab.problems = append(tab.problems, Problem{"log", fmt.Sprintf("%s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)})
		}
	}
}

// T is the test the tab belongs to.
func (tab *Tab) T() testing.TB { return tab.t }

// Context is the tab's chromedp context, for calls this package lacks.
func (tab *Tab) Context() context.Context { return tab.ctx }

// Requests returns every URL the tab requested so far.
func (tab *Tab) Requests() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]string(nil), tab.requests...)
}

// Problems returns the problems of the kinds given (all when none is given)
// reported so far.
func (tab *Tab) Problems(kinds ...string) []Problem {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	var out []Problem
	for _, p := range tab.problems {
		if len(kinds) == 0 || contains(kinds, p.Kind) {
			out = append(out, p)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fatalf fails the test with the tab's name and, for what failed in the
// page, its description.
func (tab *Tab) fatalf(describe bool, format string, args ...any) {
	tab.t.Helper()
	msg := tab.prefix() + fmt.Sprintf(format, args...)
	if describe && tab.Describe != "" {
		if s, err := TryEval[string](tab, tab.Describe, 3*time.Second); err != nil {
			msg += "\n(page state unavailable: " + err.Error() + ")"
		} else {
			msg += "\npage: " + s
		}
	}
	tab.t.Fatal(msg)
}

// Do runs browser actions within ActionTimeout; what names them in the
// failure message.
func (tab *Tab) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, ActionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tab.fatalf(true, "%s: %v", what, err)
	}
}

// Navigate loads u.
func (tab *Tab) Navigate(u string) { tab.t.Helper(); tab.Do("navigate to "+u, chromedp.Navigate(u)) }

// Eval evaluates a JavaScript expression into T, failing the test on error.
func Eval[T any](tab *Tab, expr string) T {
	tab.t.Helper()
	v, err := TryEval[T](tab, expr, ActionTimeout)
	if err != nil {
		tab.fatalf(true, "eval %s: %v", expr, err)
	}
	return v
}

// TryEval evaluates a JavaScript expression into T within timeout.
func TryEval[T any](tab *Tab, expr string, timeout time.Duration) (T, error) {
	ctx, cancel := context.WithTimeout(tab.ctx, timeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// WaitFor polls the JavaScript expression until it is truthy, failing the
// test after timeout. Errors while polling (a navigation destroying the
// context) are retried until the deadline. It returns how long the wait took.
func (tab *Tab) WaitFor(what, expr string, timeout time.Duration) time.Duration {
	tab.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		ok, err := TryEval[bool](tab, `!!(`+expr+`)`, time.Until(deadline)+time.Second)
		if err == nil && ok {
			return time.Since(start)
		}
		if err != nil {
			lastErr = err
		}
		if time.Now().After(deadline) {
			tab.fatalf(true, "%s: not true within %v: %s (last error: %v)", what, timeout, expr, lastErr)
		}
		select {
		case <-tick.C:
		case <-tab.ctx.Done():
			tab.fatalf(false, "%s: browser gone: %v", what, tab.ctx.Err())
		}
	}
}

// Click clicks the element like a user: once it is there and enabled,
// scrolled to the middle of the viewport (clear of a sticky header).
func (tab *Tab) Click(sel string) {
	tab.t.Helper()
	tab.WaitFor("enabled: "+sel, fmt.Sprintf(`(e => !!e && !e.disabled && (e.scrollIntoView({block: 'center'}), true))(document.querySelector(%s))`, Quote(sel)), 5*time.Second)
	tab.Do("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// Rect is an element's box in CSS pixels.
type Rect struct{ X, Y, W, H float64 }

// Rect returns the bounding box of the element sel selects.
func (tab *Tab) Rect(sel string) Rect {
	tab.t.Helper()
	return Eval[Rect](tab, fmt.Sprintf(`(r => ({X: r.x, Y: r.y, W: r.width, H: r.height}))(document.querySelector(%s).getBoundingClientRect())`, Quote(sel)))
}

// Mouse sends one mouse event at x, y; down says the left button is held.
func (tab *Tab) Mouse(typ input.DispatchMouseEventType, x, y float64, down bool) {
	tab.t.Helper()
	tab.Do(fmt.Sprintf("mouse %s at %.0f,%.0f", typ, x, y), chromedp.MouseEvent(typ, x, y, func(m *input.DispatchMouseEventParams) {
		if down {
			m.Button, m.Buttons = input.MouseButtonLeft, 1
			if typ != chromedp.MouseMoved {
				m.ClickCount = 1
			}
		}
	}))
}

// SetViewport sets the tab's size, the prefers-color-scheme it reports
// ("light" or "dark") and any further emulation (scale, mobile, touch).
func (tab *Tab) SetViewport(w, h int64, scheme string, opts ...chromedp.EmulateViewportOption) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, ActionTimeout)
	defer cancel()
	err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h, opts...))
	if err == nil {
		_, err = chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
	}
	if err != nil {
		tab.fatalf(false, "viewport %dx%d %s: %v", w, h, scheme, err)
	}
}

// Screenshot captures the viewport as a PNG into path (creating its
// directory) and returns it.
func (tab *Tab) Screenshot(path string) []byte {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, ActionTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tab.fatalf(false, "screenshot %s: %v", path, err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		tab.fatalf(false, "screenshot %s is not a PNG (%d bytes)", path, len(png))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tab.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tab.t.Fatal(err)
	}
	tab.t.Logf("%sscreenshot %s (%d bytes)", tab.prefix(), path, len(png))
	return png
}

func (tab *Tab) prefix() string {
	if tab.Name == "" {
		return ""
	}
	return tab.Name + ": "
}

// Quote quotes s as a JavaScript string literal.
func Quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
