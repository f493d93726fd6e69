package firmware_test

// Fleet features end to end: the native board (the same gwproto core as the
// sketches) against the real esp32gw binary on loopback: enrollment and
// adoption, attributes in the API, on MQTT and in Home Assistant discovery,
// and backfill after the gateway was away.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/mosquittotest"
	"github.com/esp32gw/esp32gw/internal/testgw"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// fleetConfig is a gateway on a loopback port with its state in data/;
// extra holds further top-level keys, devices the device list's entries.
func fleetConfig(id, extra, devices string) string {
	if devices == "" {
		return fmt.Sprintf("gateway_id: %s\nstate_dir: data\nhttp:\n  listen: \"127.0.0.1:0\"\n%sdevices: []\n", id, extra)
	}
	return fmt.Sprintf("gateway_id: %s\nstate_dir: data\nhttp:\n  listen: \"127.0.0.1:0\"\n%sdevices:\n%s", id, extra, devices)
}

// browser opens /ws and returns its reader after the first frame, which
// must be a snapshot.
func browser(t *testing.T, gw *testgw.Gateway) (*testutil.WSReader, testutil.Msg) {
	t.Helper()
	r := testutil.NewWSReader(gw.Dial("/ws"))
	first := r.NextMsg(t, 10*time.Second)
	if first["type"] != "snapshot" {
		t.Fatalf("first /ws frame: %v", first)
	}
	return r, first
}

// snapshotDevice returns the device object with id from a snapshot, or nil.
func snapshotDevice(snap testutil.Msg, id string) map[string]any {
	devs, _ := snap["devices"].([]any)
	for _, d := range devs {
		if m, ok := d.(map[string]any); ok && m["id"] == id {
			return m
		}
	}
	return nil
}

// getJSON GETs path and decodes the answer into v; it fails unless the
// status is 200.
func getJSON(t *testing.T, gw *testgw.Gateway, path string, v any) {
	t.Helper()
	code, body := gw.Get(path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

func pendingByID(t *testing.T, gw *testgw.Gateway, id string) map[string]any {
	t.Helper()
	var l []map[string]any
	getJSON(t, gw, "/api/pending", &l)
	for _, p := range l {
		if p["id"] == id {
			return p
		}
	}
	return nil
}

// metric reads one sample of /metrics; -1 when it is absent.
func metric(t *testing.T, gw *testgw.Gateway, sample string) float64 {
	t.Helper()
	code, body := gw.Get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return -1
	}
	f, _ := strconv.ParseFloat(string(m[1]), 64)
	return f
}

// num is a JSON number from a decoded frame (0, false when it is not one).
func num(v any) (float64, bool) { f, ok := v.(float64); return f, ok }

// TestFleetNativeEnrollAdopt: a native board with only the enroll token
// waits in /api/pending with its attributes (fw, chip, mac) and none of its
// readings reach a browser; adopted over the API as "garage" it prints
// "adopted id=garage", dials /device/garage with its own token and its
// readings flow; after a SIGTERM and a restart on the same state_dir it is
// back with that token; the enroll token under "newboard" is refused from
// then on (a second native board and a plain dial); DELETE forgets it in
// devices.yaml, the API and browsers' snapshots.
func TestFleetNativeEnrollAdopt(t *testing.T) {
	nativeBoard(t) // builds it, or skips without a toolchain
	const enroll = "enroll-0123456789abcdef0123456789"
	gw := testgw.Start(t, fleetConfig("fleet-enroll", "enroll_token: \""+enroll+"\"\n", ""))
	br, _ := browser(t, gw)
	// Every frame the browser reads is checked: no event of the board
	// while it is pending (its readings are not published).
	leak := func(m testutil.Msg) {
		if m["type"] == "event" && m["device"] == "newboard" {
			t.Errorf("a pending board's reading reached a browser: %v", m)
		}
	}
	state := filepath.Join(t.TempDir(), "board.state")
	b := startBoard(t, "--mode", "ws-client", "--url", gw.WSURL("/device/newboard"), "--id", "newboard",
		"--enroll-token", enroll, "--state-file", state, "--fw", "1.4.0", "--chip", "esp32s3",
		"--mac", "24:6F:28:AA:BB:CC", "--interval-ms", "100", "--duration-s", "60",
		"--backoff-min-ms", "100", "--backoff-max-ms", "300")
	out := b.stdoutLines()

	var p map[string]any
	testutil.Eventually(t, 10*time.Second, "newboard in /api/pending with its info", func() bool {
		p = pendingByID(t, gw, "newboard")
		info, _ := p["info"].(map[string]any)
		return info != nil && info["fw"] == "1.4.0" && info["chip"] == "esp32s3" && info["mac"] == "24:6F:28:AA:BB:CC"
	})
	if p["transport"] != "ws-listen" {
		t.Errorf("pending entry: %v", p)
	}
	if code, _ := gw.Get("/api/devices/newboard"); code != http.StatusNotFound {
		t.Errorf("GET /api/devices/newboard while pending: %d, want 404", code)
	}
	// The board counts every 100 ms while pending: a second of browser
	// traffic must hold none of it.
	window := time.After(time.Second)
	for watching := true; watching; {
		select {
		case f, ok := <-br.Frames():
			if !ok {
				t.Fatal("/ws closed while the board was pending")
			}
			var m testutil.Msg
			if json.Unmarshal(f, &m) == nil {
				leak(m)
			}
		case <-window:
			watching = false
		}
	}
	if !strings.Contains(b.stderr.String(), "(enrolling)") {
		t.Errorf("the board did not log an enrolling link:\n%s", b.stderr.String())
	}

	code, body := gw.Do(http.MethodPost, "/api/pending/newboard/adopt",
		[]byte(`{"id":"garage","name":"Garage","commands":["toggle"]}`))
	if code != http.StatusOK {
		t.Fatalf("adopt: %d %s", code, body)
	}
	if l := waitLine(t, out, "adopted", 10*time.Second); l != "adopted id=garage" {
		t.Errorf("board stdout %q, want adopted id=garage", l)
	}
	br.WaitFor(t, 10*time.Second, "a count of garage", func(m testutil.Msg) bool {
		leak(m)
		return m["type"] == "event" && m["device"] == "garage" && m["label"] == "count"
	})
	st, err := os.ReadFile(state)
	tok := regexp.MustCompile(`(?m)^token=(\S+)$`).FindSubmatch(st)
	if err != nil || !bytes.Contains(st, []byte("id=garage\n")) || tok == nil {
		t.Fatalf("board state file %q (%v)", st, err)
	}
	devYAML := filepath.Join(gw.Dir, "data", "devices.yaml")
	y, err := os.ReadFile(devYAML)
	if err != nil || !bytes.Contains(y, []byte("id: garage")) || !bytes.Contains(y, tok[1]) {
		t.Errorf("devices.yaml does not hold garage with the board's token (%v):\n%s", err, y)
	}
	testutil.Eventually(t, 5*time.Second, "the board's link to /device/garage", func() bool {
		return strings.Count(b.stderr.String(), "connected to "+gw.WSURL("/device/garage")) == 1
	})

	// Stop and start the gateway on the same state_dir and port: the board
	// comes back as garage with its own token (the enroll token opens no
	// configured device).
	if err, took := gw.Terminate(); err != nil || took > 5*time.Second {
		t.Fatalf("SIGTERM: %v after %v\n%s", err, took, gw.Logs())
	}
	gw.Restart()
	br, _ = browser(t, gw)
	br.WaitFor(t, 15*time.Second, "a count of garage after the restart", func(m testutil.Msg) bool {
		return m["type"] == "event" && m["device"] == "garage" && m["label"] == "count"
	})
	// (stderr reaches the test a little after the board wrote it.)
	testutil.Eventually(t, 5*time.Second, "the board's second link to /device/garage", func() bool {
		return strings.Count(b.stderr.String(), "connected to "+gw.WSURL("/device/garage")) == 2
	})

	// The enroll token under the id the board enrolled with is refused now:
	// a second native board with a fresh state file, and a plain dial.
	b2 := startBoard(t, "--mode", "ws-client", "--url", gw.WSURL("/device/newboard"), "--id", "newboard",
		"--enroll-token", enroll, "--state-file", filepath.Join(t.TempDir(), "fresh.state"),
		"--interval-ms", "100", "--duration-s", "30", "--backoff-min-ms", "100", "--backoff-max-ms", "300")
	testutil.Eventually(t, 10*time.Second, "the second board refused", func() bool {
		return strings.Contains(b2.stderr.String(), "handshake refused: HTTP/1.1 403")
	})
	b2.stop(t, true)
	if strings.Contains(b2.stderr.String(), "connected to") {
		t.Errorf("a board with the enroll token got a link under newboard:\n%s", b2.stderr.String())
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+enroll)
	c, resp, err := websocket.DefaultDialer.Dial(gw.WSURL("/device/newboard"), h)
	if err == nil {
		c.Close()
		t.Error("the enroll token opened /device/newboard after adoption")
	} else if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("enroll token on /device/newboard: %v %v, want 403", resp, err)
	} else {
		why, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(why), "already adopted as garage") {
			t.Errorf("refusal body %q", why)
		}
	}
	if p := pendingByID(t, gw, "newboard"); p != nil {
		t.Errorf("newboard pending again after adoption: %v", p)
	}

	// Forget it.
	if code, body := gw.Do(http.MethodDelete, "/api/devices/garage", nil); code != http.StatusNoContent {
		t.Fatalf("DELETE /api/devices/garage: %d %s", code, body)
	}
	br.WaitFor(t, 10*time.Second, "a snapshot without garage", func(m testutil.Msg) bool {
		return m["type"] == "snapshot" && snapshotDevice(m, "garage") == nil
	})
	if code, _ := gw.Get("/api/devices/garage"); code != http.StatusNotFound {
		t.Errorf("GET /api/devices/garage after DELETE: %d, want 404", code)
	}
	var all struct{ Devices []map[string]any }
	getJSON(t, gw, "/api/devices", &all)
	for _, d := range all.Devices {
		if d["id"] == "garage" {
			t.Errorf("/api/devices still lists garage: %v", d)
		}
	}
	if y, _ := os.ReadFile(devYAML); bytes.Contains(y, []byte("garage")) {
		t.Errorf("devices.yaml still holds garage:\n%s", y)
	}
	if _, snap := browser(t, gw); snapshotDevice(snap, "garage") != nil {
		t.Errorf("a new browser's snapshot still holds garage")
	}
	b.stop(t, true)
	if t.Failed() {
		t.Logf("gateway log:\n%s", gw.Logs())
	}
}

// mqttWatch collects the messages of an MQTT subscription.
type mqttWatch struct {
	mu   sync.Mutex
	msgs []mqtt.Message
}

// find is the first message on topic: for a subscriber that came after
// the publish, the retained copy (the broker sends it before any newer one).
func (w *mqttWatch) find(topic string) mqtt.Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.msgs {
		if m.Topic() == topic {
			return m
		}
	}
	return nil
}

// TestFleetNativeAttributes: the $ attributes a native board sends appear
// as "info" in /api/devices/{id} (names without $, not as sensor labels),
// on MQTT as the retained esp32gw/<device>/info, and in Home Assistant
// discovery as the diagnostic sensors info_rssi and info_uptime.
func TestFleetNativeAttributes(t *testing.T) {
	nativeBoard(t)
	broker := mosquittotest.Start(t, mosquittotest.Options{}) // skips (fails under CI) without mosquitto
	mq := fmt.Sprintf(`mqtt:
  enabled: true
  broker: %q
  client_id: "fleet-attrs"
  topic_prefix: "esp32gw"
  qos: 1
  retain: true
  homeassistant: {enabled: true, prefix: "homeassistant"}
`, broker.URL())
	gw := testgw.Start(t, fleetConfig("fleet-attrs", mq, `  - id: garage
    transport: ws-listen
    token: "garage-token-0123456789"
`))
	startBoard(t, "--mode", "ws-client", "--url", gw.WSURL("/device/garage"), "--token", "garage-token-0123456789",
		"--id", "garage", "--fw", "2.1.0", "--project", "garage-door", "--chip", "esp32s3",
		"--mac", "24:6F:28:01:02:03", "--attr-every-s", "1", "--interval-ms", "200", "--duration-s", "60",
		"--backoff-min-ms", "100", "--backoff-max-ms", "300")

	var dev struct {
		Info   map[string]any `json:"info"`
		Labels map[string]any `json:"labels"`
	}
	testutil.Eventually(t, 10*time.Second, "garage's info in /api/devices/garage", func() bool {
		getJSON(t, gw, "/api/devices/garage", &dev)
		return dev.Info["fw"] == "2.1.0" && dev.Info["uptime"] != nil
	})
	want := map[string]any{"fw": "2.1.0", "project": "garage-door", "chip": "esp32s3",
		"mac": "24:6F:28:01:02:03", "ip": "127.0.0.1", "reset": "POWERON"}
	for k, v := range want {
		if dev.Info[k] != v {
			t.Errorf("info.%s = %v, want %v (info %v)", k, dev.Info[k], v, dev.Info)
		}
	}
	if rssi, ok := num(dev.Info["rssi"]); !ok || rssi > -30 || rssi < -100 {
		t.Errorf("info.rssi = %v", dev.Info["rssi"])
	}
	for _, k := range []string{"heap", "uptime"} {
		if _, ok := num(dev.Info[k]); !ok {
			t.Errorf("info.%s = %v, want a number", k, dev.Info[k])
		}
	}
	for k := range dev.Info {
		if strings.HasPrefix(k, "$") {
			t.Errorf("info key %q keeps its $", k)
		}
	}
	for k := range dev.Labels {
		if strings.HasPrefix(k, "$") {
			t.Errorf("attribute %q is a sensor label: %v", k, dev.Labels)
		}
	}

	// A retained message keeps its retain flag only for a subscriber that
	// was not there when it was published. So: wait until the gateway has
	// published all three (live or retained), then subscribe afresh and
	// take what arrives then, which can only be the retained copies.
	const (
		infoTopic   = "esp32gw/garage/info"
		rssiTopic   = "homeassistant/sensor/esp32gw_garage/info_rssi/config"
		uptimeTopic = "homeassistant/sensor/esp32gw_garage/info_uptime/config"
	)
	watch := func(id string) *mqttWatch {
		w := &mqttWatch{}
		o := mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID(id).
			SetCleanSession(true).SetAutoReconnect(false)
		cl := mqtt.NewClient(o)
		if tk := cl.Connect(); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
			t.Fatalf("mqtt connect: %v", tk.Error())
		}
		t.Cleanup(func() { cl.Disconnect(100) })
		for _, f := range []string{infoTopic, "homeassistant/sensor/esp32gw_garage/+/config"} {
			tk := cl.Subscribe(f, 1, func(_ mqtt.Client, m mqtt.Message) {
				w.mu.Lock()
				w.msgs = append(w.msgs, m)
				w.mu.Unlock()
			})
			if !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
				t.Fatalf("subscribe %s: %v", f, tk.Error())
			}
		}
		testutil.Eventually(t, 10*time.Second, "info and discovery configs on the broker", func() bool {
			return w.find(infoTopic) != nil && w.find(rssiTopic) != nil && w.find(uptimeTopic) != nil
		})
		return w
	}
	watch("fleet-attrs-first")
	w := watch("fleet-attrs-late")
	info := w.find(infoTopic)
	var im map[string]any
	if err := json.Unmarshal(info.Payload(), &im); err != nil {
		t.Fatalf("%s: %v: %s", infoTopic, err, info.Payload())
	}
	if !info.Retained() {
		t.Errorf("%s was not retained", infoTopic)
	}
	for k, v := range want {
		if im[k] != v {
			t.Errorf("MQTT info.%s = %v, want %v (%s)", k, im[k], v, info.Payload())
		}
	}
	for _, k := range []string{"rssi", "heap", "uptime"} {
		if _, ok := num(im[k]); !ok {
			t.Errorf("MQTT info.%s = %v, want a number", k, im[k])
		}
	}
	for topic, field := range map[string]string{rssiTopic: "rssi", uptimeTopic: "uptime"} {
		m := w.find(topic)
		var cfg map[string]any
		if err := json.Unmarshal(m.Payload(), &cfg); err != nil {
			t.Fatalf("%s: %v: %s", topic, err, m.Payload())
		}
		if !m.Retained() {
			t.Errorf("%s was not retained", topic)
		}
		tmpl, _ := cfg["value_template"].(string)
		if cfg["entity_category"] != "diagnostic" || cfg["state_topic"] != infoTopic || !strings.Contains(tmpl, field) {
			t.Errorf("%s: %s; want a diagnostic sensor of info's %s", topic, m.Payload(), field)
		}
		if d, _ := cfg["device"].(map[string]any); d == nil {
			t.Errorf("%s has no device block: %s", topic, m.Payload())
		}
	}
	if t.Failed() {
		t.Logf("gateway log:\n%s", gw.Logs())
	}
}

// TestFleetNativeBackfill: a native board counts on while the gateway is
// stopped (SIGTERM) and restarted on the same port and state_dir. On its
// new link it sends its newest buffered count first, which a browser
// connected through the reconnect sees live, then the older ones, which
// the gateway keeps as history only (counted, never on /ws); the history
// holds every count in order; the events that follow are live, rising.
func TestFleetNativeBackfill(t *testing.T) {
	nativeBoard(t)
	gw := testgw.Start(t, fleetConfig("fleet-backfill", "", `  - id: garage
    transport: ws-listen
    token: "garage-token-0123456789"
`))
	// A backoff of 1.5-2.5 s once the gateway is gone: the browser is
	// connected to the restarted gateway before the board comes back.
	b := startBoard(t, "--mode", "ws-client", "--url", gw.WSURL("/device/garage"), "--token", "garage-token-0123456789",
		"--id", "garage", "--interval-ms", "100", "--duration-s", "60",
		"--backoff-min-ms", "1500", "--backoff-max-ms", "2500")
	br, _ := browser(t, gw)
	isCount := func(m testutil.Msg) bool {
		return m["type"] == "event" && m["device"] == "garage" && m["label"] == "count"
	}
	br.WaitFor(t, 10*time.Second, "a count of garage", isCount)
	br.WaitFor(t, 5*time.Second, "another count of garage", isCount)

	var cut time.Time
	for attempt := 1; ; attempt++ {
		if err, took := gw.Terminate(); err != nil || took > 5*time.Second {
			t.Fatalf("SIGTERM: %v after %v\n%s", err, took, gw.Logs())
		}
		cut = time.Now()
		time.Sleep(1500 * time.Millisecond) // the outage: the board buffers about 15 counts
		gw.Restart()
		var snap testutil.Msg
		br, snap = browser(t, gw)
		if d := snapshotDevice(snap, "garage"); d != nil && d["online"] == false {
			break
		}
		// The board got back before the browser: its reconnect went by
		// unseen. Cut it again (rare: the board waits at least 0.75 s).
		if attempt == 3 {
			t.Fatalf("the board beat the browser to the restarted gateway three times")
		}
		t.Logf("attempt %d: the board was back before the browser; again", attempt)
	}
	br.WaitFor(t, 10*time.Second, "garage online", func(m testutil.Msg) bool {
		return m["type"] == "status" && m["device"] == "garage" && m["online"] == true
	})

	// Every count event after the reconnect: the newest buffered one first,
	// then live ones, each one more than the one before, ts and seq rising.
	type ev struct {
		value float64
		ts    time.Time
		seq   float64
	}
	var evs []ev
	for len(evs) < 6 {
		m := br.WaitFor(t, 5*time.Second, "counts after the reconnect", isCount)
		v, _ := num(m["value"])
		s, _ := num(m["seq"])
		ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["ts"]))
		if err != nil {
			t.Fatalf("event ts %v: %v", m["ts"], err)
		}
		evs = append(evs, ev{v, ts, s})
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].value != evs[i-1].value+1 || !evs[i].ts.After(evs[i-1].ts) || evs[i].seq <= evs[i-1].seq {
			t.Errorf("/ws events after the reconnect are not live and rising: %+v", evs)
			break
		}
	}
	newest := int(evs[0].value)
	if evs[0].ts.Before(cut) || evs[0].ts.After(cut.Add(10*time.Second)) {
		t.Errorf("the first count after the reconnect has ts %v; it should be the newest buffered one (outage from %v)", evs[0].ts, cut)
	}
	m := regexp.MustCompile(`backfill: sending (\d+) buffered readings`).FindAllStringSubmatch(b.stderr.String(), -1)
	if m == nil {
		t.Fatalf("the board logged no backfill:\n%s", b.stderr.String())
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	if n < 5 {
		t.Fatalf("%d buffered readings over a 1.5 s outage at 100 ms", n)
	}
	// The n-1 older ones were backfill at the gateway: history only.
	testutil.Eventually(t, 5*time.Second, "the backfill counted", func() bool {
		return metric(t, gw, "esp32gw_backfilled_readings_total") >= float64(n-1)
	})
	if got := metric(t, gw, "esp32gw_backfilled_readings_total"); got != float64(n-1) {
		t.Errorf("esp32gw_backfilled_readings_total = %v, want %d (the buffered readings but the newest)", got, n-1)
	}

	// History from just before the cut: every count in order, the
	// buffered ones with their own (outage) times.
	first := newest - n + 1
	last := int(evs[len(evs)-1].value)
	var h struct {
		Resolution string
		Points     []struct {
			TS    time.Time
			Value float64
		}
	}
	q := url.Values{"label": {"count"}, "from": {strconv.FormatInt(cut.Add(-2*time.Second).UnixMilli(), 10)}, "max_points": {"10000"}}
	testutil.Eventually(t, 10*time.Second, "the history up to the last live count", func() bool {
		getJSON(t, gw, "/api/devices/garage/history?"+q.Encode(), &h)
		return len(h.Points) > 0 && int(h.Points[len(h.Points)-1].Value) >= last
	})
	if h.Resolution != "raw" {
		t.Errorf("history resolution %q, want raw", h.Resolution)
	}
	seen := map[int]time.Time{}
	for i, p := range h.Points {
		if i > 0 && (p.Value <= h.Points[i-1].Value || p.TS.Before(h.Points[i-1].TS)) {
			t.Errorf("history out of order at %d: %v after %v", i, p, h.Points[i-1])
		}
		seen[int(p.Value)] = p.TS
	}
	for v := first; v <= last; v++ {
		ts, ok := seen[v]
		if !ok {
			t.Errorf("count %d (buffered %d..%d, live to %d) missing from the history", v, first, newest, last)
			continue
		}
		if v <= newest && (ts.Before(cut.Add(-time.Second)) || ts.After(evs[0].ts)) {
			t.Errorf("buffered count %d has ts %v, outside the outage (cut at %v)", v, ts, cut)
		}
	}
	// And none of the older buffered counts went out live: the browser
	// saw newest first and nothing below it afterwards (checked above: each
	// event one more than the one before), and nothing below it is still
	// unread.
	for draining := true; draining; {
		select {
		case f, ok := <-br.Frames():
			var fm testutil.Msg
			if ok && json.Unmarshal(f, &fm) == nil && isCount(fm) {
				if v, _ := num(fm["value"]); int(v) < newest {
					t.Errorf("a buffered count reached the browser live: %v", fm)
				}
			}
			draining = ok
		default:
			draining = false
		}
	}
	b.stop(t, true)
	if t.Failed() {
		t.Logf("gateway log:\n%s", gw.Logs())
	}
}
