package contracttest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/esp32gw/esp32gw/internal/mosquittotest"
	"github.com/esp32gw/esp32gw/internal/testgw"
)

type mqttMsg struct {
	topic    string
	payload  string
	retained bool
	qos      byte
}

// watcher is an MQTT client that records everything under its filters.
type watcher struct {
	c    mqtt.Client
	mu   sync.Mutex
	msgs []mqttMsg
	news chan struct{}
}

var clientSeq sync.Mutex
var clientN int

func newWatcher(t *testing.T, b *mosquittotest.Broker, filters ...string) *watcher {
	t.Helper()
	clientSeq.Lock()
	clientN++
	id := fmt.Sprintf("ct-%d-%d", time.Now().UnixNano()%1e6, clientN)
	clientSeq.Unlock()
	w := &watcher{news: make(chan struct{}, 1)}
	o := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(id).SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true)
	w.c = mqtt.NewClient(o)
	if tk := w.c.Connect(); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt connect: %v", tk.Error())
	}
	t.Cleanup(func() { w.c.Disconnect(100) })
	for _, f := range filters {
		tk := w.c.Subscribe(f, 1, func(_ mqtt.Client, m mqtt.Message) {
			w.mu.Lock()
			w.msgs = append(w.msgs, mqttMsg{m.Topic(), string(m.Payload()), m.Retained(), m.Qos()})
			w.mu.Unlock()
			select {
			case w.news <- struct{}{}:
			default:
			}
		})
		if !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
			t.Fatalf("subscribe %s: %v", f, tk.Error())
		}
	}
	return w
}

func (w *watcher) all() []mqttMsg {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]mqttMsg(nil), w.msgs...)
}

// wait returns the first message from index from on that matches.
func (w *watcher) wait(t *testing.T, from int, within time.Duration, what string, pred func(mqttMsg) bool) (mqttMsg, int) {
	t.Helper()
	deadline := time.After(within)
	for {
		ms := w.all()
		for i := from; i < len(ms); i++ {
			if pred(ms[i]) {
				return ms[i], i
			}
		}
		select {
		case <-w.news:
		case <-deadline:
			var last []string
			for _, m := range ms[max(0, len(ms)-8):] {
				last = append(last, fmt.Sprintf("%s %q r=%v", m.topic, m.payload, m.retained))
			}
			t.Fatalf("MQTT: no %s within %v; last: %s", what, within, strings.Join(last, "; "))
		}
	}
}

func topicIs(topic string) func(mqttMsg) bool {
	return func(m mqttMsg) bool { return m.topic == topic }
}

func (w *watcher) publish(t *testing.T, topic, payload string, retained bool) {
	t.Helper()
	tk := w.c.Publish(topic, 1, retained, payload)
	if !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tk.Error())
	}
}

func mqttConfig(b *mosquittotest.Broker, clientID, extra string) string {
	return fmt.Sprintf(`mqtt:
  enabled: true
  broker: "%s"
  client_id: "%s"
  topic_prefix: "esp32gw"
  qos: 1
  retain: true
%s`, b.URL(), clientID, extra)
}

func TestMQTT(t *testing.T) {
	t.Parallel()
	b := mosquittotest.Start(t, mosquittotest.Options{})
	pre := newWatcher(t, b)
	// A ghost command, retained before the gateway starts: must be ignored.
	pre.publish(t, "esp32gw/demo/set/ghost", "toggle", true)

	g := testgw.Start(t, header("gw1", mqttConfig(b, "gw1-ct", "  homeassistant: {enabled: true, prefix: \"homeassistant\"}\n"))+`  - id: demo
    name: "Demo board"
    transport: sim
    sim: {board: tutorial, interval: 100ms}
    commands: [toggle]
  - id: relays
    transport: sim
    sim: {board: relay, interval: 100ms}
    commands: ["on", "off", toggle]
    command_format: json
  - id: climate
    transport: sim
    sim: {board: climate, interval: 100ms}
  - id: lb
    transport: ws-listen
    token: "lb-token-0123456789"
    commands: [toggle]
`)
	live := newWatcher(t, b, "esp32gw/#")
	live.wait(t, 0, 10*time.Second, "bridge/state online", func(m mqttMsg) bool {
		return m.topic == "esp32gw/bridge/state" && m.payload == "online"
	})
	// Values have been published once the sims reported.
	live.wait(t, 0, 10*time.Second, "climate/temperature", topicIs("esp32gw/climate/temperature"))
	live.wait(t, 0, 10*time.Second, "relays/relay1", topicIs("esp32gw/relays/relay1"))

	t.Run("retained state for a new subscriber", func(t *testing.T) {
		// The states are published once after the connect (a subscriber
		// that was already there sees them live, not retained): wait until
		// each has been published, then a new subscriber must get it retained.
		for _, topic := range []string{"demo/status", "relays/status", "climate/status", "lb/status", "demo/meta", "demo/count"} {
			live.wait(t, 0, 10*time.Second, topic, topicIs("esp32gw/"+topic))
		}
		w := newWatcher(t, b, "esp32gw/#")
		retained := func(topic string) mqttMsg {
			m, _ := w.wait(t, 0, 5*time.Second, "retained "+topic, func(m mqttMsg) bool { return m.topic == topic && m.retained })
			return m
		}
		if m := retained("esp32gw/bridge/state"); m.payload != "online" {
			t.Errorf("bridge/state retained %q, want online", m.payload)
		}
		for _, id := range []string{"demo", "relays", "climate"} {
			if m := retained("esp32gw/" + id + "/status"); m.payload != "online" {
				t.Errorf("%s/status retained %q, want online", id, m.payload)
			}
		}
		if m := retained("esp32gw/lb/status"); m.payload != "offline" {
			t.Errorf("lb/status (no board connected) retained %q, want offline", m.payload)
		}
		var meta msg
		m := retained("esp32gw/demo/meta")
		if err := json.Unmarshal([]byte(m.payload), &meta); err != nil {
			t.Fatalf("demo/meta not JSON: %q", m.payload)
		}
		want := msg{"gateway": "gw1", "name": "Demo board", "transport": "sim", "commands": []any{"toggle"}}
		for k, v := range want {
			if !reflect.DeepEqual(meta[k], v) {
				t.Errorf("demo/meta %s = %v, want %v (%s)", k, meta[k], v, m.payload)
			}
		}
		v := retained("esp32gw/demo/count")
		var n float64
		if err := json.Unmarshal([]byte(v.payload), &n); err != nil {
			t.Errorf("demo/count payload %q is not a JSON number", v.payload)
		}
		if v.qos != 1 {
			t.Errorf("demo/count delivered at QoS %d to a QoS 1 subscriber, want 1 (qos: 1 in config)", v.qos)
		}
		if v := retained("esp32gw/demo/ledStatus"); v.payload != `"LED ON"` && v.payload != `"LED OFF"` {
			t.Errorf("demo/ledStatus payload %q, want JSON text \"LED ON\"/\"LED OFF\"", v.payload)
		}
	})

	result := func(t *testing.T, topic, payload string) msg {
		t.Helper()
		from := len(live.all())
		live.publish(t, topic, payload, false)
		m, _ := live.wait(t, from, 3*time.Second, topic+"/result", topicIs(topic+"/result"))
		var r msg
		if err := json.Unmarshal([]byte(m.payload), &r); err != nil {
			t.Fatalf("%s/result not JSON: %q", topic, m.payload)
		}
		return r
	}

	t.Run("set → command → result ok", func(t *testing.T) {
		from := len(live.all())
		if r := result(t, "esp32gw/demo/set/led", "toggle"); !reflect.DeepEqual(r, msg{"ok": true}) {
			t.Errorf("result %v, want {\"ok\":true}", r)
		}
		// The tutorial board flips its LED.
		live.wait(t, from, 3*time.Second, "demo/ledStatus after toggle", topicIs("esp32gw/demo/ledStatus"))
		// JSON string and plain text are the same command value.
		for _, p := range []string{`"on"`, `on`, `off`} {
			if r := result(t, "esp32gw/relays/set/relay1", p); !reflect.DeepEqual(r, msg{"ok": true}) {
				t.Errorf("relays/set/relay1 %q → %v, want {\"ok\":true}", p, r)
			}
		}
	})

	t.Run("not allowed / offline → ok:false with an error", func(t *testing.T) {
		for _, c := range [][2]string{{"esp32gw/demo/set/led", "explode"}, {"esp32gw/demo/set/led", "1"}, {"esp32gw/lb/set/led", "toggle"}} {
			r := result(t, c[0], c[1])
			// "code" is additive (docs/contract-notes.md): the error's stable name.
			if r["ok"] != false || str(r, "error") == "" || len(r) != 3 || (str(r, "code") != "not_allowed" && str(r, "code") != "offline") {
				t.Errorf("%s %q → %v, want {\"ok\":false,\"error\":\"…\",\"code\":\"not_allowed\"|\"offline\"}", c[0], c[1], r)
			}
		}
	})

	t.Run("retained set messages are ignored", func(t *testing.T) {
		// The ghost was delivered (retained) when the gateway subscribed.
		// A live command on the same topic gets one result; a later barrier
		// proves nothing else was answered.
		from := 0
		result(t, "esp32gw/demo/set/ghost", "toggle")
		result(t, "esp32gw/demo/set/led", "toggle")
		n := 0
		for _, m := range live.all()[from:] {
			if m.topic == "esp32gw/demo/set/ghost/result" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d results on demo/set/ghost/result, want 1 (the retained command must be ignored)", n)
		}
		for _, m := range live.all() {
			if strings.Contains(m.topic, "/set/") && !strings.HasSuffix(m.topic, "/result") && m.retained && m.topic != "esp32gw/demo/set/ghost" {
				t.Errorf("a retained command on %s: %q", m.topic, m.payload)
			}
		}
	})

	t.Run("Home Assistant discovery", func(t *testing.T) {
		ha := newWatcher(t, b, "homeassistant/#")
		type cfg struct {
			component string
			topic     string
			body      msg
		}
		collect := func(from int) []cfg {
			var out []cfg
			for _, m := range ha.all()[from:] {
				parts := strings.Split(m.topic, "/")
				if len(parts) < 4 || parts[len(parts)-1] != "config" || m.payload == "" {
					continue
				}
				var body msg
				if json.Unmarshal([]byte(m.payload), &body) != nil {
					t.Errorf("discovery %s not JSON: %q", m.topic, m.payload)
					continue
				}
				out = append(out, cfg{parts[1], m.topic, body})
			}
			return out
		}
		find := func(cs []cfg, pred func(cfg) bool) *cfg {
			for i := range cs {
				if pred(cs[i]) {
					return &cs[i]
				}
			}
			return nil
		}
		stateIs := func(comp, topic string) func(cfg) bool {
			return func(c cfg) bool { return c.component == comp && str(c.body, "state_topic") == topic }
		}
		ha.wait(t, 0, 5*time.Second, "retained discovery for climate/temperature", func(m mqttMsg) bool {
			return m.retained && strings.Contains(m.payload, "esp32gw/climate/temperature")
		})
		ha.wait(t, 0, 5*time.Second, "discovery for relays/relay1", func(m mqttMsg) bool {
			return strings.Contains(m.payload, "esp32gw/relays/relay1\"")
		})
		checks := []struct {
			what string
			pred func(cfg) bool
		}{
			{"sensor for climate/temperature (numeric)", stateIs("sensor", "esp32gw/climate/temperature")},
			{"sensor for demo/count (numeric)", stateIs("sensor", "esp32gw/demo/count")},
			{"an entity for relays/relay1 (on/off)", func(c cfg) bool {
				return str(c.body, "state_topic") == "esp32gw/relays/relay1" && (c.component == "binary_sensor" || c.component == "switch")
			}},
			{"button with payload_press toggle, or a switch, for demo's command", func(c cfg) bool {
				ct := str(c.body, "command_topic")
				return strings.HasPrefix(ct, "esp32gw/demo/set/") &&
					((c.component == "button" && str(c.body, "payload_press") == "toggle") || c.component == "switch")
			}},
		}
		// The configs arrive in no particular order: wait (bounded) until
		// every expected one is there, then check them.
		cs := collect(0)
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); cs = collect(0) {
			all := find(cs, stateIs("binary_sensor", "esp32gw/relays/relay1")) != nil
			for _, ck := range checks {
				all = all && find(cs, ck.pred) != nil
			}
			if all {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, ck := range checks {
			c := find(cs, ck.pred)
			if c == nil {
				var topics []string
				for _, c := range cs {
					topics = append(topics, c.topic)
				}
				t.Errorf("no discovery config: %s (have %v)", ck.what, topics)
				continue
			}
			if str(c.body, "unique_id") == "" {
				t.Errorf("%s: no unique_id: %v", c.topic, c.body)
			}
			if _, ok := c.body["device"].(map[string]any); !ok {
				t.Errorf("%s: no device block: %v", c.topic, c.body)
			}
			dev := strings.Split(strings.TrimPrefix(str(c.body, "state_topic")+str(c.body, "command_topic"), "esp32gw/"), "/")[0]
			if av, _ := json.Marshal(c.body); !strings.Contains(string(av), `"esp32gw/`+dev+`/status"`) {
				t.Errorf("%s: availability is not the device's status topic esp32gw/%s/status: %v", c.topic, dev, c.body)
			}
		}
		t.Run("on/off-like label is a binary_sensor", func(t *testing.T) {
			if find(cs, stateIs("binary_sensor", "esp32gw/relays/relay1")) == nil {
				t.Errorf("no binary_sensor for relays/relay1")
			}
		})
		// unique_ids are distinct.
		seen := map[string]string{}
		for _, c := range cs {
			id := str(c.body, "unique_id")
			if prev, ok := seen[id]; ok && prev != c.topic {
				t.Errorf("unique_id %q on %s and %s", id, prev, c.topic)
			}
			seen[id] = c.topic
		}
		// Re-sent when Home Assistant comes online.
		from := len(ha.all())
		ha.publish(t, "homeassistant/status", "online", false)
		ha.wait(t, from, 5*time.Second, "discovery re-sent after homeassistant/status online", func(m mqttMsg) bool {
			return strings.HasSuffix(m.topic, "/config") && strings.Contains(m.payload, "esp32gw/climate/temperature")
		})
	})

	t.Run("board attributes: info topic and Home Assistant entities", func(t *testing.T) {
		// DESIGN.md: PREFIX/<device>/info is the retained JSON of the
		// board's $ attributes; $rssi and $uptime are diagnostic sensors,
		// $fw an update entity.
		from := len(live.all())
		ha := newWatcher(t, b, "homeassistant/+/esp32gw_lb/#")
		bd := dialBoard(t, g, "lb", "lb-token-0123456789", true)
		bd.send(t, `{"$fw":"1.2.0","$project":"weather","$chip":"esp32s3","$rssi":-61,"$uptime":12,"temp":20}`)
		m, _ := live.wait(t, from, 5*time.Second, "lb/info", topicIs("esp32gw/lb/info"))
		var info msg
		if err := json.Unmarshal([]byte(m.payload), &info); err != nil {
			t.Fatalf("lb/info not JSON: %q", m.payload)
		}
		if want := (msg{"fw": "1.2.0", "project": "weather", "chip": "esp32s3", "rssi": float64(-61), "uptime": float64(12)}); !reflect.DeepEqual(info, want) {
			t.Errorf("lb/info = %v, want %v", info, want)
		}
		for _, m := range live.all()[from:] {
			if strings.Contains(m.topic, "$") || m.topic == "esp32gw/lb/rssi" || m.topic == "esp32gw/lb/fw" {
				t.Errorf("an attribute published as a value: %s %s", m.topic, m.payload)
			}
		}
		// A change replaces it; a late subscriber gets the newest, retained.
		bd.send(t, `{"$rssi":-55}`)
		live.wait(t, from, 5*time.Second, "lb/info after $rssi changed", func(m mqttMsg) bool {
			return m.topic == "esp32gw/lb/info" && strings.Contains(m.payload, `"rssi":-55`)
		})
		late := newWatcher(t, b, "esp32gw/lb/info")
		if m, _ := late.wait(t, 0, 5*time.Second, "retained lb/info", topicIs("esp32gw/lb/info")); !m.retained || !strings.Contains(m.payload, `"rssi":-55`) {
			t.Errorf("late subscriber: lb/info %q retained=%v", m.payload, m.retained)
		}
		// Home Assistant: two diagnostic sensors on the info topic, an update entity.
		want := map[string]msg{
			"rssi":   {"state_topic": "esp32gw/lb/info", "value_template": "{{ value_json.rssi }}", "entity_category": "diagnostic", "device_class": "signal_strength", "unit_of_measurement": "dBm"},
			"uptime": {"state_topic": "esp32gw/lb/info", "value_template": "{{ value_json.uptime }}", "entity_category": "diagnostic", "device_class": "duration", "unit_of_measurement": "s"},
		}
		got := map[string]msg{}
		var update msg
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && (len(got) < 2 || update == nil); time.Sleep(20 * time.Millisecond) {
			for _, m := range ha.all() {
				var body msg
				if m.payload == "" || json.Unmarshal([]byte(m.payload), &body) != nil {
					continue
				}
				switch {
				case strings.HasPrefix(m.topic, "homeassistant/update/"):
					update = body
				case strings.HasPrefix(m.topic, "homeassistant/sensor/") && str(body, "state_topic") == "esp32gw/lb/info":
					got[strings.TrimSuffix(strings.TrimPrefix(str(body, "value_template"), "{{ value_json."), " }}")] = body
				}
			}
		}
		for attr, kv := range want {
			for k, v := range kv {
				if got[attr][k] != v {
					t.Errorf("%s sensor: %s = %v, want %v (%v)", attr, k, got[attr][k], v, got[attr])
				}
			}
			if str(got[attr], "unique_id") == "" || got[attr]["device"] == nil || str(got[attr], "availability_topic") != "esp32gw/lb/status" {
				t.Errorf("%s sensor: unique_id, device block, availability: %v", attr, got[attr])
			}
		}
		if update == nil {
			t.Fatalf("no update entity for a board that reports $fw")
		}
		st := str(update, "state_topic")
		if !strings.HasPrefix(st, "esp32gw/lb/") || str(update, "unique_id") == "" || str(update, "availability_topic") != "esp32gw/lb/status" {
			t.Fatalf("update entity: %v", update)
		}
		us := newWatcher(t, b, st)
		m, _ = us.wait(t, 0, 5*time.Second, "update entity state", topicIs(st))
		var state msg
		if err := json.Unmarshal([]byte(m.payload), &state); err != nil || state["installed_version"] != "1.2.0" || state["in_progress"] != false {
			t.Errorf("update state %q", m.payload)
		}
		// Progress from $ota.
		bd.send(t, `{"$ota":{"state":"downloading","progress":42}}`)
		us.wait(t, 0, 5*time.Second, "update state in progress", func(m mqttMsg) bool {
			var s msg
			return json.Unmarshal([]byte(m.payload), &s) == nil && s["in_progress"] == true && s["update_percentage"] == float64(42)
		})
	})

	t.Run("clean shutdown publishes offline states", func(t *testing.T) {
		err, took := g.Stop()
		if err != nil || took > 5*time.Second {
			t.Fatalf("SIGINT: %v after %v, want exit 0 within 5 s", err, took)
		}
		w := newWatcher(t, b, "esp32gw/#")
		for _, topic := range []string{"esp32gw/bridge/state", "esp32gw/demo/status", "esp32gw/relays/status", "esp32gw/climate/status"} {
			m, _ := w.wait(t, 0, 5*time.Second, "retained "+topic, func(m mqttMsg) bool { return m.topic == topic && m.retained })
			if m.payload != "offline" {
				t.Errorf("after a clean shutdown %s retained %q, want offline", topic, m.payload)
			}
		}
		// Clear the ghost so nothing leaks.
		pre.publish(t, "esp32gw/demo/set/ghost", "", true)
	})
}

func TestMQTTLastWill(t *testing.T) {
	t.Parallel()
	b := mosquittotest.Start(t, mosquittotest.Options{})
	g := testgw.Start(t, header("gw1", mqttConfig(b, "gw1-lwt", ""))+`  - id: demo
    transport: sim
    sim: {board: tutorial, interval: 100ms}
`)
	w := newWatcher(t, b, "esp32gw/bridge/state")
	w.wait(t, 0, 10*time.Second, "bridge/state online", func(m mqttMsg) bool { return m.payload == "online" })
	from := len(w.all())
	g.Kill()
	w.wait(t, from, 10*time.Second, "bridge/state offline (Last Will) after SIGKILL", func(m mqttMsg) bool { return m.payload == "offline" })
	w2 := newWatcher(t, b, "esp32gw/bridge/state")
	m, _ := w2.wait(t, 0, 5*time.Second, "retained bridge/state", func(m mqttMsg) bool { return m.retained })
	if m.payload != "offline" {
		t.Errorf("retained bridge/state after SIGKILL %q, want offline", m.payload)
	}

	// Started again, it sets the bridge and its boards online again. (A
	// SIGKILL leaves demo/status retained online: only a live publish,
	// not the retained copy, shows the new process published it.)
	from = len(w.all())
	ws := newWatcher(t, b, "esp32gw/demo/status")
	g.Restart()
	w.wait(t, from, 10*time.Second, "bridge/state online after the restart", func(m mqttMsg) bool { return m.payload == "online" })
	ws.wait(t, 0, 10*time.Second, "demo/status online published after the restart", func(m mqttMsg) bool { return m.payload == "online" && !m.retained })
}

func TestMQTTCluster(t *testing.T) {
	t.Parallel()
	b := mosquittotest.Start(t, mosquittotest.Options{})
	a := testgw.Start(t, header("gw-a", mqttConfig(b, "gw-a", ""))+`  - id: demo
    name: "Demo on A"
    transport: sim
    sim: {board: tutorial, interval: 100ms}
    commands: [toggle]
`)
	gb := testgw.Start(t, header("gw-b", mqttConfig(b, "gw-b", "  cluster: true\n"))+`  - id: local
    transport: sim
    sim: {board: climate, interval: 100ms}
`)
	_ = a
	deadline := time.Now().Add(10 * time.Second)
	var d msg
	for {
		code, body := gb.Get("/api/devices/demo")
		if code == 200 {
			json.Unmarshal(body, &d)
			if d["online"] == true {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway B does not show A's device demo online within 10 s: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if str(d, "gateway") != "gw-a" {
		t.Errorf("on B, demo's gateway is %q, want gw-a", str(d, "gateway"))
	}
	if str(d, "name") != "Demo on A" || !reflect.DeepEqual(d["commands"], []any{"toggle"}) {
		t.Errorf("on B, demo: %v", d)
	}
	c, r := browser(t, gb, "/ws")
	r.NextMsg(t, 5*time.Second)
	r.WaitFor(t, 5*time.Second, "A's demo event on B", func(m msg) bool { return isEvent(m) && str(m, "device") == "demo" })
	start := time.Now()
	sendJSON(t, c, map[string]any{"type": "command", "id": "x1", "device": "demo", "label": "led", "value": "toggle"})
	// The answer, and the board's new state coming back to the browser on
	// B, in either order (the new state may overtake the ack).
	var ans msg
	var el time.Duration
	r.WaitAll(t, 10*time.Second, "the answer to x1, and A's demo ledStatus LED ON on B", func(m msg) bool {
		if str(m, "id") != "x1" {
			return false
		}
		ans, el = m, time.Since(start)
		return true
	}, eventIs("demo", "ledStatus", `"LED ON"`))
	if str(ans, "type") != "ack" {
		t.Errorf("command from B to A's board: %v, want ack", ans)
	}
	if el > 2*time.Second {
		t.Errorf("answered after %v", el)
	}
}
