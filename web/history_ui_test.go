package web

// history.js in a real headless Chromium: the embedded static files plus a
// stub history API that makes up seven days of readings server-side (numeric
// buckets, on/off and text changes, availability), and a test page that mounts
// the charts. Checks: the charts draw, no console errors or exceptions, every
// fetch asks for at most 1000 points, the range picker and drag-to-zoom fetch
// what they should, the timelines have segments, the tooltip shows on hover
// and on tap, a touch drag zooms on a phone. Skipped without Chromium; failed
// when CI is set.
//
//	go test ./web -run HistoryUI -v
//	ESP32GW_SCREENSHOT_DIR=/tmp/shots go test ./web -run HistoryUI   # PNGs, light and dark, desktop and phone

import (
	"context"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/chrometest"
)

// huiStep is the stub's raw reading interval; it holds huiDays of them.
const (
	huiStep = 10 * time.Second
	huiDays = 7
)

// huiData is the stub's made-up history, all relative to end.
type huiData struct {
	start, end time.Time
	led, mode  []huiChange // oldest first
	avail      []huiInterval
}

type huiChange struct {
	ts    time.Time
	value any
}

type huiInterval struct {
	from, to time.Time // to zero: still so
	online   bool
	reason   string
}

func newHUIData(now time.Time) *huiData {
	d := &huiData{end: now.Truncate(huiStep)}
	d.start = d.end.Add(-huiDays * 24 * time.Hour)
	// led: on every evening 19:00–23:30 and for 20 minutes every 5 hours.
	on := false
	for t := d.start; !t.After(d.end); t = t.Add(5 * time.Minute) {
		h := t.Hour()*60 + t.Minute()
		want := (h >= 19*60 && h < 23*60+30) || (t.Unix()/60)%300 < 20
		if want != on || t.Equal(d.start) {
			v := "LED OFF"
			if want {
				v = "LED ON"
			}
			d.led = append(d.led, huiChange{t, v})
			on = want
		}
	}
	// mode: changes every 2 to 7 hours.
	modes := []string{"eco", "comfort", "away", "night"}
	for i, t := 0, d.start; !t.After(d.end); i++ {
		d.mode = append(d.mode, huiChange{t, modes[i%len(modes)]})
		t = t.Add(time.Duration(2+i*3%6) * time.Hour)
	}
	// availability: three outages, then online until now.
	iv := func(fromAgo, toAgo time.Duration, online bool, reason string) {
		x := huiInterval{from: d.end.Add(-fromAgo), online: online, reason: reason}
		if toAgo > 0 {
			x.to = d.end.Add(-toAgo)
		}
		d.avail = append(d.avail, x)
	}
	day := 24 * time.Hour
	iv(7*day, 5*day, true, "")
	iv(5*day, 5*day-3*time.Hour, false, "link closed: i/o timeout")
	iv(5*day-3*time.Hour, 30*time.Hour, true, "")
	iv(30*time.Hour, 29*time.Hour, false, "board rebooted (brownout)")
	iv(29*time.Hour, 3*time.Hour, true, "")
	iv(3*time.Hour, 2*time.Hour+40*time.Minute, false, "no frames for 30s")
	iv(2*time.Hour+40*time.Minute, 0, true, "")
	return d
}

// temp is a daily swing with a faster ripple and a little noise.
func huiTemp(t time.Time) float64 {
	day := float64(t.Unix()%86400) / 86400
	h := fnv.New32a()
	fmt.Fprint(h, t.Unix())
	noise := float64(h.Sum32()%1000)/1000 - 0.5
	v := 21 + 3*math.Sin(2*math.Pi*(day-0.3)) + 0.4*math.Sin(float64(t.Unix())/420) + 0.3*noise
	return math.Round(v*100) / 100
}

// huiWidths are the bucket widths the stub picks from, finest first.
var huiWidths = []string{"1m", "5m", "10m", "30m", "1h", "3h", "6h", "12h", "1d"}

func huiRFC(t time.Time) string { return gateway.FormatTime(t) }

// history answers …/history like the gateway (DESIGN.md, History).
func (d *huiData) history(w http.ResponseWriter, r *http.Request) {
	id, label := r.PathValue("id"), r.URL.Query().Get("label")
	if id != "demo" {
		writeError(w, http.StatusNotFound, "unknown device "+id)
		return
	}
	from, to, err := timeRange(r, d.end, time.Time{})
	if err == nil && from.IsZero() {
		err = fmt.Errorf("from: required here")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	maxPoints := 1000
	if v := r.URL.Query().Get("max_points"); v != "" {
		if maxPoints, err = strconv.Atoi(v); err != nil || maxPoints < 1 || maxPoints > 10000 {
			writeError(w, http.StatusBadRequest, "max_points: bad")
			return
		}
	}
	res, points := "raw", []any{}
	switch label {
	case "temp":
		first := from.Truncate(huiStep)
		if first.Before(from) {
			first = first.Add(huiStep)
		}
		if first.Before(d.start) {
			first = d.start
		}
		last := to
		if last.After(d.end) {
			last = d.end
		}
		n := 0
		if !last.Before(first) {
			n = int(last.Sub(first)/huiStep) + 1
		}
		if n <= maxPoints {
			for t := first; !t.After(last); t = t.Add(huiStep) {
				points = append(points, map[string]any{"ts": huiRFC(t), "value": huiTemp(t)})
			}
			break
		}
		res = huiWidths[len(huiWidths)-1]
		for _, wdt := range huiWidths {
			dur, _ := gateway.ParseDuration(wdt)
			if int(to.Sub(from)/dur)+1 <= maxPoints {
				res = wdt
				break
			}
		}
		width, _ := gateway.ParseDuration(res)
		type bucket struct {
			min, max, sum, last float64
			n                   int
		}
		var cur *bucket
		var curStart time.Time
		flush := func() {
			if cur != nil {
				points = append(points, map[string]any{"ts": huiRFC(curStart), "min": cur.min, "max": cur.max,
					"mean": math.Round(cur.sum/float64(cur.n)*1000) / 1000, "last": cur.last, "count": cur.n})
			}
		}
		for t := first; !t.After(last); t = t.Add(huiStep) {
			bs := t.Truncate(width)
			if cur == nil || !bs.Equal(curStart) {
				flush()
				cur, curStart = &bucket{min: math.Inf(1), max: math.Inf(-1)}, bs
			}
			v := huiTemp(t)
			cur.min, cur.max, cur.sum, cur.last = math.Min(cur.min, v), math.Max(cur.max, v), cur.sum+v, v
			cur.n++
		}
		flush()
	case "led", "mode":
		res = "changes"
		ch := d.led
		if label == "mode" {
			ch = d.mode
		}
		var sel []huiChange
		for i, c := range ch {
			inForce := c.ts.Before(from) && (i+1 == len(ch) || !ch[i+1].ts.Before(from))
			if inForce || (!c.ts.Before(from) && !c.ts.After(to)) {
				sel = append(sel, c)
			}
		}
		if len(sel) > maxPoints {
			sel = sel[len(sel)-maxPoints:]
		}
		for _, c := range sel {
			points = append(points, map[string]any{"ts": huiRFC(c.ts), "value": c.value})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": id, "label": label, "from": huiRFC(from), "to": huiRFC(to),
		"resolution": res, "points": points})
}

func (d *huiData) availability(w http.ResponseWriter, r *http.Request) {
	if id := r.PathValue("id"); id != "demo" {
		writeError(w, http.StatusNotFound, "unknown device "+id)
		return
	}
	from, to, err := timeRange(r, d.end, d.end.Add(-24*time.Hour))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	out := []map[string]any{}
	for _, iv := range d.avail {
		if iv.from.After(to) || (!iv.to.IsZero() && iv.to.Before(from)) {
			continue
		}
		m := map[string]any{"from": huiRFC(iv.from), "to": nil, "online": iv.online}
		if !iv.to.IsZero() {
			m["to"] = huiRFC(iv.to)
		}
		if iv.reason != "" {
			m["reason"] = iv.reason
		}
		out = append(out, m)
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": "demo", "intervals": out})
}

// huiPage mounts the charts the way a dashboard card would; window.charts
// holds the controllers, window.live feeds the live chart.
const huiPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>history.js test</title>
<link rel="stylesheet" href="/assets/style.css">
<link rel="stylesheet" href="/assets/history.css">
</head><body>
<main><section class="devices">
<article class="card" data-device="demo">
  <div class="card-head"><div class="title"><h2>Demo board</h2><span class="badge on">online</span></div></div>
  <div id="avail"></div>
  <ul class="labels">
    <li class="label kind-num"><div class="lhead"><span class="lname">temp</span><span class="lvalue">21.4</span></div><div id="temp"></div></li>
    <li class="label kind-bool" data-state="on"><div class="lhead"><span class="lname">led</span><span class="lvalue">LED ON</span></div><div id="led"></div></li>
    <li class="label kind-text"><div class="lhead"><span class="lname">mode</span><span class="lvalue">comfort</span></div><div id="mode"></div></li>
  </ul>
</article>
<article class="card" data-device="live">
  <div class="card-head"><div class="title"><h2>Live and edge cases</h2></div></div>
  <ul class="labels">
    <li class="label kind-num"><div class="lhead"><span class="lname">temp (live)</span></div><div id="live"></div></li>
    <li class="label kind-num"><div class="lhead"><span class="lname">empty</span></div><div id="empty"></div></li>
    <li class="label kind-num"><div class="lhead"><span class="lname">unknown device</span></div><div id="nope"></div></li>
  </ul>
</article>
</section></main>
<script type="module">
import { mountLabelHistory, mountAvailability, fetchJSON as defaultFetch } from '/assets/history.js';
window.fetches = [];
const fetchJSON = async (url, opts = {}) => {
  window.fetches.push(url);
  const r = await fetch(url, { credentials: 'same-origin', signal: opts.signal });
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error(r.status + ' ' + ((body && body.error) || r.statusText));
  return body;
};
const $ = (id) => document.getElementById(id);
window.charts = {
  avail: mountAvailability($('avail'), { device: 'demo', fetchJSON }),
  temp: mountLabelHistory($('temp'), { device: 'demo', label: 'temp', kind: 'number', range: '24h', fetchJSON }),
  led: mountLabelHistory($('led'), { device: 'demo', label: 'led', kind: 'onoff', range: '24h', fetchJSON }),
  mode: mountLabelHistory($('mode'), { device: 'demo', label: 'mode', kind: 'text', range: '7d', fetchJSON }),
  live: mountLabelHistory($('live'), { device: 'demo', label: 'temp', kind: 'num', fetchJSON }),
  empty: mountLabelHistory($('empty'), { device: 'demo', label: 'empty', kind: 'number', range: '1h', fetchJSON }),
  nope: mountLabelHistory($('nope'), { device: 'nope', label: 'temp', kind: 'number', range: '1h', fetchJSON: defaultFetch }),
};
let v = __V0__;
window.live = (n) => { for (let i = 0; i < n; i++) { v += (Math.random() - 0.5) * 0.3; window.charts.live.addLive(Date.now() - (n - i) * 50, Math.round(v * 100) / 100); } };
window.live(20);
setInterval(() => window.live(1), 300);
window.ready = true;
</script>
</body></html>
`

// huiDrawnJS is true when the chart in #id has drawn (state ready) and its
// canvas has at least n non-transparent pixels.
func huiDrawnJS(id string, n int) string {
	return fmt.Sprintf(`(() => {
		const root = document.querySelector('#%s .hist');
		if (!root || root.dataset.state !== 'ready' || root.dataset.loading) return false;
		const c = root.querySelector('canvas');
		if (!c.width || !c.height) return false;
		const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		let k = 0;
		for (let i = 3; i < d.length; i += 4) if (d[i] > 0) k++;
		return k >= %d;
	})()`, id, n)
}

func TestHistoryUI(t *testing.T) {
	if testing.Short() {
		t.Skip("drives Chromium")
	}
	start := time.Now()

	data := newHUIData(time.Now())
	var mu sync.Mutex
	var apiCalls []string
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /assets/", http.FileServerFS(static))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, strings.Replace(huiPage, "__V0__", strconv.FormatFloat(huiTemp(data.end), 'f', 2, 64), 1))
	})
	record := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			apiCalls = append(apiCalls, r.URL.RequestURI())
			mu.Unlock()
			h(w, r)
		}
	}
	mux.HandleFunc("GET /api/devices/{id}/history", record(data.history))
	mux.HandleFunc("GET /api/devices/{id}/availability", record(data.availability))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	calls := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), apiCalls...) }
	// waitCall waits for an API call after the first skip ones that match.
	waitCall := func(what string, skip int, match func(q url.Values, path string) bool) url.Values {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			for _, c := range calls()[skip:] {
				u, _ := url.Parse(c)
				if match(u.Query(), u.Path) {
					return u.Query()
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no such request within 5s; requests: %q", what, calls()[skip:])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	p := chrometest.Start(t, 1280, 900).NewTab(t)
	p.Describe = huiDescribe
	p.SetViewport(1280, 900, "light", chromedp.EmulateScale(1))
	p.Do("open the test page", chromedp.Navigate(srv.URL+"/"))

	// 1. Everything draws.
	huiWait(p, "page ready", `window.ready === true`)
	for _, id := range []string{"temp", "led", "mode", "avail", "live"} {
		huiWait(p, id+" drawn", huiDrawnJS(id, 500))
	}
	huiWait(p, "empty chart says so", `document.querySelector('#empty .hist').dataset.state === 'empty' &&
		/no data/i.test(document.querySelector('#empty .hist-msg').textContent)`)
	huiWait(p, "error chart says so", `document.querySelector('#nope .hist').dataset.state === 'error' &&
		/404 unknown device nope/.test(document.querySelector('#nope .hist-msg').textContent)`)
	if got := chrometest.Eval[string](p, `document.querySelector('#temp .hist').dataset.resolution`); got != "5m" && got != "10m" {
		t.Errorf("24 h of temp at ~1200 px: resolution %q, want buckets of 5m or 10m", got)
	}
	q := waitCall("temp 24h", 0, func(q url.Values, path string) bool { return q.Get("label") == "temp" && q.Get("from") == "-24h" })
	if mp, _ := strconv.Atoi(q.Get("max_points")); mp < 200 {
		t.Errorf("temp 24h: max_points=%d; want about the chart's width", mp)
	}
	waitCall("live seed", 0, func(q url.Values, path string) bool { return q.Get("label") == "temp" && q.Get("from") == "-10m" })
	waitCall("availability 24h", 0, func(q url.Values, path string) bool {
		return strings.HasSuffix(path, "/demo/availability") && q.Get("from") == "-24h"
	})
	if n := chrometest.Eval[int](p, `+document.querySelector('#led .hist').dataset.segments`); n < 3 {
		t.Errorf("led timeline: %d segments drawn, want several", n)
	}
	if n := chrometest.Eval[int](p, `+document.querySelector('#mode .hist').dataset.segments`); n < 10 {
		t.Errorf("mode timeline over 7 d: %d segments drawn, want many", n)
	}
	if n := chrometest.Eval[int](p, `+document.querySelector('#avail .hist').dataset.segments`); n < 3 {
		t.Errorf("availability over 24 h: %d segments, want online/offline/online", n)
	}
	// The led timeline really has "on" pixels (the --hist-on colour).
	if !chrometest.Eval[bool](p, `(() => {
		const c = document.querySelector('#led canvas'), ctx = c.getContext('2d');
		ctx.fillStyle = getComputedStyle(c).getPropertyValue('--hist-on').trim();
		const want = ctx.fillStyle, r = parseInt(want.slice(1, 3), 16), g = parseInt(want.slice(3, 5), 16), b = parseInt(want.slice(5, 7), 16);
		const d = ctx.getImageData(0, 0, c.width, c.height).data;
		let k = 0;
		for (let i = 0; i < d.length; i += 4) if (d[i] === r && d[i+1] === g && d[i+2] === b && d[i+3] === 255) k++;
		return k > 200;
	})()`) {
		t.Error("led timeline: no segment in the on colour")
	}
	huiShot(p, "history-light.png")

	// 2. The range picker: 7 d fetches from=-7d.
	n := len(calls())
	p.Click(`#temp .hist-range[data-range="7d"]`)
	q = waitCall("temp 7d", n, func(q url.Values, path string) bool { return q.Get("label") == "temp" && q.Get("from") == "-7d" })
	if q.Get("to") != "" {
		t.Errorf("temp 7d: to=%q, want none", q.Get("to"))
	}
	huiWait(p, "temp 7d drawn", `document.querySelector('#temp .hist').dataset.range === '7d' && document.querySelector('#temp .hist').dataset.resolution === '30m'`)
	huiWait(p, "temp 7d pixels", huiDrawnJS("temp", 500))

	// 3. The tooltip on hover: the mean, min, max and the time.
	r := p.Rect("#temp canvas")
	p.Mouse(chromedp.MouseMoved, r.X+r.W*0.6, r.Y+r.H*0.4, false)
	huiWait(p, "tooltip on hover", `(t => !!t && !t.hidden && /mean/.test(t.textContent) && /min .* max/.test(t.textContent) && /\d\d:\d\d/.test(t.textContent))(document.querySelector('.hist-tip:not([hidden])'))`)
	huiShot(p, "history-light-hover.png")
	p.Mouse(chromedp.MouseMoved, 2, 2, false)
	huiWait(p, "tooltip gone after leaving", `![...document.querySelectorAll('.hist-tip')].some(t => !t.hidden)`)

	// 4. Drag to zoom: a narrower range, fetched with from/to in unix ms, at a finer resolution.
	n = len(calls())
	x0, x1, y := r.X+r.W*0.55, r.X+r.W*0.75, r.Y+r.H*0.5
	p.Mouse(chromedp.MouseMoved, x0, y, false)
	p.Mouse(chromedp.MousePressed, x0, y, true)
	for k := 1; k <= 6; k++ {
		p.Mouse(chromedp.MouseMoved, x0+(x1-x0)*float64(k)/6, y, true)
	}
	p.Mouse(chromedp.MouseReleased, x1, y, true)
	q = waitCall("temp zoom", n, func(q url.Values, path string) bool { return q.Get("label") == "temp" && q.Get("to") != "" })
	zf, err1 := strconv.ParseInt(q.Get("from"), 10, 64)
	zt, err2 := strconv.ParseInt(q.Get("to"), 10, 64)
	if err1 != nil || err2 != nil || zt <= zf {
		t.Fatalf("zoom fetch: from=%q to=%q, want unix ms with from < to", q.Get("from"), q.Get("to"))
	}
	span := time.Duration(zt-zf) * time.Millisecond
	if span > 2*24*time.Hour || span < 12*time.Hour {
		t.Errorf("zoom across a fifth of a 7 d chart fetched %v, want about 1.4 d", span)
	}
	huiWait(p, "zoomed chart drawn", `(h => h.dataset.zoomed === 'true' && h.dataset.state === 'ready' && ['5m', '10m'].includes(h.dataset.resolution))(document.querySelector('#temp .hist'))`)
	huiWait(p, "reset button shown", `!document.querySelector('#temp .hist-reset').hidden`)
	huiWait(p, "zoomed pixels", huiDrawnJS("temp", 500))
	huiShot(p, "history-light-zoomed.png")
	// Double-click goes back to the whole range.
	n = len(calls())
	p.Do("double-click", chromedp.MouseClickXY(r.X+r.W*0.3, y, chromedp.ClickCount(2)))
	waitCall("temp back to 7d", n, func(q url.Values, path string) bool { return q.Get("label") == "temp" && q.Get("from") == "-7d" })
	huiWait(p, "zoom reset", `(h => !h.dataset.zoomed && h.dataset.resolution === '30m' && document.querySelector('#temp .hist-reset').hidden)(document.querySelector('#temp .hist'))`)

	// 5. The led timeline's tooltip: the state and its times.
	r = p.Rect("#led canvas")
	p.Mouse(chromedp.MouseMoved, r.X+r.W*0.5, r.Y+r.H*0.3, false)
	huiWait(p, "led tooltip", `(t => !!t && /LED (ON|OFF)/.test(t.textContent) && /\d\d:\d\d/.test(t.textContent))(document.querySelector('.hist-tip:not([hidden])'))`)
	huiShot(p, "history-light-tooltip.png")
	p.Mouse(chromedp.MouseMoved, 2, 2, false)

	// 6. Dark theme: the charts repaint in the dark colours.
	p.SetViewport(1280, 900, "dark", chromedp.EmulateScale(1))
	huiWait(p, "dark background", `getComputedStyle(document.body).backgroundColor === 'rgb(15, 17, 21)'`)
	huiWait(p, "led repainted in dark", `(() => {
		const c = document.querySelector('#led canvas'), ctx = c.getContext('2d');
		const d = ctx.getImageData(0, 0, c.width, c.height).data;
		for (let i = 0; i < d.length; i += 4) if (d[i] === 0x4a && d[i+1] === 0xde && d[i+2] === 0x80) return true; // --ok dark
		return false;
	})()`)
	huiShot(p, "history-dark.png")

	// 7. Live (in the dark theme): addLive points are drawn and the chart keeps its range.
	before := chrometest.Eval[int](p, `+document.querySelector('#live .hist').dataset.points`)
	p.Do("add live points", chromedp.Evaluate[chromedp.Void](`window.live(30)`))
	huiWait(p, "live points drawn", fmt.Sprintf(`+document.querySelector('#live .hist').dataset.points > %d`, before))
	if got := chrometest.Eval[string](p, `document.querySelector('#live .hist').dataset.range`); got != "live" {
		t.Errorf("live chart range %q", got)
	}
	// A status frame from /ws ends the open interval of the availability timeline.
	segs := chrometest.Eval[int](p, `+document.querySelector('#avail .hist').dataset.segments`)
	p.Do("add a status", chromedp.Evaluate[chromedp.Void](`window.charts.avail.addStatus(Date.now() - 60000, false, 'link closed: test')`))
	huiWait(p, "offline segment drawn", fmt.Sprintf(`+document.querySelector('#avail .hist').dataset.segments === %d`, segs+1))

	// 8. A phone: touch; a tap shows the tooltip, a horizontal touch drag zooms.
	p.SetViewport(390, 844, "light", chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch)
	p.Do("reload as phone", chromedp.Navigate(srv.URL+"/"))
	huiWait(p, "phone ready", `window.ready === true`)
	for _, id := range []string{"temp", "led"} {
		huiWait(p, id+" drawn on phone", huiDrawnJS(id, 500))
	}
	if w := chrometest.Eval[int](p, `document.querySelector('#temp canvas').width`); w < 500 {
		t.Errorf("phone at devicePixelRatio 2: canvas is %d device px wide, want twice its CSS width", w)
	}
	r = p.Rect("#led canvas")
	p.Do("tap the led timeline", chromedp.TapXY(r.X+r.W*0.7, r.Y+r.H*0.3))
	huiWait(p, "tooltip on tap", `(t => !!t && /LED (ON|OFF)/.test(t.textContent))(document.querySelector('.hist-tip:not([hidden])'))`)
	huiShot(p, "history-phone.png")
	r = p.Rect("#temp canvas")
	n = len(calls())
	huiTouchDrag(p, r.X+r.W*0.4, r.X+r.W*0.8, r.Y+r.H*0.5)
	q = waitCall("touch zoom", n, func(q url.Values, path string) bool { return q.Get("label") == "temp" && q.Get("to") != "" })
	if zf, _ := strconv.ParseInt(q.Get("from"), 10, 64); time.Since(time.UnixMilli(zf)) > 24*time.Hour {
		t.Errorf("touch zoom on a 24 h chart fetched from %v", time.UnixMilli(zf))
	}

	// Every fetch asked for at most 1000 points; none failed but the 404 on purpose.
	for _, c := range calls() {
		u, _ := url.Parse(c)
		if !strings.HasSuffix(u.Path, "/history") {
			continue
		}
		mp, err := strconv.Atoi(u.Query().Get("max_points"))
		if err != nil || mp < 1 || mp > 1000 {
			t.Errorf("history fetch %s: max_points must be 1…1000", c)
		}
	}
	if len(calls()) > 40 {
		t.Errorf("%d API calls; want only what the steps need: %q", len(calls()), calls())
	}
	for _, e := range p.Problems("exception", "console.error", "console.warning", "console.assert") {
		t.Errorf("browser: %s", e)
	}
	t.Logf("%d API calls, %v", len(calls()), time.Since(start).Round(time.Millisecond))
}

// ---------------------------------------------------------------- browser helpers

// huiDescribe describes the charts for a failure message.
const huiDescribe = `JSON.stringify([...document.querySelectorAll('.hist')].map(h => ({...h.dataset, msg: h.querySelector('.hist-msg').textContent})))`

// huiWait polls a JavaScript expression until it is true (5 s at most).
func huiWait(p *chrometest.Tab, what, expr string) {
	p.T().Helper()
	p.WaitFor(what, expr, 5*time.Second)
}

// huiTouchDrag drags one finger horizontally from x0 to x1 at y.
func huiTouchDrag(p *chrometest.Tab, x0, x1, y float64) {
	p.T().Helper()
	touch := func(typ input.DispatchTouchEventType, x float64) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			pts := []*input.TouchPoint{{X: x, Y: y}}
			if typ == input.DispatchTouchEventTypeTouchEnd {
				pts = []*input.TouchPoint{}
			}
			_, err := cdp.Call(ctx, t, input.DispatchTouchEvent, input.DispatchTouchEventParams{Type: typ, TouchPoints: pts})
			return err
		})
	}
	steps := []chromedp.Action[chromedp.Void]{touch(input.DispatchTouchEventTypeTouchStart, x0)}
	for k := 1; k <= 8; k++ {
		steps = append(steps, touch(input.DispatchTouchEventTypeTouchMove, x0+(x1-x0)*float64(k)/8))
	}
	steps = append(steps, touch(input.DispatchTouchEventTypeTouchEnd, x1))
	p.Do("touch drag", steps...)
}

// huiShot saves a PNG of the viewport into $ESP32GW_SCREENSHOT_DIR when that is set.
func huiShot(p *chrometest.Tab, name string) {
	p.T().Helper()
	if dir := os.Getenv("ESP32GW_SCREENSHOT_DIR"); dir != "" {
		p.Screenshot(filepath.Join(dir, name))
	}
}
