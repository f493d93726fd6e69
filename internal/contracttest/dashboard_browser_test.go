package contracttest

// Dashboard helpers for dashboard_test.go on top of internal/chrometest: a
// page is a named tab that describes the dashboard's state on failure; it
// must throw no exception and request nothing outside the gateway.

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/esp32gw/esp32gw/internal/chrometest"
)

// dashDescribe describes the dashboard for a failure message.
const dashDescribe = `JSON.stringify({url: location.href, banner: document.getElementById('connection')?.innerText,
	state: window.esp32gw && window.esp32gw.state, body: document.body.innerText.slice(0, 1500)})`

// newPage opens a tab on the dashboard's browser; name prefixes its failures.
func newPage(t *testing.T, b *chrometest.Browser, name string) *chrometest.Tab {
	t.Helper()
	p := b.NewTab(t)
	p.Name, p.Describe = name, dashDescribe
	return p
}

// checkClean fails the test on any JavaScript exception, and on any request
// to a host other than the gateway's (the dashboard must load nothing from
// outside: a Pi on a LAN often has no internet).
func checkClean(t *testing.T, p *chrometest.Tab, gatewayAddr string) {
	t.Helper()
	for _, e := range p.Problems("exception") {
		t.Errorf("%s: JavaScript exception: %s", p.Name, e.Text)
	}
	requests := p.Requests()
	if len(requests) == 0 {
		t.Errorf("%s: no requests recorded; network events are not arriving", p.Name)
	}
	for _, raw := range requests {
		u, err := url.Parse(raw)
		if err != nil {
			t.Errorf("%s: unparsable request URL %q", p.Name, raw)
			continue
		}
		switch u.Scheme {
		case "http", "ws":
			if u.Host != gatewayAddr {
				t.Errorf("%s: request to %s, which is not the gateway %s", p.Name, raw, gatewayAddr)
			}
		case "data", "blob", "about":
		default:
			t.Errorf("%s: request with scheme %s: %s", p.Name, u.Scheme, raw)
		}
	}
}

// screenshot captures the viewport as PNG into dir (a test temp dir), checks
// it is a PNG with content, and copies the README's screenshots to
// $ESP32GW_SCREENSHOTS when that is set (relative to the module root, e.g.
// ESP32GW_SCREENSHOTS=docs).
func screenshot(p *chrometest.Tab, dir, name string) string {
	t := p.T()
	t.Helper()
	path := filepath.Join(dir, name)
	png := p.Screenshot(path)
	if len(png) < 1000 {
		t.Fatalf("%s: screenshot %s is not a PNG with content (%d bytes)", p.Name, name, len(png))
	}
	if docs := os.Getenv("ESP32GW_SCREENSHOTS"); docs != "" && docsScreenshots[name] {
		if !filepath.IsAbs(docs) {
			docs = filepath.Join("..", "..", docs) // tests run in internal/contracttest/
		}
		if err := os.MkdirAll(docs, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(docs, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// docsScreenshots are the screenshots the README shows.
var docsScreenshots = map[string]bool{"dashboard-desktop.png": true, "dashboard-dark.png": true, "dashboard-phone.png": true}

// cardSel is a CSS selector for a device's card.
func cardSel(id string) string { return fmt.Sprintf(`[data-device=%s]`, chrometest.Quote(id)) }

// rowSel is a CSS selector for a label's row in a device's card.
func rowSel(id, label string) string {
	return fmt.Sprintf(`%s [data-label=%s]`, cardSel(id), chrometest.Quote(label))
}

// valueJS is a JavaScript expression for the text shown for a label (” if none).
func valueJS(id, label string) string {
	return fmt.Sprintf(`(document.querySelector(%s)?.textContent ?? '')`, chrometest.Quote(rowSel(id, label)+" .lvalue"))
}

// stateJS is a JavaScript expression for an on/off label's state (” if none).
func stateJS(id, label string) string {
	return fmt.Sprintf(`(document.querySelector(%s)?.dataset.state ?? '')`, chrometest.Quote(rowSel(id, label)))
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
