package mqttbridge

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/mosquittotest"
)

const within = 10 * time.Second

// A user who subscribes after the gateway started sees the retained state:
// bridge online, the device online, its meta and last values; live values
// follow with the configured QoS.
func TestTopicsAndRetainFlags(t *testing.T) {
	checkNoLeak(t)
	br := startBroker(t, mosquittotest.Options{})
	g := startGateway(t, br.URL(), gwOptions{id: "pi-a", devices: []gateway.DeviceConfig{tutorial("demo", 50*time.Millisecond)}})
	g.waitConnected(within)
	waitFor(t, within, "a few counts", func() bool { v, _ := g.label("demo", "count"); return v != "" && v != "0" && v != "1" })
	// The states are queued after the connect; once the status (queued after
	// meta and values) is retained, a new subscriber sees them all retained.
	retainedEventually(t, br.URL(), "esp32gw/demo/status", "online")

	c := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/#": 1})
	bridge := c.expect("esp32gw/bridge/state", within, func(m msg) bool { return m.Retained })
	if bridge.Payload != "online" {
		t.Errorf("bridge/state = %q, want online", bridge.Payload)
	}
	if m := c.expect("esp32gw/demo/status", within, func(m msg) bool { return m.Retained }); m.Payload != "online" {
		t.Errorf("demo/status = %q, want online", m.Payload)
	}
	meta := mustJSON(t, c.expect("esp32gw/demo/meta", within, func(m msg) bool { return m.Retained }).Payload)
	if meta["gateway"] != "pi-a" || meta["name"] != "Board demo" || meta["transport"] != "sim" {
		t.Errorf("meta = %v", meta)
	}
	if cmds, _ := meta["commands"].([]any); len(cmds) != 1 || cmds[0] != "toggle" {
		t.Errorf("meta commands = %v, want [toggle]", meta["commands"])
	}
	if m := c.expect("esp32gw/demo/ledStatus", within, func(m msg) bool { return m.Retained }); m.Payload != `"LED OFF"` {
		t.Errorf("ledStatus = %s, want the JSON text \"LED OFF\"", m.Payload)
	}
	live := c.expect("esp32gw/demo/count", within, func(m msg) bool { return !m.Retained })
	var n int
	if err := json.Unmarshal([]byte(live.Payload), &n); err != nil || live.QoS != 1 {
		t.Errorf("live count = %q qos %d, want a JSON number at QoS 1", live.Payload, live.QoS)
	}
}

// retain: false and qos: 0 from the config reach the value topics; states
// stay retained whatever the config.
func TestValueRetainAndQoSFromConfig(t *testing.T) {
	br := startBroker(t, mosquittotest.Options{})
	g := startGateway(t, br.URL(), gwOptions{devices: []gateway.DeviceConfig{tutorial("demo", 50*time.Millisecond)},
		mqtt: func(c *gateway.MQTTConfig) { c.Retain = false; c.QoS = 0 }})
	g.waitConnected(within)
	retainedEventually(t, br.URL(), "esp32gw/demo/status", "online")
	c := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/#": 1})
	m := c.expect("esp32gw/demo/count", within, nil)
	if m.Retained || m.QoS != 0 {
		t.Errorf("count retained=%v qos=%d, want not retained at QoS 0", m.Retained, m.QoS)
	}
	// A new subscriber gets no retained count.
	c2 := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/demo/+": 1})
	got := c2.collectUntil(func(m msg) bool { return m.Topic == "esp32gw/demo/count" }, within)
	for _, m := range got {
		if m.Topic == "esp32gw/demo/count" && m.Retained {
			t.Errorf("count was retained with retain: false")
		}
	}
}

// MQTT commands: the payload forms, the allow-list, results, and retained
// set messages that must never fire.
func TestCommands(t *testing.T) {
	checkNoLeak(t)
	br := startBroker(t, mosquittotest.Options{})
	c := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/+/set/+/result": 1, "esp32gw/demo/ledStatus": 1})
	// Left behind by some tool before the gateway starts: must not switch
	// the LED when the gateway subscribes.
	c.publish("esp32gw/demo/set/led", "toggle", true)
	t.Cleanup(func() { c.publish("esp32gw/demo/set/led", "", true) })

	g := startGateway(t, br.URL(), gwOptions{devices: []gateway.DeviceConfig{tutorial("demo", time.Hour)}})
	g.waitConnected(within)
	hubLogs, _, err := g.hub.Subscribe(-1, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer hubLogs.Close()
	hubLogs.SetFilter(nil, true)

	// Not in the allow-list: an error result, and the board never hears it.
	c.publish("esp32gw/demo/set/led", "explode", false)
	res := mustJSON(t, c.expect("esp32gw/demo/set/led/result", within, nil).Payload)
	if res["ok"] != false || !strings.Contains(res["error"].(string), "allow-list") {
		t.Errorf("result for explode = %v, want ok:false naming the allow-list", res)
	}

	// Allowed, as bare text: the LED goes on.
	c.publish("esp32gw/demo/set/led", "toggle", false)
	if m := c.expect("esp32gw/demo/set/led/result", within, nil); m.Payload != `{"ok":true}` || m.Retained {
		t.Errorf("result = %q retained=%v, want {\"ok\":true} not retained", m.Payload, m.Retained)
	}
	c.expect("esp32gw/demo/ledStatus", within, func(m msg) bool { return m.Payload == `"LED ON"` })
	if v, _ := g.label("demo", "ledStatus"); v != `"LED ON"` {
		t.Errorf("ledStatus = %s after one toggle; the retained set fired too?", v)
	}
	if n := g.bridge.m.retainedIgnored.Load(); n != 1 {
		t.Errorf("retained commands ignored = %d, want 1", n)
	}

	// As a JSON string, on another label: same command.
	c.publish("esp32gw/demo/set/ledStatus", `"toggle"`, false)
	if m := c.expect("esp32gw/demo/set/ledStatus/result", within, nil); m.Payload != `{"ok":true}` {
		t.Errorf("JSON string command: result %s", m.Payload)
	}
	c.expect("esp32gw/demo/ledStatus", within, func(m msg) bool { return m.Payload == `"LED OFF"` })

	// Unknown device.
	c.publish("esp32gw/nosuch/set/led", "toggle", false)
	res = mustJSON(t, c.expect("esp32gw/nosuch/set/led/result", within, nil).Payload)
	if res["ok"] != false || !strings.Contains(res["error"].(string), "unknown device") {
		t.Errorf("unknown device result = %v", res)
	}

	// The board saw exactly the two toggles and nothing else.
	for {
		select {
		case m := <-hubLogs.C:
			if m.Kind == gateway.KindLog && strings.Contains(m.Line, "unknown command") {
				t.Errorf("the board received a command outside its allow-list: %s", m.Line)
			}
			continue
		default:
		}
		break
	}
}

// An offline board: an error result now, never a queued command.
func TestCommandForOfflineDevice(t *testing.T) {
	br := startBroker(t, mosquittotest.Options{})
	c := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/+/set/+/result": 1})
	g := startGateway(t, br.URL(), gwOptions{})
	if err := g.hub.AddDevice(gateway.DeviceInfo{ID: "kitchen", Transport: "ws-dial", Commands: []string{"toggle"}}); err != nil {
		t.Fatal(err)
	}
	g.waitConnected(within)
	c.publish("esp32gw/kitchen/set/led", "toggle", false)
	res := mustJSON(t, c.expect("esp32gw/kitchen/set/led/result", within, nil).Payload)
	if res["ok"] != false || !strings.Contains(res["error"].(string), "offline") {
		t.Errorf("result = %v, want ok:false, offline", res)
	}
}

// A clean shutdown leaves the broker with retained offline states.
func TestShutdownPublishesOffline(t *testing.T) {
	checkNoLeak(t)
	br := startBroker(t, mosquittotest.Options{})
	g := startGateway(t, br.URL(), gwOptions{devices: []gateway.DeviceConfig{tutorial("demo", 50*time.Millisecond)}})
	g.waitConnected(within)
	c := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/bridge/state": 1, "esp32gw/demo/status": 1})
	c.expect("esp32gw/demo/status", within, func(m msg) bool { return m.Payload == "online" })
	start := time.Now()
	g.stop()
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("bridge shutdown took %v; main's whole budget is 4 s", d)
	}
	c.expect("esp32gw/demo/status", within, func(m msg) bool { return m.Payload == "offline" })
	c.expect("esp32gw/bridge/state", within, func(m msg) bool { return m.Payload == "offline" })
	// And they are retained for whoever looks later.
	c2 := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/bridge/state": 1})
	if m := c2.expect("esp32gw/bridge/state", within, nil); m.Payload != "offline" || !m.Retained {
		t.Errorf("retained bridge/state = %q (retained %v), want offline", m.Payload, m.Retained)
	}
}
