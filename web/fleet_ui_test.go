package web

// The dashboard's Fleet and Firmware pages in a real headless Chromium: the
// embedded static files, served with a fake gateway API written here (the
// device objects with info, /ws with a snapshot and info frames, pending
// boards, adopt, forget, enroll, firmware upload and list, update jobs that
// progress poll by poll). Checks what a user sees: fleet rows and their
// values, sorting and filtering, the reboot mark, a live info frame, the
// RSSI/heap charts, adopting a board (the POST body, the row in the fleet),
// the enroll secrets, an upload refused with the gateway's reason and one
// accepted, two update jobs (one to done, one stopped after a failure) with
// progress bars, the job surviving a reload, forget (204 and 409), no
// console errors, and no horizontal scrolling on a 390 px phone. Skipped
// without Chromium; failed when CI is set.
//
//	go test ./web -run FleetUI -v
//	ESP32GW_SCREENSHOT_DIR=/tmp/shots go test ./web -run FleetUI   # PNGs of each step

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/chrometest"
)

const fleetSHA = "3b5d3c7d207e37dceeedd301e35e2e58408a4dbb6e4c4b5f1f2b0a8c4c1e9f01"

// fleetFake is the fake gateway API: just enough state to answer like the
// contract (DESIGN.md, Fleet) and to record what the page sent.
type fleetFake struct {
	ctx context.Context
	now time.Time

	mu        sync.Mutex
	devices   []map[string]any
	pending   []map[string]any
	firmware  []map[string]any
	adopts    []string // POST bodies of adopt
	otaPosts  []string // POST bodies of /api/ota
	deletes   []string // DELETE paths
	jobPolls  map[string]int
	jobs      int
	subs      map[chan []byte]bool
	uploads   int
	historyOf map[string]int // label → history requests
}

func newFleetFake(ctx context.Context) *fleetFake {
	now := time.Now()
	ts := func(ago time.Duration) string { return gateway.FormatTime(now.Add(-ago)) }
	dev := func(id, name, transport string, online bool, since time.Duration, info map[string]any, rpm int, malformed, reconnects int) map[string]any {
		d := map[string]any{"id": id, "name": name, "gateway": "testgw", "transport": transport, "online": online,
			"last_seen": ts(3 * time.Second), "reconnects": reconnects, "commands": []string{}, "labels": map[string]any{},
			"info": info, "since": ts(since), "readings_per_min": rpm, "malformed": malformed}
		if transport != "serial" {
			d["addr"] = fmt.Sprint(info["ip"], ":", 40000+len(id))
		}
		if !online {
			d["reason"] = "serial port closed"
			d["last_seen"] = ts(2 * time.Hour)
		}
		return d
	}
	f := &fleetFake{
		ctx: ctx, now: now,
		devices: []map[string]any{
			dev("kitchen", "Kitchen", "ws-listen", true, time.Hour, map[string]any{
				"fw": "1.2.0", "project": "esp32gw-demo", "chip": "esp32s3", "mac": "a4:cf:12:00:00:01", "ip": "192.168.1.21",
				"rssi": -58, "heap": 182340, "uptime": 3600, "reset": "brownout"}, 12, 0, 1),
			dev("garage", "Garage", "ws-dial", true, 5*24*time.Hour, map[string]any{
				"fw": "1.3.0", "project": "esp32gw-demo", "chip": "esp32s3", "mac": "a4:cf:12:00:00:02", "ip": "192.168.1.22",
				"rssi": -81, "heap": 95000, "uptime": 500000, "reset": "poweron"}, 60, 3, 0),
			dev("attic", "Attic", "ws-listen", true, 3*24*time.Hour, map[string]any{
				"fw": "1.0.0", "project": "esp32gw-demo", "chip": "esp32", "mac": "24:6f:28:00:00:03", "ip": "192.168.1.23",
				"rssi": -65, "heap": 120000, "uptime": 200000, "reset": "software"}, 6, 0, 4),
			dev("bench", "Bench", "serial", false, 2*time.Hour, map[string]any{}, 0, 0, 2),
		},
		pending: []map[string]any{{"id": "esp32-a1b2c3", "transport": "ws-listen", "addr": "192.168.1.40:51234",
			"info":       map[string]any{"chip": "esp32s3", "mac": "a4:cf:12:a1:b2:c3", "fw": "1.3.0", "project": "esp32gw-demo"},
			"first_seen": ts(2 * time.Minute)}},
		firmware: []map[string]any{{"sha256": fleetSHA, "size": 912384, "chip": "esp32s3", "project": "esp32gw-demo",
			"version": "1.3.0", "idf": "v5.3.1", "built": ts(48 * time.Hour)}},
		jobPolls:  map[string]int{},
		subs:      map[chan []byte]bool{},
		historyOf: map[string]int{},
	}
	// A reading, and an attribute as a label (which a card must never show).
	f.devices[0]["labels"] = map[string]any{
		"temp":  map[string]any{"value": 21.5, "ts": ts(time.Second), "seq": 1, "kind": "number"},
		"$rssi": map[string]any{"value": -58, "ts": ts(time.Second), "seq": 1, "kind": "number"},
	}
	return f
}

func (f *fleetFake) routes(mux *http.ServeMux) {
	j := func(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }
	mux.HandleFunc("GET /api/session", func(w http.ResponseWriter, r *http.Request) { j(w, 200, map[string]string{"role": "admin"}) })
	mux.HandleFunc("GET /api/devices", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		j(w, 200, map[string]any{"gateway": "testgw", "seq": 1, "devices": f.devices})
	})
	mux.HandleFunc("GET /api/devices/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, d := range f.devices {
			if d["id"] == r.PathValue("id") {
				j(w, 200, d)
				return
			}
		}
		writeError(w, 404, "unknown device "+r.PathValue("id"))
	})
	mux.HandleFunc("GET /api/devices/{id}/history", func(w http.ResponseWriter, r *http.Request) {
		label := r.URL.Query().Get("label")
		f.mu.Lock()
		f.historyOf[label]++
		f.mu.Unlock()
		points := []map[string]any{}
		if label == "$rssi" || label == "$heap" {
			for t := f.now.Add(-24 * time.Hour); t.Before(f.now); t = t.Add(10 * time.Minute) {
				k := float64(t.Unix()/600%24) / 24
				v := -60 - 15*k
				if label == "$heap" {
					v = 180000 - 40000*k
				}
				points = append(points, map[string]any{"ts": gateway.FormatTime(t), "value": v})
			}
		}
		j(w, 200, map[string]any{"device": r.PathValue("id"), "label": label, "from": gateway.FormatTime(f.now.Add(-24 * time.Hour)),
			"to": gateway.FormatTime(time.Now()), "resolution": "raw", "points": points})
	})
	mux.HandleFunc("DELETE /api/devices/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.deletes = append(f.deletes, r.URL.Path)
		id := r.PathValue("id")
		if id == "kitchen" {
			writeError(w, 409, "device kitchen is defined in config.yaml")
			return
		}
		for i, d := range f.devices {
			if d["id"] == id {
				f.devices = append(f.devices[:i], f.devices[i+1:]...)
				f.broadcastLocked(f.snapshotLocked())
				w.WriteHeader(204)
				return
			}
		}
		writeError(w, 404, "unknown device "+id)
	})
	mux.HandleFunc("GET /api/pending", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		j(w, 200, f.pending)
	})
	mux.HandleFunc("POST /api/pending/{id}/adopt", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.adopts = append(f.adopts, string(body))
		var req struct {
			ID, Name string
			Commands []string
		}
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, 400, "bad body: "+err.Error())
			return
		}
		for _, d := range f.devices {
			if d["id"] == req.ID {
				writeError(w, 409, "device id "+req.ID+" is taken")
				return
			}
		}
		for i, p := range f.pending {
			if p["id"] != r.PathValue("id") {
				continue
			}
			f.pending = append(f.pending[:i], f.pending[i+1:]...)
			d := map[string]any{"id": req.ID, "name": req.Name, "gateway": "testgw", "transport": "ws-listen", "online": false,
				"last_seen": nil, "reconnects": 0, "commands": req.Commands, "labels": map[string]any{}, "info": p["info"],
				"since": nil, "readings_per_min": 0, "malformed": 0}
			f.devices = append(f.devices, d)
			f.broadcastLocked(f.snapshotLocked())
			j(w, 200, d)
			return
		}
		writeError(w, 404, "no pending board "+r.PathValue("id"))
	})
	mux.HandleFunc("GET /api/enroll", func(w http.ResponseWriter, r *http.Request) {
		j(w, 200, map[string]any{"enroll_token": "enr-7f3a9c", "url": "ws://" + r.Host + "/device/", "mdns": true,
			"secrets": "#define GW_ENROLL_TOKEN \"enr-7f3a9c\"\n#define GW_PORT 8080\n"})
	})
	mux.HandleFunc("GET /api/firmware", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		j(w, 200, f.firmware)
	})
	mux.HandleFunc("POST /api/firmware", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.uploads++
		if len(body) < 32 || body[0] != 0xE9 {
			writeError(w, 400, fmt.Sprintf("not an ESP32 app image: first byte 0x%02x, want 0xe9", body[0]))
			return
		}
		fw := map[string]any{"sha256": strings.Repeat("ab", 32), "size": len(body), "chip": "esp32s3", "project": "esp32gw-demo",
			"version": "1.4.0", "idf": "v5.3.1", "built": gateway.FormatTime(f.now.Add(-time.Hour))}
		f.firmware = append(f.firmware, fw)
		j(w, 200, fw)
	})
	mux.HandleFunc("DELETE /api/firmware/{sha}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i, fw := range f.firmware {
			if fw["sha256"] == r.PathValue("sha") {
				f.firmware = append(f.firmware[:i], f.firmware[i+1:]...)
				w.WriteHeader(204)
				return
			}
		}
		writeError(w, 404, "no such firmware")
	})
	mux.HandleFunc("POST /api/ota", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.otaPosts = append(f.otaPosts, string(body))
		f.jobs++
		j(w, 202, map[string]string{"job": fmt.Sprintf("j%d", f.jobs)})
	})
	mux.HandleFunc("GET /api/ota/{job}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		id := r.PathValue("job")
		var devs []string
		switch id {
		case "j1":
			devs = []string{"kitchen", "garage"}
		case "j2":
			devs = []string{"kitchen", "garage", "attic"}
		default:
			writeError(w, 404, "no job "+id)
			return
		}
		n := f.jobPolls[id]
		f.jobPolls[id]++
		j(w, 200, fakeJob(id, devs, n))
	})
	mux.HandleFunc("DELETE /api/ota/{job}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	mux.HandleFunc("GET /ws", f.ws)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, 404, "no such API endpoint: "+r.Method+" "+r.URL.Path)
	})
}

// fakeJob is job id at its n-th poll. j1 (kitchen, garage) goes through
// every step to done; j2 fails kitchen's download and stops.
func fakeJob(id string, devs []string, n int) map[string]any {
	type st struct {
		s string
		p int
		e string
	}
	var steps [][]st
	if id == "j1" {
		steps = [][]st{
			{{"queued", 0, ""}, {"queued", 0, ""}},
			{{"sent", 0, ""}, {"queued", 0, ""}},
			{{"downloading", 30, ""}, {"sent", 0, ""}},
			{{"downloading", 80, ""}, {"downloading", 10, ""}},
			{{"rebooting", 100, ""}, {"downloading", 60, ""}},
			{{"done", 100, ""}, {"rebooting", 100, ""}},
			{{"done", 100, ""}, {"done", 100, ""}},
		}
	} else {
		steps = [][]st{
			{{"downloading", 40, ""}, {"queued", 0, ""}, {"skipped", 0, "different chip: esp32"}},
			{{"failed", 40, "sha256 mismatch after download"}, {"cancelled", 0, ""}, {"skipped", 0, "different chip: esp32"}},
		}
	}
	if n >= len(steps) {
		n = len(steps) - 1
	}
	state := "running"
	if n == len(steps)-1 {
		state = map[string]string{"j1": "done", "j2": "stopped"}[id]
	}
	var out []map[string]any
	for i, d := range devs {
		x := steps[n][i]
		m := map[string]any{"id": d, "state": x.s, "progress": x.p}
		if x.e != "" {
			m["error"] = x.e
		}
		out = append(out, m)
	}
	return map[string]any{"job": id, "firmware": fleetSHA, "state": state, "devices": out}
}

func (f *fleetFake) snapshotLocked() []byte {
	b, _ := json.Marshal(map[string]any{"type": "snapshot", "seq": 1, "gateway": "testgw", "devices": f.devices})
	return b
}

// broadcastLocked sends a frame to every open /ws (dropped for one that is behind).
func (f *fleetFake) broadcastLocked(msg []byte) {
	for ch := range f.subs {
		select {
		case ch <- msg:
		default:
		}
	}
}

func (f *fleetFake) broadcast(msg any) {
	b, _ := json.Marshal(msg)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.broadcastLocked(b)
}

// ws serves /ws: a snapshot, then whatever is broadcast, until the browser
// goes or the test ends.
func (f *fleetFake) ws(w http.ResponseWriter, r *http.Request) {
	c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	ch := make(chan []byte, 16)
	f.mu.Lock()
	f.subs[ch] = true
	snap := f.snapshotLocked()
	f.mu.Unlock()
	defer func() { f.mu.Lock(); delete(f.subs, ch); f.mu.Unlock() }()
	if c.WriteMessage(websocket.TextMessage, snap) != nil {
		return
	}
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	defer func() { c.Close(); <-gone }()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-gone:
			return
		case m := <-ch:
			if c.WriteMessage(websocket.TextMessage, m) != nil {
				return
			}
		}
	}
}

func (f *fleetFake) recorded(list *[]string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), *list...)
}

// fleetDescribe describes the page for a failure message.
const fleetDescribe = `JSON.stringify({url: location.href, fleet: window.esp32gw && window.esp32gw.fleet(),
	body: document.querySelector('main').innerText.slice(0, 2000)})`

func TestFleetUI(t *testing.T) {
	if testing.Short() {
		t.Skip("drives Chromium")
	}
	ctx, cancel := context.WithCancel(context.Background())
	fake := newFleetFake(ctx)
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /assets/", http.FileServerFS(static))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.ServeFileFS(w, r, static, "index.html") })
	fake.routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(cancel) // runs first: every /ws handler returns

	p := chrometest.Start(t, 1280, 900).NewTab(t)
	p.Describe = fleetDescribe
	p.SetViewport(1280, 900, "light", chromedp.EmulateScale(1))
	wait := func(what, expr string) { t.Helper(); p.WaitFor(what, expr, 10*time.Second) }
	row := func(id string) string { return fmt.Sprintf(`#fleet-body tr[data-device=%q]`, id) }
	cell := func(id, col string) string {
		return fmt.Sprintf(`(document.querySelector(%s)?.textContent ?? '')`, chrometest.Quote(row(id)+" .c-"+col))
	}
	order := func() string { return chrometest.Eval[string](p, `window.esp32gw.fleet().join(',')`) }
	// hash goes to a page as a link would (no reload); reload reloads the page.
	hash := func(h string) {
		t.Helper()
		p.Do("go to "+h, chromedp.Evaluate[chromedp.Void](`location.hash = `+chrometest.Quote(h)))
	}
	reload := func() { t.Helper(); p.Do("reload", chromedp.Reload()) }
	jobPolls := func(id string) int { fake.mu.Lock(); defer fake.mu.Unlock(); return fake.jobPolls[id] }

	// 1. The Fleet page from the menu: a row per board with its values.
	p.Navigate(srv.URL + "/")
	wait("devices page", `document.querySelectorAll('#devices .card').length === 4`)
	fake.broadcast(map[string]any{"type": "event", "device": "kitchen", "label": "$heap", "value": 1000, "ts": gateway.FormatTime(time.Now()), "seq": 2})
	fake.broadcast(map[string]any{"type": "event", "device": "kitchen", "label": "temp", "value": 22.5, "ts": gateway.FormatTime(time.Now()), "seq": 3})
	wait("kitchen temp live", `document.querySelector('[data-device="kitchen"] [data-label="temp"] .lvalue')?.textContent === '22.5'`)
	if n := chrometest.Eval[int](p, `[...document.querySelectorAll('#devices [data-label]')].filter(e => e.dataset.label.startsWith('$')).length`); n != 0 {
		t.Errorf("%d attribute ($…) rows on the device cards", n)
	}
	p.Click(`#nav a[data-page="fleet"]`)
	wait("fleet rows", `document.querySelectorAll('#fleet-body tr[data-device]').length === 4`)
	if got := chrometest.Eval[string](p, `location.hash`); got != "#/fleet" {
		t.Errorf("hash %q, want #/fleet", got)
	}
	wait("devices page hidden", `document.getElementById('page-devices').hidden && !document.getElementById('page-fleet').hidden`)
	for _, c := range []struct{ id, col, want string }{
		{"kitchen", "rssi", "-58 dBm"}, {"kitchen", "heap", "178 KiB"}, {"kitchen", "reset", "brownout"},
		{"kitchen", "uptime", "1 h"}, {"kitchen", "addr", "192.168.1.21"}, {"kitchen", "addr", "a4:cf:12:00:00:01"},
		{"kitchen", "fw", "1.2.0"}, {"kitchen", "fw", "update available: 1.3.0"}, {"kitchen", "transport", "ws-listen"},
		{"kitchen", "rpm", "12"}, {"kitchen", "reconnects", "1"}, {"kitchen", "status", "online"}, {"kitchen", "status", "for 1 h"},
		{"garage", "malformed", "3"}, {"garage", "uptime", "5 d 18 h"}, {"garage", "rssi", "-81 dBm"},
		{"bench", "status", "offline"}, {"bench", "status", "serial port closed"}, {"bench", "rssi", "—"},
	} {
		wait(c.id+" "+c.col+" shows "+c.want, cell(c.id, c.col)+`.includes(`+chrometest.Quote(c.want)+`)`)
	}
	if s := chrometest.Eval[string](p, cell("garage", "fw")); strings.Contains(s, "update available") {
		t.Errorf("garage runs 1.3.0 and is offered an update: %q", s)
	}
	if s := chrometest.Eval[string](p, cell("attic", "fw")); strings.Contains(s, "update available") {
		t.Errorf("attic is an esp32 and is offered the esp32s3 image: %q", s)
	}
	// The reboot mark: kitchen's uptime is an hour, garage's days.
	if !chrometest.Eval[bool](p, `document.querySelector('`+row("kitchen")+`').dataset.rebooted === 'true' && /rebooted/.test(`+cell("kitchen", "uptime")+`)`) {
		t.Error("kitchen (uptime 1 h) is not marked rebooted")
	}
	if chrometest.Eval[bool](p, `!!document.querySelector('`+row("garage")+`').dataset.rebooted`) {
		t.Error("garage (uptime 5 d) is marked rebooted")
	}
	if got := order(); got != "attic,bench,garage,kitchen" {
		t.Errorf("default order (by name) %s", got)
	}

	// 2. Sorting: by RSSI (weakest first, a board without RSSI last), then reversed.
	p.Click(`#fleet-head button[data-sort="rssi"]`)
	wait("sorted by rssi", `window.esp32gw.fleet().join(',') === 'garage,attic,kitchen,bench'`)
	if got := chrometest.Eval[string](p, `document.querySelector('#fleet-head th[data-col="rssi"]').getAttribute('aria-sort')`); got != "ascending" {
		t.Errorf("rssi column aria-sort %q", got)
	}
	p.Click(`#fleet-head button[data-sort="rssi"]`)
	wait("sorted by rssi, descending", `window.esp32gw.fleet().join(',') === 'kitchen,attic,garage,bench'`)
	// A live info frame changes a row at once.
	fake.broadcast(map[string]any{"type": "info", "device": "garage", "ts": gateway.FormatTime(time.Now()),
		"info": map[string]any{"fw": "1.3.0", "project": "esp32gw-demo", "chip": "esp32s3", "mac": "a4:cf:12:00:00:02",
			"ip": "192.168.1.22", "rssi": -50, "heap": 96000, "uptime": 500100, "reset": "poweron",
			"ota": map[string]any{"state": "downloading", "progress": 42}}})
	wait("garage rssi from the info frame", cell("garage", "rssi")+` === '-50 dBm'`)
	wait("garage update in progress", cell("garage", "fw")+`.includes('downloading 42 %')`)
	wait("resorted after the info frame", `window.esp32gw.fleet().join(',') === 'garage,kitchen,attic,bench'`)
	p.Click(`#fleet-head button[data-sort="name"]`)
	wait("sorted by name again", `window.esp32gw.fleet().join(',') === 'attic,bench,garage,kitchen'`)

	// 3. The filter, typed.
	p.Do("type a filter", chromedp.SendKeys(`#fleet-filter`, "192.168.1.22"))
	wait("filtered to garage", `window.esp32gw.fleet().join(',') === 'garage'`)
	wait("summary says so", `/1 shown/.test(document.getElementById('fleet-summary').textContent)`)
	p.Do("clear the filter", chromedp.Evaluate[chromedp.Void](`(i => { i.value = ''; i.dispatchEvent(new Event('input')); })(document.getElementById('fleet-filter'))`))
	wait("filter cleared", `window.esp32gw.fleet().length === 4`)
	p.Do("filter by word", chromedp.SendKeys(`#fleet-filter`, "offline"))
	wait("filtered to bench", `window.esp32gw.fleet().join(',') === 'bench'`)
	p.Do("clear the filter", chromedp.Evaluate[chromedp.Void](`(i => { i.value = ''; i.dispatchEvent(new Event('input')); })(document.getElementById('fleet-filter'))`))
	wait("filter cleared", `window.esp32gw.fleet().length === 4`)

	// 4. A row's details: RSSI and heap history charts drawn, every attribute listed.
	p.Click(row("kitchen") + ` button.details`)
	wait("kitchen charts drawn", `[...document.querySelectorAll('`+row("kitchen")+` + tr.fleet-detail .hist')].filter(h => h.dataset.state === 'ready' && +h.dataset.points > 100).length === 2`)
	wait("kitchen attributes", `/\$reset\s*brownout/.test(document.querySelector('`+row("kitchen")+` + tr.fleet-detail .fl-info').innerText)`)
	fake.mu.Lock()
	rssiReqs, heapReqs := fake.historyOf["$rssi"], fake.historyOf["$heap"]
	fake.mu.Unlock()
	if rssiReqs == 0 || heapReqs == 0 {
		t.Errorf("history requests: $rssi %d, $heap %d; want both", rssiReqs, heapReqs)
	}
	fleetShot(p, "fleet-desktop.png")

	// 5. New boards: the pending board's facts; adopt with a bad id, then a good one.
	wait("pending board listed", `(li => !!li && /esp32s3/.test(li.innerText) && /a4:cf:12:a1:b2:c3/.test(li.innerText) && /192\.168\.1\.40/.test(li.innerText) && /1\.3\.0/.test(li.innerText))(document.querySelector('#pending-list li[data-pending="esp32-a1b2c3"]'))`)
	wait("nav count", `document.getElementById('pending-count').textContent === '1'`)
	p.Click(`#pending-list button[data-pending="esp32-a1b2c3"]`)
	wait("adopt dialog open", `document.getElementById('adopt-dialog').open && document.getElementById('adopt-id').value === 'esp32-a1b2c3'`)
	p.Do("bad id", chromedp.Evaluate[chromedp.Void](`document.getElementById('adopt-id').value = 'Porch Light'`))
	p.Click(`#adopt-submit`)
	wait("bad id refused", `!document.getElementById('adopt-error').hidden && /lower-case/.test(document.getElementById('adopt-error').textContent) && document.getElementById('adopt-id').getAttribute('aria-invalid') === 'true'`)
	if n := len(fake.recorded(&fake.adopts)); n != 0 {
		t.Errorf("an invalid id was posted (%d adopt requests)", n)
	}
	p.Do("good id", chromedp.Evaluate[chromedp.Void](`document.getElementById('adopt-id').value = ''`), chromedp.SendKeys(`#adopt-id`, "porch"), chromedp.SendKeys(`#adopt-name`, "Porch"))
	fleetShot(p, "fleet-adopt.png")
	p.Click(`#adopt-submit`)
	wait("dialog closed", `!document.getElementById('adopt-dialog').open`)
	wait("porch in the fleet", `window.esp32gw.fleet().includes('porch') && /Porch/.test(document.querySelector('`+row("porch")+`').innerText)`)
	wait("pending list empty", `document.querySelectorAll('#pending-list li').length === 0`)
	if got := fake.recorded(&fake.adopts); len(got) != 1 || got[0] != `{"id":"porch","name":"Porch"}` {
		t.Errorf("adopt bodies %q, want one {\"id\":\"porch\",\"name\":\"Porch\"}", got)
	}

	// 6. Add a board: the exact secrets lines and the steps.
	p.Click(`#add-board`)
	wait("enroll dialog shows the secrets", `document.getElementById('enroll-dialog').open && document.getElementById('enroll-secrets')?.textContent === '#define GW_ENROLL_TOKEN "enr-7f3a9c"\n#define GW_PORT 8080\n'`)
	wait("steps say mDNS", `/mDNS/.test(document.getElementById('enroll-body').innerText) && /New boards/.test(document.getElementById('enroll-body').innerText)`)
	p.Click(`#enroll-dialog button.copy`)
	wait("copy answered", `/Cop(ied|y failed)/.test(document.querySelector('#enroll-dialog .copied').textContent)`)
	fleetShot(p, "fleet-enroll.png")
	p.Click(`#enroll-dialog [data-close]`)
	wait("enroll dialog closed", `!document.getElementById('enroll-dialog').open`)

	// 7. Forget: a board from config.yaml says where to remove it; another goes.
	p.Click(row("kitchen") + ` + tr.fleet-detail button[data-action=forget]`)
	wait("confirm open", `document.getElementById('confirm-dialog').open`)
	p.Click(`#confirm-ok`)
	wait("409 explained", `/defined in config\.yaml; remove it there/.test(document.querySelector('`+row("kitchen")+` + tr.fleet-detail .error').textContent)`)
	p.Click(row("attic") + ` button.details`)
	p.Click(row("attic") + ` + tr.fleet-detail button[data-action=forget]`)
	wait("confirm open", `document.getElementById('confirm-dialog').open`)
	p.Click(`#confirm-ok`)
	wait("attic gone", `!window.esp32gw.fleet().includes('attic') && window.esp32gw.fleet().length === 4`)
	if got := fake.recorded(&fake.deletes); len(got) != 2 || got[0] != "/api/devices/kitchen" || got[1] != "/api/devices/attic" {
		t.Errorf("DELETE requests %q", got)
	}

	// 8. Firmware: a refused upload (dropped) shows the gateway's reason; an accepted one its facts.
	p.Click(`#nav a[data-page="firmware"]`)
	wait("firmware list", `document.querySelectorAll('#fw-list li.fw-item').length === 1 && /1\.3\.0/.test(document.getElementById('fw-list').innerText)`)
	p.Do("drop a bad file", chromedp.Evaluate[chromedp.Void](`(() => {
		const dt = new DataTransfer();
		dt.items.add(new File([new Uint8Array(64)], 'notes.bin'));
		document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
	})()`))
	wait("refusal shown", `/The gateway refused notes\.bin: not an ESP32 app image: first byte 0x00, want 0xe9/.test(document.getElementById('upload-result').textContent)`)
	fleetShot(p, "firmware-refused.png")
	p.Do("pick a good file", chromedp.Evaluate[chromedp.Void](`(() => {
		const b = new Uint8Array(4096); b[0] = 0xE9;
		const dt = new DataTransfer();
		dt.items.add(new File([b], 'demo-1.4.0.bin'));
		const i = document.getElementById('fw-file');
		i.files = dt.files;
		i.dispatchEvent(new Event('change', {bubbles: true}));
	})()`))
	wait("upload facts shown", `(t => /Uploaded demo-1\.4\.0\.bin/.test(t) && /1\.4\.0/.test(t) && /esp32s3/.test(t) && /v5\.3\.1/.test(t) && /4 KiB/.test(t))(document.getElementById('upload-result').innerText)`)
	wait("list has both", `document.querySelectorAll('#fw-list li.fw-item').length === 2`)

	// 9. Plan an update to 1.3.0: the shortcut picks kitchen (1.2.0); esp32 or serial boards are disabled with why.
	p.Click(`#fw-list li[data-sha="` + fleetSHA + `"] button[data-action=plan]`)
	wait("plan open", `!document.getElementById('ota-plan').hidden && document.querySelectorAll('#plan-list input').length === 4`)
	wait("bench disabled with why", `(i => i.disabled && /cannot update/.test(document.getElementById(i.getAttribute('aria-describedby')).textContent))(document.getElementById('plan-bench'))`)
	if chrometest.Eval[bool](p, `document.getElementById('plan-garage').disabled`) {
		t.Error("garage (esp32s3, same project) is disabled")
	}
	p.Click(`#plan-older`)
	wait("older boards selected", `[...document.querySelectorAll('#plan-list input:checked')].map(i => i.value).join(',') === 'kitchen'`)
	p.Click(`#plan-garage`)
	p.Do("parallel", chromedp.Evaluate[chromedp.Void](`document.getElementById('plan-parallel').value = '2'`))
	fleetShot(p, "firmware-plan.png")
	p.Click(`#plan-start`)
	wait("job view", `location.hash === '#/firmware/job/j1' && !document.getElementById('ota-job').hidden`)
	var post struct {
		Firmware string   `json:"firmware"`
		Devices  []string `json:"devices"`
		Parallel int      `json:"parallel"`
	}
	if got := fake.recorded(&fake.otaPosts); len(got) != 1 || json.Unmarshal([]byte(got[0]), &post) != nil {
		t.Fatalf("POST /api/ota bodies %q", got)
	}
	if post.Firmware != fleetSHA || strings.Join(post.Devices, ",") != "garage,kitchen" || post.Parallel != 2 {
		t.Errorf("POST /api/ota %+v", post)
	}

	// 10. The job progresses poll by poll: a partly filled bar, then done.
	wait("downloading with a bar", `(li => !!li && li.dataset.state === 'downloading' && /downloading \d+ %/.test(li.innerText) && (w => w > 0 && w < 100)(parseFloat(li.querySelector('.fill').style.width)) && +li.querySelector('[role=progressbar]').getAttribute('aria-valuenow') > 0)(document.querySelector('#job-list li[data-device="kitchen"]'))`)
	fleetShot(p, "firmware-job-running.png")
	wait("job done", `document.getElementById('job-state').dataset.state === 'done' && /Done · 2 updated/.test(document.getElementById('job-state').textContent)`)
	wait("rows done", `[...document.querySelectorAll('#job-list li')].every(li => li.dataset.state === 'done' && li.querySelector('.fill').style.width === '100%')`)
	wait("no cancel after done", `document.getElementById('job-cancel').hidden`)
	polls := jobPolls("j1")
	// It survives a reload.
	reload()
	wait("job after reload", `document.getElementById('job-state').dataset.state === 'done' && document.querySelectorAll('#job-list li').length === 2`)
	if after := jobPolls("j1"); after != polls+1 {
		t.Errorf("a finished job was polled %d times after the reload, want once", after-polls)
	}
	hash("#/fleet")
	wait("fleet again", `!document.getElementById('page-fleet').hidden`)
	hash("#/firmware")
	wait("last job from localStorage", `!document.getElementById('ota-job').hidden && /j1/.test(document.getElementById('job-title').textContent)`)

	// 11. A job that stops after the first failure.
	p.Click(`#fw-list li[data-sha="` + fleetSHA + `"] button[data-action=plan]`)
	p.Click(`#plan-kitchen`)
	p.Click(`#plan-start`)
	wait("job 2 stopped", `location.hash === '#/firmware/job/j2' && document.getElementById('job-state').dataset.state === 'stopped' && /Stopped after the first failure/.test(document.getElementById('job-state').textContent)`)
	wait("failure reason", `(li => li.dataset.state === 'failed' && /sha256 mismatch after download/.test(li.innerText))(document.querySelector('#job-list li[data-device="kitchen"]'))`)
	wait("skipped reason", `/different chip/.test(document.querySelector('#job-list li[data-device="attic"]').innerText)`)
	fleetShot(p, "firmware-job-stopped.png")

	// 12. A phone: nothing scrolls sideways, on either page.
	p.SetViewport(390, 844, "light", chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch)
	noSideways := `document.documentElement.scrollWidth <= window.innerWidth && document.body.scrollWidth <= window.innerWidth`
	hash("#/fleet")
	reload()
	wait("phone fleet", `document.querySelectorAll('#fleet-body tr[data-device]').length === 4`)
	p.Click(row("kitchen") + ` button.details`)
	// On a loaded machine the tap can land while the freshly loaded page
	// still moves (the pending list renders above the table): tap again
	// until the details are open.
	wait("phone details open", `(() => {
		const d = document.querySelector('`+row("kitchen")+` + tr.fleet-detail');
		if (d && d.hidden) document.querySelector('`+row("kitchen")+` button.details').click();
		return !!d && !d.hidden;
	})()`)
	wait("phone charts", `[...document.querySelectorAll('tr.fleet-detail:not([hidden]) .hist')].filter(h => h.dataset.state === 'ready').length === 2`)
	wait("phone fleet: no horizontal scroll", noSideways)
	fleetShot(p, "fleet-phone.png")
	p.Do("scroll", chromedp.Evaluate[chromedp.Void](`document.querySelector('`+row("kitchen")+` + tr.fleet-detail').scrollIntoView()`))
	fleetShot(p, "fleet-phone-detail.png")
	hash("#/firmware/job/j1")
	wait("phone job", `document.querySelectorAll('#job-list li').length === 2`)
	wait("phone firmware: no horizontal scroll", noSideways)
	fleetShot(p, "firmware-phone.png")
	p.Click(`#nav a[data-page="fleet"]`)
	p.Click(`#add-board`)
	wait("phone enroll", `!!document.getElementById('enroll-secrets')`)
	wait("phone enroll: no horizontal scroll", noSideways)
	fleetShot(p, "fleet-phone-enroll.png")

	// Dark theme, for the screenshots.
	p.Click(`#enroll-dialog [data-close]`)
	p.SetViewport(1280, 900, "dark", chromedp.EmulateScale(1))
	hash("#/fleet")
	reload()
	wait("dark fleet", `document.querySelectorAll('#fleet-body tr[data-device]').length === 4`)
	fleetShot(p, "fleet-dark.png")

	for _, e := range p.Problems("exception", "console.error", "console.warning", "console.assert") {
		t.Errorf("browser: %s", e)
	}
}

// fleetShot saves a PNG of the viewport into $ESP32GW_SCREENSHOT_DIR when that is set.
func fleetShot(p *chrometest.Tab, name string) {
	p.T().Helper()
	huiShot(p, name)
}
