package contracttest

// The dashboard's history charts against the real binary, in a real headless
// Chromium (issue 11, Tests): 7 days of readings imported through
// POST /api/devices/{id}/history, the 7 d range picked on a numeric label's
// chart and on an on/off label's timeline, a drag-zoom, the device's
// availability timeline. Checks: the charts draw (non-blank canvases), the
// on/off timeline has "on" segments, no console errors or exceptions, every
// history fetch asks for max_points ≤ 1000 and is answered with at most
// max_points points. Skipped without Chromium; failed when CI is set.
//
//	go test ./internal/contracttest -run TestHistoryDashboard -v

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/esp32gw/esp32gw/internal/chrometest"
	"github.com/esp32gw/esp32gw/internal/testgw"
)

const (
	hdStep    = 30 * time.Second // one imported reading per label this often
	hdDays    = 7
	hdMaxBody = 16 << 20 // the import's limit
)

// hdImport builds 7 days of readings ending a minute ago: "count" rises by
// one per reading, wraps daily (a numeric label), and "ledStatus" is on
// from 19:00 to 23:00 UTC every day and off otherwise (an on/off label).
func hdImport(end time.Time) (body []byte, n int, onCount int) {
	var b bytes.Buffer
	start := end.Add(-hdDays * 24 * time.Hour)
	i := 0
	for t := start; t.Before(end); t = t.Add(hdStep) {
		ts := t.UnixMilli()
		fmt.Fprintf(&b, `{"label":"count","value":%d,"ts":%d}`+"\n", i%2880, ts)
		led := "LED OFF"
		if h := t.UTC().Hour(); h >= 19 && h < 23 {
			led = "LED ON"
			onCount++
		}
		fmt.Fprintf(&b, `{"label":"ledStatus","value":%q,"ts":%d}`+"\n", led, ts)
		n += 2
		i++
	}
	return b.Bytes(), n, onCount
}

// hdFetchLog wraps window.fetch before the dashboard's scripts run: every
// history and availability answer is summed up in window.__hist.
const hdFetchLog = `(() => {
	const orig = window.fetch;
	window.__hist = [];
	window.fetch = async function (input, init) {
		const r = await orig.apply(this, arguments);
		const u = String((input && input.url) || input);
		if (/\/api\/devices\/[^/]+\/(history|availability)/.test(u)) {
			const rec = { url: u, status: r.status, points: -1, intervals: -1, resolution: '' };
			window.__hist.push(rec);
			r.clone().json().then((b) => {
				if (b && Array.isArray(b.points)) rec.points = b.points.length;
				if (b && Array.isArray(b.intervals)) rec.intervals = b.intervals.length;
				rec.resolution = (b && b.resolution) || '';
				rec.done = true;
			}, () => { rec.done = true; });
		}
		return r;
	};
})();`

// hdDrawnJS is true when the chart in sel is ready and its canvas has at
// least n painted pixels.
func hdDrawnJS(sel string, n int) string {
	return fmt.Sprintf(`(() => {
		const root = document.querySelector(%q);
		if (!root || root.dataset.state !== 'ready' || root.dataset.loading) return false;
		const c = root.querySelector('canvas');
		if (!c || !c.width || !c.height) return false;
		const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		let k = 0;
		for (let i = 3; i < d.length; i += 4) if (d[i] > 0) k++;
		return k >= %d;
	})()`, sel, n)
}

// hdDescribe describes the page for a failure message.
const hdDescribe = `JSON.stringify({hist: window.__hist, body: document.body.innerText.slice(0, 800)})`

func TestHistoryDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("drives Chromium against the built binary")
	}
	chrometest.Require(t)

	g := testgw.Start(t, header("hd", "  auth: none\n")+`  - id: demo
    name: "Demo board"
    transport: sim
    sim: {board: tutorial, interval: 1s}
    commands: [toggle]
`)
	// The labels exist (with their kinds) once the board has sent them;
	// the imported readings are older, so they are history, not live.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, b := g.Get("/api/devices/demo")
		var d struct {
			Labels map[string]struct{ Kind string } `json:"labels"`
		}
		json.Unmarshal(b, &d)
		if d.Labels["count"].Kind == "number" && d.Labels["ledStatus"].Kind == "onoff" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo has no number count and onoff ledStatus after 10 s: %s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}

	body, n, onCount := hdImport(time.Now().Add(-time.Minute).Truncate(hdStep))
	if len(body) > hdMaxBody || onCount == 0 {
		t.Fatalf("import body %d bytes (limit %d), %d on readings", len(body), hdMaxBody, onCount)
	}
	start := time.Now()
	code, ans := g.Do("POST", "/api/devices/demo/history", body)
	var imp struct {
		Imported, Rejected int
		Errors             []string
	}
	if err := json.Unmarshal(ans, &imp); code != 200 || err != nil || imp.Imported != n || imp.Rejected != 0 {
		t.Fatalf("import of %d readings (%d bytes): %d %s (%v)", n, len(body), code, ans, err)
	}
	t.Logf("imported %d readings (%.1f MB) in %v", n, float64(len(body))/1e6, time.Since(start).Round(time.Millisecond))

	// The browser.
	p := chrometest.Start(t, 1280, 900).NewTab(t)
	p.Describe = hdDescribe
	p.Do("install the fetch log", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: hdFetchLog})
		return err
	}))
	p.Do("open the dashboard", chromedp.Navigate(g.URL+"/"))

	card := `[data-device="demo"]`
	countSel := card + ` [data-label="count"] .hist`
	ledSel := card + ` [data-label="ledStatus"] .hist`
	p.WaitFor("live charts shown", fmt.Sprintf(`window.esp32gw?.state.conn === 'connected' && document.querySelector(%q)?.dataset.range === 'live' && document.querySelector(%q)`, countSel, ledSel), 15*time.Second)
	p.WaitFor("live count chart drawn", hdDrawnJS(countSel, 200), 10*time.Second)

	// 7 d on the numeric chart: a band of buckets over the whole week.
	p.Do("pick 7 d on count", chromedp.Click(chromedp.CSS(countSel+` .hist-range[data-range="7d"]`), chromedp.NodeVisible))
	p.WaitFor("count over 7 d drawn", fmt.Sprintf(`document.querySelector(%q).dataset.range === '7d' && !document.querySelector(%q).dataset.zoomed && %s`, countSel, countSel, hdDrawnJS(countSel, 2000)), 15*time.Second)
	res := chrometest.Eval[string](p, fmt.Sprintf(`document.querySelector(%q).dataset.resolution`, countSel))
	if _, err := time.ParseDuration(res); err != nil {
		t.Errorf("count over 7 d (%d readings): resolution %q, want buckets (10m, 15m, …)", n/2, res)
	}
	aria := chrometest.Eval[string](p, fmt.Sprintf(`document.querySelector(%q + ' canvas').getAttribute('aria-label')`, countSel))
	t.Logf("count 7 d: resolution %s; %s", res, aria)

	// 7 d on the on/off timeline: evenings on.
	p.Do("pick 7 d on ledStatus", chromedp.Click(chromedp.CSS(ledSel+` .hist-range[data-range="7d"]`), chromedp.NodeVisible))
	p.WaitFor("ledStatus over 7 d drawn", fmt.Sprintf(`document.querySelector(%q).dataset.range === '7d' && %s`, ledSel, hdDrawnJS(ledSel, 500)), 15*time.Second)
	if segs := chrometest.Eval[int](p, fmt.Sprintf(`+document.querySelector(%q).dataset.segments || 0`, ledSel)); segs < 2*hdDays {
		t.Errorf("ledStatus over 7 d: %d timeline segments, want at least %d (on every evening)", segs, 2*hdDays)
	}
	onPixels := chrometest.Eval[int](p, fmt.Sprintf(`(() => {
		const c = document.querySelector(%q + ' canvas'), ctx = c.getContext('2d');
		const probe = document.createElement('canvas').getContext('2d');
		probe.fillStyle = getComputedStyle(c).getPropertyValue('--hist-on').trim();
		const want = probe.fillStyle, r = parseInt(want.slice(1, 3), 16), g = parseInt(want.slice(3, 5), 16), b = parseInt(want.slice(5, 7), 16);
		const d = ctx.getImageData(0, 0, c.width, c.height).data;
		let k = 0;
		for (let i = 0; i < d.length; i += 4) if (d[i] === r && d[i+1] === g && d[i+2] === b && d[i+3] === 255) k++;
		return k;
	})()`, ledSel))
	if onPixels < 100 {
		t.Errorf("ledStatus over 7 d: %d pixels in the 'on' colour, want the evenings drawn on", onPixels)
	}

	// Drag across the middle of the numeric chart: a zoomed, finer fetch.
	before := chrometest.Eval[int](p, `window.__hist.length`)
	r := p.Rect(countSel + " canvas")
	x, y, w, h := r.X, r.Y, r.W, r.H
	p.Mouse(chromedp.MousePressed, x+w*0.45, y+h*0.4, true)
	p.Mouse(chromedp.MouseMoved, x+w*0.5, y+h*0.4, true)
	p.Mouse(chromedp.MouseMoved, x+w*0.55, y+h*0.4, true)
	p.Mouse(chromedp.MouseReleased, x+w*0.55, y+h*0.4, true)
	p.WaitFor("count zoomed and drawn", fmt.Sprintf(`document.querySelector(%q).dataset.zoomed === 'true' && window.__hist.slice(%d).some(r => r.done && /label=count/.test(r.url) && /[?&]to=/.test(r.url)) && %s`, countSel, before, hdDrawnJS(countSel, 500)), 15*time.Second)

	// The availability timeline of the card.
	p.Do("open availability", chromedp.Click(chromedp.CSS(card+` .avail-btn`), chromedp.NodeVisible))
	p.WaitFor("availability drawn", hdDrawnJS(card+` .avail .hist`, 200), 15*time.Second)

	// Every history fetch: max_points ≤ 1000, answered with at most max_points points.
	p.WaitFor("every answer read", `window.__hist.length > 0 && window.__hist.every(r => r.done)`, 10*time.Second)
	var recs []struct {
		URL        string
		Status     int
		Points     int
		Intervals  int
		Resolution string
	}
	raw := chrometest.Eval[string](p, `JSON.stringify(window.__hist)`)
	if err := json.Unmarshal([]byte(raw), &recs); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		u, err := url.Parse(r.URL)
		if err != nil {
			t.Errorf("unparsable URL %q", r.URL)
			continue
		}
		q := u.Query()
		if r.Status != 200 {
			t.Errorf("%s: status %d", r.URL, r.Status)
		}
		if strings.HasSuffix(u.Path, "/availability") {
			seen["availability"] = true
			continue
		}
		mp, err := strconv.Atoi(q.Get("max_points"))
		if err != nil || mp < 1 || mp > 1000 {
			t.Errorf("%s: max_points %q, want 1 … 1000", r.URL, q.Get("max_points"))
			continue
		}
		if r.Points < 0 || r.Points > mp {
			t.Errorf("%s: %d points for max_points=%d", r.URL, r.Points, mp)
		}
		seen[q.Get("label")+" "+q.Get("from")] = true
		t.Logf("%s → %d points, resolution %s", strings.TrimPrefix(u.RequestURI(), "/api/devices/demo/"), r.Points, r.Resolution)
	}
	for _, want := range []string{"count -10m", "count -7d", "ledStatus -7d", "availability"} {
		if !seen[want] {
			t.Errorf("no %s fetch among %d history requests", want, len(recs))
		}
	}
	// The network saw no history request that the fetch log missed, none
	// without a max_points ≤ 1000.
	for _, raw := range p.Requests() {
		u, err := url.Parse(raw)
		if err != nil || !strings.HasSuffix(u.Path, "/history") {
			continue
		}
		if mp, err := strconv.Atoi(u.Query().Get("max_points")); err != nil || mp > 1000 {
			t.Errorf("history request without max_points ≤ 1000: %s", raw)
		}
		if u.Host != g.Addr {
			t.Errorf("request to another host: %s", raw)
		}
	}
	for _, pr := range p.Problems("exception", "console.error", "console.assert", "log") {
		t.Errorf("browser: %s", pr)
	}
	if dir := os.Getenv("ESP32GW_SCREENSHOT_DIR"); dir != "" {
		p.Screenshot(filepath.Join(dir, "history-dashboard.png"))
	}
}
