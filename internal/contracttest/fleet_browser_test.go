package contracttest

// The dashboard's Fleet and Firmware pages against the real binary, in a
// real headless Chromium, with boards played by Go over loopback (no fake
// API anywhere):
//
//   - TestFleetBrowser: a board enrolls with the enroll token and reports
//     $fw, $chip, $mac, $rssi, $uptime; it is listed under New boards; the
//     user adopts it from the dialog (id and name typed); the board receives
//     the adopted frame, dials again with its own token, and its fleet row
//     shows firmware, RSSI, uptime with the reboot mark and online; "Add a
//     board" shows the secrets lines with the real enroll token; Forget
//     (confirmed) removes it.
//   - TestFirmwareBrowser: a text file picked in the file input is refused
//     with the gateway's reason; a real-format image (espimage.Build) shows
//     its project, version and chip; the Fleet page offers the update to the
//     two emulated boards (internal/otaboard) on an older version; both are
//     selected, one at a time, and the job view shows progress and ends with
//     both rows done.
//
// Both check that the page throws nothing, logs no console error, requests
// nothing but the gateway, and does not scroll sideways 390 px wide. Skipped
// without Chromium; failed when CI is set (chrometest).
//
//	go test ./internal/contracttest -run 'TestFleetBrowser|TestFirmwareBrowser' -count=1 -v

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/adapters/ota/espimage"
	"github.com/esp32gw/esp32gw/internal/chrometest"
	"github.com/esp32gw/esp32gw/internal/otaboard"
	"github.com/esp32gw/esp32gw/internal/testgw"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// fbFlowLimit bounds each page's flow, from the logged-in page to the end.
const fbFlowLimit = 60 * time.Second

// fbWait bounds one condition the page must reach.
const fbWait = 15 * time.Second

// fbDescribe describes the Fleet and Firmware pages for a failure message.
const fbDescribe = `JSON.stringify({url: location.href, conn: window.esp32gw && window.esp32gw.state && window.esp32gw.state.conn,
	fleet: window.esp32gw && window.esp32gw.fleet && window.esp32gw.fleet(),
	dialogs: [...document.querySelectorAll('dialog[open]')].map(d => d.id),
	main: (document.querySelector('main')?.innerText ?? '').slice(0, 2000)})`

// fbNoSideways is true when neither the document nor the body scrolls sideways.
const fbNoSideways = `document.documentElement.scrollWidth <= window.innerWidth && document.body.scrollWidth <= window.innerWidth`

// fbRow is a CSS selector for a device's row in the fleet table.
func fbRow(id string) string {
	return fmt.Sprintf(`#fleet-body tr[data-device=%s]`, chrometest.Quote(id))
}

// fbCell is a JavaScript expression for the text of a fleet row's column.
func fbCell(id, col string) string {
	return fmt.Sprintf(`(document.querySelector(%s)?.textContent ?? '')`, chrometest.Quote(fbRow(id)+" .c-"+col))
}

// fbLogin opens the login URL the gateway logged in a new tab and waits
// for the dashboard to be connected with the token gone from the address.
func fbLogin(t *testing.T, g *testgw.Gateway, name string) *chrometest.Tab {
	t.Helper()
	if g.Token == "" {
		t.Fatalf("the gateway logged no login token:\n%s", g.Logs())
	}
	p := chrometest.Start(t, 1280, 900).NewTab(t)
	p.Name, p.Describe = name, fbDescribe
	p.SetViewport(1280, 900, "light", chromedp.EmulateScale(1))
	p.Navigate(g.LoginURL())
	p.WaitFor("logged in and connected", fmt.Sprintf(`location.href === %s && document.getElementById('login').hidden && window.esp32gw?.state.conn === 'connected'`,
		chrometest.Quote(g.URL+"/")), fbWait)
	return p
}

// fbPage goes to a page from the menu, as a user would.
func fbPage(p *chrometest.Tab, page string) {
	p.T().Helper()
	p.Click(fmt.Sprintf(`#nav a[data-page=%q]`, page))
	p.WaitFor(page+" page shown", fmt.Sprintf(`!document.getElementById('page-%s').hidden && location.hash === '#/%s'`, page, page), fbWait)
}

// fbPhone checks, 390 px wide on a phone, that the page the hash names
// does not scroll sideways once ready is true; then the desktop again.
func fbPhone(p *chrometest.Tab, hash, ready string) {
	p.T().Helper()
	p.SetViewport(390, 844, "light", chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch)
	p.Do("go to "+hash, chromedp.Evaluate[chromedp.Void](`location.hash = `+chrometest.Quote(hash)))
	p.WaitFor("phone "+hash+" ready", ready, fbWait)
	p.WaitFor("phone "+hash+": no horizontal scroll", fbNoSideways, fbWait)
	if w := chrometest.Eval[int](p, `window.innerWidth`); w != 390 {
		p.T().Errorf("%s: phone viewport %d px wide, want 390", p.Name, w)
	}
	p.SetViewport(1280, 900, "light", chromedp.EmulateScale(1))
}

// fbProblems fails the test on exceptions, console errors, warnings and
// asserts, and on error-level browser log entries except those the flow
// expects (allowed says which, e.g. a refused upload's 400).
func fbProblems(t *testing.T, p *chrometest.Tab, allowed func(text string) bool) {
	t.Helper()
	for _, e := range p.Problems() {
		if e.Kind == "log" && allowed != nil && allowed(e.Text) {
			continue
		}
		t.Errorf("%s: browser: %s", p.Name, e)
	}
}

// fbLogoutProbe is true for the browser's log entry of the dashboard's
// probe for whether the gateway asks for a login at all (app.js: GET
// /api/devices without the cookie, answered 401 when it does, which shows
// "Log out").
func fbLogoutProbe(g *testgw.Gateway, text string) bool {
	return strings.Contains(text, "status of 401") && strings.HasSuffix(text, " "+g.URL+"/api/devices")
}

// TestFleetBrowser: enroll, adopt, the fleet row, Add a board, Forget.
func TestFleetBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("drives Chromium against the built binary")
	}
	chrometest.Require(t)
	// Not parallel: it loads both cores (boards, downloads, a browser or
	// namespaces), and the timed contract tests beside it would measure the
	// machine, not the gateway.
	g := testgw.Start(t, header("fleetbrowser", ""))
	enroll := enrollToken(t, g)
	p := fbLogin(t, g, "fleet")
	start := time.Now()

	// A new board dials in with the enroll token and reports itself.
	const mac = "24:6F:28:AA:BB:CC"
	b := dialBoard(t, g, "esp32-aabbcc", enroll, true)
	attrs := `{"$fw":"1.4.2","$project":"weather","$chip":"esp32s3","$mac":"` + mac + `","$rssi":-61,"$uptime":3725}`
	b.send(t, attrs)
	testutil.Eventually(t, fbWait, "esp32-aabbcc pending with its info", func() bool {
		info, _ := pendingEntry(pendingList(t, g), "esp32-aabbcc")["info"].(map[string]any)
		return info != nil && info["fw"] == "1.4.2" && info["mac"] == mac
	})

	// New boards lists it with what it reported; the menu counts it.
	fbPage(p, "fleet")
	pending := `document.querySelector('#pending-list li[data-pending="esp32-aabbcc"]')`
	p.WaitFor("the board under New boards", fmt.Sprintf(`(li => !!li && /esp32s3/.test(li.innerText) && li.innerText.includes(%s) && /weather 1\.4\.2/.test(li.innerText) && /127\.0\.0\.1/.test(li.innerText) && /enrolled/.test(li.innerText))(%s)`,
		chrometest.Quote(mac), pending), fbWait)
	p.WaitFor("the menu counts one new board", `document.getElementById('pending-count').textContent === '1' && !document.getElementById('pending-count').hidden`, fbWait)
	if n := chrometest.Eval[int](p, `document.querySelectorAll('#fleet-body tr[data-device]').length`); n != 0 {
		t.Errorf("%d fleet rows before adoption, want none (a pending board is no device)", n)
	}

	// Adopt: the dialog, an id and a name typed, confirmed.
	p.Click(`#pending-list button[data-pending="esp32-aabbcc"]`)
	p.WaitFor("adopt dialog open", `document.getElementById('adopt-dialog').open && document.getElementById('adopt-id').value === 'esp32-aabbcc' && /24:6F:28:AA:BB:CC/.test(document.getElementById('adopt-what').textContent)`, fbWait)
	p.Do("type the id and the name",
		chromedp.Evaluate[chromedp.Void](`document.getElementById('adopt-id').value = ''`),
		chromedp.SendKeys(`#adopt-id`, "porch"),
		chromedp.SendKeys(`#adopt-name`, "Porch light"))
	p.Click(`#adopt-submit`)
	p.WaitFor("adopt dialog closed, the board no longer waiting", `!document.getElementById('adopt-dialog').open && !document.querySelector('#pending-list li[data-pending="esp32-aabbcc"]') && /Adopted Porch light/.test(document.getElementById('pending-msg').textContent)`, fbWait)

	// The board is told its id and token on the pending link, which then closes (1000).
	var adopted struct{ Type, ID, Token string }
	frame := b.r.Next(t, fbWait)
	if err := json.Unmarshal(frame, &adopted); err != nil || adopted.Type != "adopted" || adopted.ID != "porch" || len(adopted.Token) < 16 {
		t.Fatalf("the board's frame after Adopt: %s, want {\"type\":\"adopted\",\"id\":\"porch\",\"token\":…}", frame)
	}
	if err, ok := b.r.Closed(fbWait); !ok || !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("the pending link after adoption: %v (ended %v), want close 1000", err, ok)
	}
	if dev := device(t, g, "porch"); str(dev, "name") != "Porch light" || str(dev, "transport") != "ws-listen" {
		t.Errorf("GET /api/devices/porch after the dialog: %v", dev)
	}

	// It dials again as porch with its own token and reports itself: the row.
	b2 := dialBoard(t, g, "porch", adopted.Token, true)
	b2.send(t, attrs)
	row := fbRow("porch")
	p.WaitFor("porch's row online with firmware, RSSI and uptime", fmt.Sprintf(`(tr => !!tr && !tr.hidden
		&& tr.querySelector('.c-status .badge')?.textContent === 'online'
		&& /Porch light/.test(tr.querySelector('.c-name').textContent)
		&& %s.startsWith('1.4.2') && /weather · esp32s3/.test(%s)
		&& %s === '-61 dBm'
		&& /^1 h 2 min/.test(%s) && /rebooted/.test(%s) && tr.dataset.rebooted === 'true'
		&& %s.includes(%s)
		&& %s === 'ws-listen')(document.querySelector(%s))`,
		fbCell("porch", "fw"), fbCell("porch", "fw"), fbCell("porch", "rssi"), fbCell("porch", "uptime"), fbCell("porch", "uptime"),
		fbCell("porch", "addr"), chrometest.Quote(mac), fbCell("porch", "transport"), chrometest.Quote(row)), fbWait)
	if s := chrometest.Eval[string](p, fbCell("porch", "fw")); strings.Contains(s, "update available") {
		t.Errorf("porch offered an update with no firmware uploaded: %q", s)
	}
	p.WaitFor("the summary", `/^1 board · 1 online · 1 rebooted in 24 h/.test(document.getElementById('fleet-summary').textContent)`, fbWait)
	p.WaitFor("the menu count gone", `document.getElementById('pending-count').hidden`, fbWait)

	// Add a board: the secrets lines with the real enroll token, as GET /api/enroll has them.
	code, body := g.Get("/api/enroll")
	var en struct {
		EnrollToken string `json:"enroll_token"`
		URL         string `json:"url"`
		Secrets     string `json:"secrets"`
	}
	if err := json.Unmarshal(body, &en); code != 200 || err != nil || en.EnrollToken != enroll {
		t.Fatalf("GET /api/enroll: %d %s (%v)", code, body, err)
	}
	p.Click(`#add-board`)
	p.WaitFor("Add a board shows the secrets lines", fmt.Sprintf(`document.getElementById('enroll-dialog').open && document.getElementById('enroll-secrets')?.textContent === %s`, chrometest.Quote(en.Secrets)), fbWait)
	shown := chrometest.Eval[string](p, `document.getElementById('enroll-secrets').textContent`)
	if !strings.Contains(shown, `#define GW_ENROLL_TOKEN "`+enroll+`"`+"\n") {
		t.Errorf("the secrets lines lack the enroll token %q:\n%s", enroll, shown)
	}
	if txt := chrometest.Eval[string](p, `document.getElementById('enroll-body').innerText`); !strings.Contains(txt, en.URL) || !strings.Contains(txt, "mDNS is off") {
		t.Errorf("Add a board does not name the enroll URL %s and that mDNS is off:\n%s", en.URL, txt)
	}
	p.Click(`#enroll-dialog [data-close]`)
	p.WaitFor("Add a board closed", `!document.getElementById('enroll-dialog').open`, fbWait)

	// A phone: the fleet page with its row does not scroll sideways.
	fbPhone(p, "#/fleet", fmt.Sprintf(`!!document.querySelector(%s) && !document.getElementById('page-fleet').hidden`, chrometest.Quote(row)))

	// Forget, confirmed: the row goes, and so does the device and its link.
	p.Click(row + ` button.details`)
	p.Click(row + ` + tr.fleet-detail button[data-action=forget]`)
	p.WaitFor("the confirm dialog", `document.getElementById('confirm-dialog').open && /Forget Porch light \(porch\)/.test(document.getElementById('confirm-text').textContent)`, fbWait)
	p.Click(`#confirm-ok`)
	p.WaitFor("porch's row gone", fmt.Sprintf(`!document.getElementById('confirm-dialog').open && !document.querySelector(%s) && /Forgot Porch light/.test(document.getElementById('pending-msg').textContent) && !document.getElementById('fleet-empty').hidden`, chrometest.Quote(row)), fbWait)
	if code, _ := g.Get("/api/devices/porch"); code != 404 {
		t.Errorf("GET /api/devices/porch after Forget: %d, want 404", code)
	}
	if err, ok := b2.r.Closed(fbWait); !ok {
		t.Errorf("porch's link still open after Forget: %v", err)
	}
	if took := time.Since(start); took > fbFlowLimit {
		t.Errorf("the fleet flow took %v, want under %v", took, fbFlowLimit)
	} else {
		t.Logf("fleet flow: %v", took.Round(time.Millisecond))
	}
	fbProblems(t, p, func(text string) bool { return fbLogoutProbe(g, text) })
	checkClean(t, p, g.Addr)
}

// fbJobLog records, from the moment it is installed, what the job view
// shows each time it changes: the job's state lines, the row states, the
// percentages of rows shown downloading with a bar filled as far (and
// named so for screen readers), and the most rows busy (sent, downloading,
// rebooting) at once.
const fbJobLog = `(() => {
	const log = window.__job = {jobTexts: [], rowStates: [], downloading: [], maxBusy: 0, queuedWhileBusy: false};
	const add = (list, v) => { if (v && !list.includes(v)) list.push(v); };
	const look = () => {
		add(log.jobTexts, document.getElementById('job-state').textContent);
		const lis = [...document.querySelectorAll('#job-list li')];
		let busy = 0, queued = 0;
		for (const li of lis) {
			const s = li.dataset.state;
			add(log.rowStates, s);
			if (s === 'sent' || s === 'downloading' || s === 'rebooting') busy++;
			if (s === 'queued') queued++;
			const w = parseFloat(li.querySelector('.fill')?.style.width);
			const bar = li.querySelector('[role=progressbar]');
			const m = /^downloading (\d+) %$/.exec(li.querySelector('.job-state')?.textContent ?? '');
			if (s === 'downloading' && m && +m[1] === w && w > 0 && +bar.getAttribute('aria-valuenow') === w && bar.getAttribute('aria-valuetext') === m[0]) add(log.downloading, w);
		}
		log.maxBusy = Math.max(log.maxBusy, busy);
		if (busy && queued) log.queuedWhileBusy = true;
	};
	new MutationObserver(look).observe(document.getElementById('ota-job'), {subtree: true, childList: true, attributes: true, characterData: true});
})()`

// TestFirmwareBrowser: upload refused and accepted, update available, an
// update of two boards one at a time to done.
func TestFirmwareBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("drives Chromium against the built binary")
	}
	chrometest.Require(t)
	// Not parallel: it loads both cores (boards, downloads, a browser or
	// namespaces), and the timed contract tests beside it would measure the
	// machine, not the gateway.
	var cfg strings.Builder
	cfg.WriteString(header("fwbrowser", ""))
	for i, name := range []string{"Weather north", "Weather south"} {
		fmt.Fprintf(&cfg, "  - id: ota%d\n    name: %q\n    transport: ws-listen\n    token: \"ota-board-token-%d\"\n", i, name, i)
	}
	g := testgw.Start(t, cfg.String())
	// Two boards of project weather on ESP32-S3 at 1.0.0, downloading at
	// 64 KiB/s: a 256 KiB image takes about 4 s, so the page's one-second
	// polls see it on its way.
	slow := func(c *otaboard.Config) { c.BytesPerSec = 64 << 10 }
	boards := []*otaboard.Board{otaBoard(t, g, 0, "1.0.0", "", slow), otaBoard(t, g, 1, "1.0.0", "", slow)}
	otaWaitInfo(t, g, 2)

	dir := t.TempDir()
	img := espimage.Build(espimage.Spec{Chip: "esp32s3", Project: "weather", Version: "2.0.0", IDF: "v5.3.1", Date: "Nov 23 2026", Time: "10:00:00", Size: 256 << 10})
	imgPath := filepath.Join(dir, "weather-2.0.0.bin")
	textPath := filepath.Join(dir, "notes.txt")
	text := []byte("#include <Arduino.h>\nvoid setup() {}\nvoid loop() {}\n")
	if err := os.WriteFile(imgPath, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(textPath, text, 0o644); err != nil {
		t.Fatal(err)
	}
	// The reason the gateway gives for the text file, to find it on the page
	// (a refused upload stores nothing).
	code, body := g.Do(http.MethodPost, "/api/firmware", text)
	var refusal struct{ Error string }
	if err := json.Unmarshal(body, &refusal); code != 400 || err != nil || refusal.Error == "" {
		t.Fatalf("POST /api/firmware with a text file: %d %s, want 400 with the reason", code, body)
	}

	p := fbLogin(t, g, "firmware")
	start := time.Now()
	fbPage(p, "firmware")
	p.WaitFor("no firmware yet", `/No firmware uploaded yet/.test(document.getElementById('fw-msg').textContent)`, fbWait)

	// The text file, picked in the file input: refused with the reason.
	pick := func(path string) {
		t.Helper()
		p.Do("pick "+filepath.Base(path), chromedp.SetUploadFiles(`#fw-file`, []string{path}))
	}
	pick(textPath)
	p.WaitFor("the refusal and its reason", fmt.Sprintf(`(r => r.dataset.state === 'refused' && r.textContent.includes(%s))(document.getElementById('upload-result'))`,
		chrometest.Quote("The gateway refused notes.txt: "+refusal.Error)), fbWait)

	// The image: its project, version and chip.
	pick(imgPath)
	p.WaitFor("the image's facts", `(r => r.dataset.state === 'ok' && /Uploaded weather-2\.0\.0\.bin: weather 2\.0\.0 for esp32s3/.test(r.textContent)
		&& r.querySelector('[data-fact=project]')?.textContent === 'weather'
		&& r.querySelector('[data-fact=version]')?.textContent === '2.0.0'
		&& r.querySelector('[data-fact=chip]')?.textContent === 'esp32s3'
		&& r.querySelector('[data-fact=IDF]')?.textContent === 'v5.3.1'
		&& r.querySelector('[data-fact=size]')?.textContent === '256 KiB')(document.getElementById('upload-result'))`, fbWait)
	var list []struct{ SHA256, Version string }
	if code, body := g.Get("/api/firmware"); code != 200 || json.Unmarshal(body, &list) != nil || len(list) != 1 || list[0].Version != "2.0.0" {
		t.Fatalf("GET /api/firmware after the uploads: %d %s, want the one image", code, body)
	}
	sha := list[0].SHA256
	item := fmt.Sprintf(`#fw-list li[data-sha=%q]`, sha)
	p.WaitFor("the image listed with two boards on an older version", fmt.Sprintf(`/2 boards on an older version/.test(document.querySelector(%s)?.innerText ?? '')`, chrometest.Quote(item)), fbWait)

	// The Fleet page offers the update to both boards.
	fbPage(p, "fleet")
	for _, id := range []string{"ota0", "ota1"} {
		p.WaitFor(id+" offered 2.0.0", fmt.Sprintf(`%s.startsWith('1.0.0') && %s.includes('update available: 2.0.0') && document.querySelector(%s + ' .c-status .badge')?.textContent === 'online'`,
			fbCell(id, "fw"), fbCell(id, "fw"), chrometest.Quote(fbRow(id))), fbWait)
	}
	p.WaitFor("the summary counts them", `/2 with an update available/.test(document.getElementById('fleet-summary').textContent)`, fbWait)

	// Plan: both boards (the older-version shortcut), one at a time.
	fbPage(p, "firmware")
	p.Click(item + ` button[data-action=plan]`)
	p.WaitFor("the plan lists both boards, enabled", `!document.getElementById('ota-plan').hidden && ['plan-ota0', 'plan-ota1'].every(id => (i => !!i && !i.disabled && i.dataset.older === 'true')(document.getElementById(id)))`, fbWait)
	p.Click(`#plan-older`)
	p.WaitFor("both selected", `[...document.querySelectorAll('#plan-list input:checked')].map(i => i.value).join(',') === 'ota0,ota1'`, fbWait)
	p.Do("one board at a time",
		chromedp.Evaluate[chromedp.Void](`document.getElementById('plan-parallel').value = ''`),
		chromedp.SendKeys(`#plan-parallel`, "1"))
	p.Do("watch the job view", chromedp.Evaluate[chromedp.Void](fbJobLog))
	p.Click(`#plan-start`)
	p.WaitFor("the job view", `/^#\/firmware\/job\/[^/]+$/.test(location.hash) && !document.getElementById('ota-job').hidden && document.querySelectorAll('#job-list li').length === 2`, fbWait)
	job := strings.TrimPrefix(chrometest.Eval[string](p, `location.hash`), "#/firmware/job/")
	p.WaitFor("the job done", `(s => s.dataset.state === 'done' && /^Done · 2 updated$/.test(s.textContent))(document.getElementById('job-state'))`, 45*time.Second)
	p.WaitFor("both rows done with full bars", `(lis => lis.length === 2 && lis.every(li => li.dataset.state === 'done' && li.querySelector('.fill').style.width === '100%' && /^done$/.test(li.querySelector('.job-state').textContent)))([...document.querySelectorAll('#job-list li')])`, fbWait)
	if got := chrometest.Eval[string](p, `[...document.querySelectorAll('#job-list li .job-name')].map(e => e.textContent).join(',')`); got != "Weather north,Weather south" {
		t.Errorf("job rows named %q, want the boards' names", got)
	}
	var seen struct {
		JobTexts, RowStates []string
		Downloading         []float64
		MaxBusy             int
		QueuedWhileBusy     bool
	}
	if err := json.Unmarshal([]byte(chrometest.Eval[string](p, `JSON.stringify(window.__job)`)), &seen); err != nil {
		t.Fatal(err)
	}
	t.Logf("job %s as the page showed it: %+v", job, seen)
	// Progress: the job running with none, then one of the two done (the
	// second board takes seconds to download), a board downloading with its
	// percentage and a bar filled as far. (How far the first bar is seen
	// depends on the kernel's socket buffers: the gateway counts bytes sent.)
	texts := strings.Join(seen.JobTexts, "\n")
	if !strings.Contains(texts, "Running · 1 of 2 done") || len(seen.Downloading) == 0 {
		t.Errorf("the job view did not show the update progressing (running, 1 of 2 done, a board downloading with its percentage): %+v", seen)
	}
	if seen.MaxBusy != 1 || !seen.QueuedWhileBusy {
		t.Errorf("parallel 1: the job view showed %d boards busy at once (want 1) and a board queued while another was busy = %v", seen.MaxBusy, seen.QueuedWhileBusy)
	}
	j := otaGet(t, g, job)
	if j.State != "done" || j.states()["ota0"] != "done" || j.states()["ota1"] != "done" {
		t.Errorf("GET /api/ota/%s: %+v", job, j)
	}
	for i, b := range boards {
		if b.FW() != "2.0.0" {
			t.Errorf("board ota%d runs %s, want 2.0.0", i, b.FW())
		}
	}

	// A phone: the firmware page with the job does not scroll sideways.
	fbPhone(p, "#/firmware/job/"+job, `!document.getElementById('ota-job').hidden && document.querySelectorAll('#job-list li').length === 2 && document.querySelectorAll('#fw-list li').length === 1`)

	// After the update: the Fleet page shows 2.0.0 and no update.
	fbPage(p, "fleet")
	for _, id := range []string{"ota0", "ota1"} {
		p.WaitFor(id+" on 2.0.0", fmt.Sprintf(`%s.startsWith('2.0.0') && !%s.includes('update available')`, fbCell(id, "fw"), fbCell(id, "fw")), fbWait)
	}
	if took := time.Since(start); took > fbFlowLimit {
		t.Errorf("the firmware flow took %v, want under %v", took, fbFlowLimit)
	} else {
		t.Logf("firmware flow: %v", took.Round(time.Millisecond))
	}
	// The refused upload and the log-out probe are the failed loads the browser may log.
	fbProblems(t, p, func(text string) bool {
		return fbLogoutProbe(g, text) || strings.Contains(text, "status of 400") && strings.HasSuffix(text, " "+g.URL+"/api/firmware")
	})
	checkClean(t, p, g.Addr)
}
