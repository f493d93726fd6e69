package contracttest

// The dashboard in a real headless Chromium against the real binary with
// simulated boards: login, live values, commands between two pages, the
// serial console, reconnect and resume, phone layout, no outside requests,
// screenshots. Skipped without Chromium; failed when CI is set.
//
//	go test ./internal/contracttest -run Dashboard -v
//	ESP32GW_SCREENSHOTS=docs go test ./internal/contracttest -run TestDashboardLive   # refresh docs/*.png

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/esp32gw/esp32gw/internal/chrometest"
	"github.com/esp32gw/esp32gw/internal/mosquittotest"
	"github.com/esp32gw/esp32gw/internal/testgw"
)

// dashDevices are the default config's boards plus lamp, whose extra command
// "blink" the tutorial board does not know: it acks the command and prints a
// console line.
const dashDevices = `
  - id: demo
    name: "Demo board"
    transport: sim
    sim: {board: tutorial, interval: 1s}
    commands: [toggle]
    command_format: text
  - id: climate
    name: "Climate sensor"
    transport: sim
    sim: {board: climate, interval: 500ms}
  - id: relays
    name: "Relay board"
    transport: sim
    sim: {board: relay, interval: 1s}
    commands: ["on", "off", toggle]
    command_format: json
  - id: lamp
    name: "Desk lamp"
    transport: sim
    sim: {board: tutorial, interval: 1s}
    commands: [toggle, blink]
  - id: kitchen
    name: "Kitchen (unplugged)"
    transport: ws-dial
    url: "ws://127.0.0.1:9/ws"
    commands: [toggle]
`

var dashIDs = []string{"demo", "climate", "relays", "lamp", "kitchen"}

// chartsDrawnJS is true once there are number charts and every one on
// screen has been drawn at its current size (a canvas' pixel width is only
// set when it is drawn) with data (its description names the minimum).
const chartsDrawnJS = `(() => {
	const cs = [...document.querySelectorAll('.hist-number .hist-plot canvas')];
	return cs.length > 0 && cs.every(c => {
		const r = c.getBoundingClientRect();
		return r.bottom < 0 || r.top > innerHeight || (c.width === Math.round(r.width * devicePixelRatio) && c.getAttribute('aria-label').includes(', min '));
	});
})()`

// startDashboard starts a browser and a gateway with dashDevices behind a
// login token, and logs a tab named name in (see dashLogin).
func startDashboard(t *testing.T, name, shots string) (*chrometest.Browser, *testgw.Gateway, *chrometest.Tab) {
	t.Helper()
	b := chrometest.Start(t, 1280, 860)
	g := testgw.Start(t, dashConfig("token", dashDevices))
	if g.Token == "" {
		t.Fatalf("the gateway logged no login token:\n%s", g.Logs())
	}
	p := newPage(t, b, name)
	dashLogin(p, g, shots)
	return b, g, p
}

// dashLogin opens the dashboard, is shown the login form, tries a wrong token,
// then logs in with the right one and waits for every card.
func dashLogin(p *chrometest.Tab, g *testgw.Gateway, shots string) {
	p.T().Helper()
	p.Navigate(g.URL + "/")
	p.WaitFor("login form shown without a cookie", `!document.getElementById('login').hidden && document.querySelectorAll('[data-device]').length === 0`, 10*time.Second)
	p.Do("enter a wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token"), chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)))
	p.WaitFor("wrong token refused", `!document.getElementById('login-error').hidden && location.search === ''`, 10*time.Second)
	if shots != "" {
		screenshot(p, shots, "dashboard-login.png")
	}
	p.Do("enter the token", chromedp.SendKeys(chromedp.CSS("#token"), g.Token), chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)))
	p.WaitFor("logged in, token gone from the address bar",
		fmt.Sprintf(`location.href === %s && document.getElementById('login').hidden`, chrometest.Quote(g.URL+"/")), 10*time.Second)
	waitCards(p, dashIDs...)
}

func waitCards(p *chrometest.Tab, ids ...string) {
	p.T().Helper()
	conds := []string{`window.esp32gw?.state.conn === 'connected'`}
	for _, id := range ids {
		conds = append(conds, fmt.Sprintf(`!!document.querySelector(%s)`, chrometest.Quote(cardSel(id))))
	}
	p.WaitFor("every device card shown", strings.Join(conds, " && "), 10*time.Second)
}

// waitChange waits until the JavaScript expression's value differs from its
// current one, and returns both.
func waitChange(p *chrometest.Tab, what, expr string, timeout time.Duration) (before, after string) {
	p.T().Helper()
	before = chrometest.Eval[string](p, expr)
	p.WaitFor(what, fmt.Sprintf(`(%s) !== %s`, expr, chrometest.Quote(before)), timeout)
	return before, chrometest.Eval[string](p, expr)
}

func TestDashboardLive(t *testing.T) {
	dir := t.TempDir()
	_, g, p := startDashboard(t, "page", dir)

	// Every card: name, id, transport, online, last seen.
	for _, d := range []struct{ id, name string }{{"demo", "Demo board"}, {"climate", "Climate sensor"}, {"relays", "Relay board"}, {"lamp", "Desk lamp"}} {
		text := chrometest.Eval[string](p, fmt.Sprintf(`document.querySelector(%s).innerText`, chrometest.Quote(cardSel(d.id))))
		for _, want := range []string{d.name, d.id, "sim", "online", "last seen", "reconnects"} {
			if !strings.Contains(text, want) {
				t.Errorf("card %s does not show %q:\n%s", d.id, want, text)
			}
		}
	}

	// Screen readers: every control has a name, every chart a description.
	if unnamed := chrometest.Eval[[]string](p, `[...document.querySelectorAll('button, [role=switch], input, summary')]
		.filter(e => !(e.getAttribute('aria-label') || e.labels?.length || e.textContent.trim())).map(e => e.outerHTML.slice(0, 80))`); len(unnamed) > 0 {
		t.Errorf("controls without an accessible name: %v", unnamed)
	}
	if n := chrometest.Eval[int](p, `[...document.querySelectorAll('canvas')].filter(c => !c.getAttribute('aria-label')).length`); n > 0 {
		t.Errorf("%d charts without aria-label", n)
	}

	// A board that never came up: offline, its command button disabled.
	kitchen := chrometest.Eval[string](p, fmt.Sprintf(`document.querySelector(%s).innerText`, chrometest.Quote(cardSel("kitchen"))))
	if !strings.Contains(kitchen, "offline") || !strings.Contains(kitchen, "ws-dial") {
		t.Errorf("the unreachable board is not shown offline:\n%s", kitchen)
	}
	if !chrometest.Eval[bool](p, fmt.Sprintf(`document.querySelector(%s)?.disabled === true`, chrometest.Quote(cardSel("kitchen")+` button[data-command="toggle"]`))) {
		t.Error("the offline board's toggle button is not disabled")
	}

	// Live values without a reload: the counter moves; the page is the same document.
	chrometest.Eval[bool](p, `(window.__sameDocument = true)`)
	before, after := waitChange(p, "demo count changes", valueJS("demo", "count"), 5*time.Second)
	t.Logf("demo count %s → %s", before, after)
	if chrometest.Eval[string](p, stateJS("demo", "ledStatus")) != "off" || chrometest.Eval[string](p, valueJS("demo", "ledStatus")) != "LED OFF" {
		t.Errorf("demo ledStatus is not shown as the state off: %q", chrometest.Eval[string](p, valueJS("demo", "ledStatus")))
	}
	p.WaitFor("temperature chart drawn", fmt.Sprintf(`(document.querySelector(%s)?.getAttribute('aria-label') ?? '').includes(', min ')`, chrometest.Quote(rowSel("climate", "temperature")+" canvas")), 5*time.Second)
	if !chrometest.Eval[bool](p, `window.__sameDocument === true`) {
		t.Error("the page reloaded")
	}

	// A button command and the serial console: the tutorial board acks
	// "blink" and prints that it does not know it.
	p.Click(cardSel("lamp") + " summary")
	p.Click(cardSel("lamp") + ` button[data-command="blink"]`)
	p.WaitFor("blink acked", fmt.Sprintf(`document.querySelector(%s)?.textContent === 'done'`, chrometest.Quote(cardSel("lamp")+" .commands .cmdstatus")), 5*time.Second)
	p.WaitFor("console shows the board's line", fmt.Sprintf(`document.querySelector(%s).textContent.includes('unknown command')`, chrometest.Quote(cardSel("lamp")+" .log")), 5*time.Second)

	// Charts survive a reload: they are seeded from the history endpoint.
	p.WaitFor("count history builds up", `window.esp32gw.points('demo', 'count') >= 6`, 10*time.Second)
	p.Do("reload", chromedp.Reload())
	waitCards(p, dashIDs...)
	p.WaitFor("count chart seeded from history", `window.esp32gw.points('demo', 'count') >= 5`, 2*time.Second)

	// Screenshots: desktop light and dark, phone; relay1 on so both states show.
	p.Click(rowSel("relays", "relay1") + " button[role=switch]")
	p.WaitFor("relay1 on", stateJS("relays", "relay1")+` === 'on'`, 2*time.Second)
	if os.Getenv("ESP32GW_SCREENSHOTS") != "" {
		// For the README: charts with some history.
		p.WaitFor("20 s of history", `window.esp32gw.points('demo', 'count') >= 20`, 30*time.Second)
	}
	p.WaitFor("console closed after reload", `!document.querySelector('details[open]')`, time.Second)
	p.SetViewport(1280, 860, "light")
	p.WaitFor("charts drawn", chartsDrawnJS, 5*time.Second)
	screenshot(p, dir, "dashboard-desktop.png")
	p.SetViewport(1280, 860, "dark")
	p.WaitFor("dark theme", `matchMedia('(prefers-color-scheme: dark)').matches`, 5*time.Second)
	p.WaitFor("charts drawn", chartsDrawnJS, 5*time.Second)
	screenshot(p, dir, "dashboard-dark.png")
	p.SetViewport(390, 844, "light")
	p.WaitFor("phone layout: no horizontal scroll", `document.scrollingElement.scrollWidth <= innerWidth && innerWidth === 390`, 5*time.Second)
	p.WaitFor("charts drawn", chartsDrawnJS, 5*time.Second)
	screenshot(p, dir, "dashboard-phone.png")

	checkClean(t, p, g.Addr)
}

func TestDashboardToggleAcrossPages(t *testing.T) {
	b, g, a := startDashboard(t, "page A", "")
	pb := newPage(t, b, "page B")
	pb.Navigate(g.URL + "/") // the login cookie is shared by the browser profile
	waitCards(pb, dashIDs...)

	flip := func(device, label string, keyboard bool) {
		t.Helper()
		sel := chrometest.Quote(rowSel(device, label) + ` button[role=switch]`)
		a.WaitFor(device+"/"+label+" switch enabled", fmt.Sprintf(`document.querySelector(%s)?.disabled === false`, sel), 5*time.Second)
		before := chrometest.Eval[string](pb, stateJS(device, label))
		if before != "on" && before != "off" {
			t.Fatalf("page B shows no on/off state for %s/%s: %q", device, label, before)
		}
		if keyboard {
			a.Do("press Enter on the switch", chromedp.Focus(chromedp.CSS(rowSel(device, label)+` button[role=switch]`)), chromedp.KeyEvent("\r"))
		} else {
			a.Click(rowSel(device, label) + ` button[role=switch]`)
		}
		took := pb.WaitFor("page B shows the new state of "+device+"/"+label,
			fmt.Sprintf(`%s !== %s && %s !== ''`, stateJS(device, label), chrometest.Quote(before), stateJS(device, label)), 2*time.Second)
		t.Logf("%s/%s: %s → %s on page B %v after the click on page A", device, label, before, chrometest.Eval[string](pb, stateJS(device, label)), took.Round(time.Millisecond))
		a.WaitFor("page A shows done", fmt.Sprintf(`['done', ''].includes(document.querySelector(%s)?.textContent) && %s === %s`,
			chrometest.Quote(rowSel(device, label)+" .cmdstatus"), stateJS(device, label), chrometest.Quote(chrometest.Eval[string](pb, stateJS(device, label)))), 3*time.Second)
	}
	flip("demo", "ledStatus", false)
	relay1 := chrometest.Eval[string](pb, stateJS("relays", "relay1"))
	flip("relays", "relay2", false)
	flip("demo", "ledStatus", true) // keyboard only
	if got := chrometest.Eval[string](pb, stateJS("relays", "relay1")); got != relay1 {
		t.Errorf("switching relay2 changed relay1: %s → %s", relay1, got)
	}
	checkClean(t, a, g.Addr)
	checkClean(t, pb, g.Addr)
}

func TestDashboardReconnect(t *testing.T) {
	_, g, p := startDashboard(t, "page", "")
	chrometest.Eval[bool](p, `(window.__sameDocument = true)`)
	waitChange(p, "demo count changes", valueJS("demo", "count"), 5*time.Second)

	// A network blip while the gateway keeps running: the page resumes with
	// ?since= and gets every reading it missed, without a new snapshot.
	snapshots := chrometest.Eval[int](p, `window.esp32gw.state.snapshots`)
	seq := chrometest.Eval[int](p, `window.esp32gw.state.lastSeq`)
	chrometest.Eval[bool](p, `(window.esp32gw.drop(), true)`)
	p.WaitFor("resumed and live", fmt.Sprintf(`window.esp32gw.state.conn === 'connected' && window.esp32gw.state.lastSeq > %d + 2`, seq), 10*time.Second)
	st := chrometest.Eval[map[string]any](p, `window.esp32gw.state`)
	if st["gaps"].(float64) != 0 {
		t.Errorf("readings were lost across the resume: %v", st)
	}
	if int(st["snapshots"].(float64)) != snapshots {
		t.Errorf("the gateway sent a new snapshot instead of replaying: %v", st)
	}
	resumed := false
	for _, u := range p.Requests() {
		if strings.Contains(u, "/ws?since=") {
			resumed = true
		}
	}
	if !resumed {
		t.Errorf("no WebSocket was opened with ?since=: %v", p.Requests())
	}

	// The gateway dies: the banner says so, and the page comes back by itself.
	g.Kill()
	p.WaitFor("banner shows reconnecting", bannerJS+`.includes('reconnecting')`, 5*time.Second)
	p.WaitFor("cards marked stale", `document.getElementById('devices').classList.contains('stale')`, time.Second)
	p.WaitFor("countdown shown", bannerJS+`.includes('reconnecting in')`, 5*time.Second)
	screenshot(p, t.TempDir(), "dashboard-reconnecting.png")
	g.Restart()
	took := p.WaitFor("connected again", `window.esp32gw.state.conn === 'connected' && `+bannerJS+`.includes('connected')`, 15*time.Second)
	t.Logf("reconnected %v after the restart", took.Round(time.Millisecond))
	waitChange(p, "demo count live again", valueJS("demo", "count"), 5*time.Second)
	if !chrometest.Eval[bool](p, `window.__sameDocument === true`) {
		t.Error("the page reloaded")
	}
	checkClean(t, p, g.Addr)
}

// TestDashboardManyDevices runs 50 boards that send 10 readings a second each
// (auth: none) and checks the page keeps up, stays responsive, and still fits
// a phone.
func TestDashboardManyDevices(t *testing.T) {
	b := chrometest.Start(t, 1280, 860)
	var devs strings.Builder
	ids := []string{}
	for i := range 50 {
		id := fmt.Sprintf("board%02d", i)
		kind := []string{"climate", "tutorial"}[i%2]
		name := fmt.Sprintf("Board %d", i)
		if i == 7 {
			name = "A board with a rather long name that must wrap on a narrow phone screen_without_spaces_anywhere"
		}
		fmt.Fprintf(&devs, "  - id: %s\n    name: %q\n    transport: sim\n    sim: {board: %s, interval: 100ms}\n    commands: [toggle]\n", id, name, kind)
		ids = append(ids, id)
	}
	g := testgw.Start(t, dashConfig("none", devs.String()))
	p := newPage(t, b, "page")
	p.Navigate(g.URL + "/")
	waitCards(p, ids...)
	if !chrometest.Eval[bool](p, `document.getElementById('login').hidden && document.getElementById('logout').hidden`) {
		t.Error("auth: none shows a login form or a logout button")
	}

	// Measure frames and event handling for 3 s.
	chrometest.Eval[bool](p, `(() => {
		window.esp32gw.perf.reset();
		const m = window.__m = {gaps: [], start: performance.now(), events: window.esp32gw.state.events};
		let last = performance.now();
		const tick = (t) => { m.gaps.push(t - last); last = t; if (t - m.start < 3000) requestAnimationFrame(tick); else m.done = true; };
		requestAnimationFrame(tick);
		return true;
	})()`)
	p.WaitFor("3 s measured", `window.__m.done === true`, 10*time.Second)
	m := chrometest.Eval[map[string]float64](p, `(() => {
		const m = window.__m, g = [...m.gaps].sort((a, b) => a - b);
		return {frames: g.length, p50: g[Math.floor(g.length / 2)], p95: g[Math.floor(g.length * 0.95)], max: g[g.length - 1],
			events: window.esp32gw.state.events - m.events, flushes: window.esp32gw.perf.flushes,
			flushAvg: window.esp32gw.perf.total / window.esp32gw.perf.flushes, flushMax: window.esp32gw.perf.max};
	})()`)
	t.Logf("50 boards: %.0f events in 3 s, %.0f frames, frame gap p50 %.1f ms, p95 %.1f ms, max %.1f ms; %.0f DOM updates, avg %.2f ms, max %.1f ms",
		m["events"], m["frames"], m["p50"], m["p95"], m["max"], m["flushes"], m["flushAvg"], m["flushMax"])
	if m["events"] < 300 {
		t.Errorf("the page handled only %.0f events in 3 s (the boards send about 750 a second)", m["events"])
	}
	// Frame gaps depend on the machine's load (the gateway and the browser
	// share it); the page's own work per frame is the page's doing. A frame
	// budget is 16 ms; this bound catches work per event instead of per frame.
	if m["flushAvg"] > 50 {
		t.Errorf("updating the page takes %.1f ms per frame on average", m["flushAvg"])
	}
	// The page keeps up: everything the gateway has sent so far is shown
	// within 2 s, and no reading was skipped.
	code, body := g.Get("/api/devices")
	var api struct{ Seq int }
	if err := json.Unmarshal(body, &api); code != 200 || err != nil {
		t.Fatalf("GET /api/devices: %d %v %s", code, err, body)
	}
	took := p.WaitFor("page caught up with the gateway", fmt.Sprintf(`window.esp32gw.state.lastSeq >= %d`, api.Seq), 2*time.Second)
	t.Logf("page caught up with seq %d after %v", api.Seq, took.Round(time.Millisecond))
	if gaps := chrometest.Eval[int](p, `window.esp32gw.state.gaps`); gaps != 0 {
		t.Errorf("the page saw %d gaps in the event sequence", gaps)
	}

	p.SetViewport(390, 844, "light")
	p.WaitFor("phone layout: no horizontal scroll", `document.scrollingElement.scrollWidth <= innerWidth && innerWidth === 390`, 5*time.Second)
	checkClean(t, p, g.Addr)
}

// TestDashboardRemoteGateway runs two gateways on one MQTT broker: the page on
// gateway B gets gateway A's board in a new snapshot, marks it "via pi-a",
// and switches its LED through B.
func TestDashboardRemoteGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs mosquitto")
	}
	br := mosquittotest.Start(t, mosquittotest.Options{})
	b := chrometest.Start(t, 1280, 860)
	cfg := func(id, device string) string {
		return fmt.Sprintf(`gateway_id: %s
state_dir: data
http:
  listen: "127.0.0.1:0"
  auth: none
mqtt:
  enabled: true
  broker: %q
  cluster: true
devices:
  - id: %s
    name: "Board on %s"
    transport: sim
    commands: [toggle]
    sim: {board: tutorial, interval: 500ms}
`, id, br.URL(), device, id)
	}
	testgw.Start(t, cfg("pi-a", "porch"))
	gb := testgw.Start(t, cfg("pi-b", "bench"))
	p := newPage(t, b, "page on B")
	p.Navigate(gb.URL + "/")
	waitCards(p, "bench", "porch")
	text := chrometest.Eval[string](p, fmt.Sprintf(`document.querySelector(%s).innerText`, chrometest.Quote(cardSel("porch"))))
	if !strings.Contains(text, "via pi-a") {
		t.Errorf("the remote board is not marked with its gateway:\n%s", text)
	}
	if text := chrometest.Eval[string](p, fmt.Sprintf(`document.querySelector(%s).innerText`, chrometest.Quote(cardSel("bench")))); strings.Contains(text, "via ") {
		t.Errorf("the local board is marked remote:\n%s", text)
	}
	sw := chrometest.Quote(rowSel("porch", "ledStatus") + " button[role=switch]")
	p.WaitFor("remote switch enabled", fmt.Sprintf(`document.querySelector(%s)?.disabled === false`, sw), 10*time.Second)
	before := chrometest.Eval[string](p, stateJS("porch", "ledStatus"))
	p.Click(rowSel("porch", "ledStatus") + " button[role=switch]")
	p.WaitFor("remote board switched", fmt.Sprintf(`%s !== %s`, stateJS("porch", "ledStatus"), chrometest.Quote(before)), 5*time.Second)
	checkClean(t, p, gb.Addr)
}
