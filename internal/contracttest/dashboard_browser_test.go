package contracttest

// Helpers that drive a headless Chromium against the real gateway binary for
// dashboard_test.go. A browser is one Chromium process per test; a page is
// one tab in it that records every request it makes and every JavaScript
// exception it throws. Every wait polls with a deadline; nothing sleeps.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/esp32gw/esp32gw/internal/testgw"
)

// actionTimeout bounds one browser action; waits have their own deadlines.
const actionTimeout = 15 * time.Second

// chromiumPath finds Chromium; without one the test is skipped, or fails when
// CI is set (testgw.Require decides).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ESP32GW_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return testgw.Require(t, "chromium")
}

// chromeBrowser is one headless Chromium with a temporary profile; it is stopped
// when the test ends.
type chromeBrowser struct {
	t   *testing.T
	ctx context.Context
}

func startBrowser(t *testing.T) *chromeBrowser {
	t.Helper()
	if testing.Short() {
		t.Skip("drives Chromium against the built binary")
	}
	path := chromiumPath(t)
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
		chromedp.WindowSize(1280, 860),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return &chromeBrowser{t: t, ctx: ctx}
}

// chromePage is one tab.
type chromePage struct {
	t    *testing.T
	ctx  context.Context
	name string

	mu         sync.Mutex
	requests   []string // every URL the tab requested, WebSockets included
	exceptions []string
}

func (b *chromeBrowser) newPage(name string) *chromePage {
	b.t.Helper()
	p := &chromePage{t: b.t, name: name}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithListener(p.record))
	b.t.Cleanup(cancel)
	p.ctx = ctx
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("%s: open tab: %v", name, err)
	}
	return p
}

// record runs on chromedp's reader goroutine: it only appends under a lock.
func (p *chromePage) record(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		p.requests = append(p.requests, ev.Request.URL)
	case *network.EventWebSocketCreated:
		p.requests = append(p.requests, ev.URL)
	case *runtime.EventExceptionThrown:
		p.exceptions = append(p.exceptions, (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
	}
}

func (p *chromePage) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

// checkClean fails the test on any JavaScript exception, and on any request
// to a host other than the gateway's (the dashboard must load nothing from
// outside: a Pi on a LAN often has no internet).
func (p *chromePage) checkClean(gatewayAddr string) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.exceptions {
		p.t.Errorf("%s: JavaScript exception: %s", p.name, e)
	}
	if len(p.requests) == 0 {
		p.t.Errorf("%s: no requests recorded; network events are not arriving", p.name)
	}
	for _, raw := range p.requests {
		u, err := url.Parse(raw)
		if err != nil {
			p.t.Errorf("%s: unparsable request URL %q", p.name, raw)
			continue
		}
		switch u.Scheme {
		case "http", "ws":
			if u.Host != gatewayAddr {
				p.t.Errorf("%s: request to %s, which is not the gateway %s", p.name, raw, gatewayAddr)
			}
		case "data", "blob", "about":
		default:
			p.t.Errorf("%s: request with scheme %s: %s", p.name, u.Scheme, raw)
		}
	}
}

// do runs browser actions with a timeout and fails the test on error.
func (p *chromePage) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %s: %v\n%s", p.name, what, err, p.diagnose())
	}
}

// evalJS evaluates a JavaScript expression into T.
func evalJS[T any](p *chromePage, expr string) T {
	p.t.Helper()
	v, err := tryEvalJS[T](p, expr, actionTimeout)
	if err != nil {
		p.t.Fatalf("%s: eval %s: %v\n%s", p.name, expr, err, p.diagnose())
	}
	return v
}

func tryEvalJS[T any](p *chromePage, expr string, timeout time.Duration) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// waitFor polls the JavaScript expression until it is true, failing after
// timeout. Errors while polling (a navigation destroying the context) are
// retried until the deadline. It returns how long the wait took.
func (p *chromePage) waitFor(what, expr string, timeout time.Duration) time.Duration {
	p.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		ok, err := tryEvalJS[bool](p, expr, time.Until(deadline)+time.Second)
		if err == nil && ok {
			return time.Since(start)
		}
		if err != nil {
			lastErr = err
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s: not true within %v: %s (last error: %v)\n%s", p.name, what, timeout, expr, lastErr, p.diagnose())
		}
		select {
		case <-tick.C:
		case <-p.ctx.Done():
			p.t.Fatalf("%s: %s: browser gone: %v", p.name, what, p.ctx.Err())
		}
	}
}

// diagnose describes the page for a failure message.
func (p *chromePage) diagnose() string {
	s, err := tryEvalJS[string](p, `JSON.stringify({url: location.href, banner: document.getElementById('connection')?.innerText,
		state: window.esp32gw && window.esp32gw.state, body: document.body.innerText.slice(0, 1500)})`, 3*time.Second)
	if err != nil {
		return "(page state unavailable: " + err.Error() + ")"
	}
	return "page: " + s
}

func (p *chromePage) navigate(u string) { p.t.Helper(); p.do("navigate to "+u, chromedp.Navigate(u)) }

// click clicks the element like a user: once it is enabled, scrolled to the
// middle of the viewport, clear of the sticky header.
func (p *chromePage) click(sel string) {
	p.t.Helper()
	p.waitFor("enabled: "+sel, fmt.Sprintf(`(e => !!e && !e.disabled && (e.scrollIntoView({block: 'center'}), true))(document.querySelector(%s))`, jsQuote(sel)), 5*time.Second)
	p.do("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// setViewport sets the tab's size and the prefers-color-scheme it reports.
func (p *chromePage) setViewport(w, h int64, scheme string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h))
	if err == nil {
		_, err = chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
	}
	if err != nil {
		p.t.Fatalf("%s: viewport %dx%d %s: %v", p.name, w, h, scheme, err)
	}
}

// screenshot captures the viewport as PNG into dir (a test temp dir), checks
// it is a non-empty PNG, and copies the README's screenshots to
// $ESP32GW_SCREENSHOTS when that is set (relative to the module root, e.g.
// ESP32GW_SCREENSHOTS=docs).
func (p *chromePage) screenshot(dir, name string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("%s: screenshot %s: %v", p.name, name, err)
	}
	if len(png) < 1000 || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		p.t.Fatalf("%s: screenshot %s is not a PNG with content (%d bytes)", p.name, name, len(png))
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	if docs := os.Getenv("ESP32GW_SCREENSHOTS"); docs != "" && docsScreenshots[name] {
		if !filepath.IsAbs(docs) {
			docs = filepath.Join("..", "..", docs) // tests run in internal/contracttest/
		}
		if err := os.MkdirAll(docs, 0o755); err != nil {
			p.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(docs, name), png, 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
	p.t.Logf("%s: screenshot %s (%d bytes)", p.name, path, len(png))
	return path
}

// docsScreenshots are the screenshots the README shows.
var docsScreenshots = map[string]bool{"dashboard-desktop.png": true, "dashboard-dark.png": true, "dashboard-phone.png": true}

// jsQuote quotes s as a JavaScript string literal.
func jsQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// cardSel is a CSS selector for a device's card.
func cardSel(id string) string { return fmt.Sprintf(`[data-device=%s]`, jsQuote(id)) }

// rowSel is a CSS selector for a label's row in a device's card.
func rowSel(id, label string) string {
	return fmt.Sprintf(`%s [data-label=%s]`, cardSel(id), jsQuote(label))
}

// valueJS is a JavaScript expression for the text shown for a label (” if none).
func valueJS(id, label string) string {
	return fmt.Sprintf(`(document.querySelector(%s)?.textContent ?? '')`, jsQuote(rowSel(id, label)+" .lvalue"))
}

// stateJS is a JavaScript expression for an on/off label's state (” if none).
func stateJS(id, label string) string {
	return fmt.Sprintf(`(document.querySelector(%s)?.dataset.state ?? '')`, jsQuote(rowSel(id, label)))
}

// bannerJS is the connection banner's text, lower-cased.
const bannerJS = `(document.getElementById('connection')?.innerText ?? '').toLowerCase()`

// dashConfig is a config for testgw with the given devices block.
func dashConfig(auth, devices string) string {
	return strings.TrimSpace(`
gateway_id: testgw
state_dir: data
http:
  listen: "127.0.0.1:0"
  auth: `+auth+`
devices:
`) + "\n" + devices
}
