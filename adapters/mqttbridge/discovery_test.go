package mqttbridge

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/mosquittotest"
)

// Home Assistant sees each board's sensors and controls: valid JSON,
// unique ids, a device block, availability from the status topic; all
// re-sent when Home Assistant announces itself.
func TestHomeAssistantDiscovery(t *testing.T) {
	br := startBroker(t, mosquittotest.Options{})
	devices := []gateway.DeviceConfig{
		tutorial("demo", 50*time.Millisecond),
		{ID: "climate", Transport: gateway.TransportSim, CommandFormat: gateway.FormatText, Sim: gateway.SimConfig{Board: "climate", Interval: gateway.Duration(50 * time.Millisecond)}},
		{ID: "relays", Transport: gateway.TransportSim, CommandFormat: gateway.FormatJSON, Commands: []string{"on", "off", "toggle"}, Sim: gateway.SimConfig{Board: "relay", Interval: gateway.Duration(50 * time.Millisecond)}},
	}
	c := newClient(t, br.URL(), clientOptions{}, map[string]byte{"homeassistant/#": 1})
	g := startGateway(t, br.URL(), gwOptions{devices: devices, mqtt: func(m *gateway.MQTTConfig) { m.HomeAssistant.Enabled = true }})
	g.waitConnected(within)

	want := map[string]string{ // topic → component it must be
		"homeassistant/sensor/esp32gw_demo/count/config":            "sensor",
		"homeassistant/binary_sensor/esp32gw_demo/ledStatus/config": "binary_sensor",
		"homeassistant/button/esp32gw_demo/cmd_toggle/config":       "button",
		"homeassistant/sensor/esp32gw_climate/temperature/config":   "sensor",
		"homeassistant/sensor/esp32gw_climate/humidity/config":      "sensor",
		"homeassistant/switch/esp32gw_relays/relay1/config":         "switch",
		"homeassistant/switch/esp32gw_relays/relay2/config":         "switch",
		"homeassistant/button/esp32gw_relays/cmd_toggle/config":     "button",
	}
	configs := map[string]map[string]any{}
	collect := func() {
		for k := range configs {
			delete(configs, k)
		}
		c.collectUntil(func(m msg) bool {
			if m.Payload != "" && strings.HasSuffix(m.Topic, "/config") {
				var cfg map[string]any
				if err := json.Unmarshal([]byte(m.Payload), &cfg); err != nil {
					t.Fatalf("%s: not JSON: %v\n%s", m.Topic, err, m.Payload)
				}
				configs[m.Topic] = cfg
			}
			for topic := range want {
				if configs[topic] == nil {
					return false
				}
			}
			// The button's label is settled once ledStatus was observed.
			return configs["homeassistant/button/esp32gw_demo/cmd_toggle/config"]["command_topic"] == "esp32gw/demo/set/ledStatus"
		}, within)
	}
	collect()

	ids := map[string]string{}
	for topic, cfg := range configs {
		dev := strings.Split(topic, "/")[2] // esp32gw_<device>
		id, _ := cfg["unique_id"].(string)
		if id == "" {
			t.Errorf("%s: no unique_id", topic)
		} else if other, dup := ids[id]; dup {
			t.Errorf("unique_id %q used by %s and %s", id, topic, other)
		}
		ids[id] = topic
		device := strings.TrimPrefix(dev, "esp32gw_")
		if cfg["availability_topic"] != "esp32gw/"+device+"/status" {
			t.Errorf("%s: availability_topic = %v", topic, cfg["availability_topic"])
		}
		block, _ := cfg["device"].(map[string]any)
		if ids, _ := block["identifiers"].([]any); len(ids) == 0 || block["name"] == "" {
			t.Errorf("%s: device block %v", topic, block)
		}
		for _, k := range []string{"state_topic", "command_topic"} {
			if s, ok := cfg[k].(string); ok && !strings.HasPrefix(s, "esp32gw/"+device+"/") {
				t.Errorf("%s: %s = %s", topic, k, s)
			}
		}
	}
	if b := configs["homeassistant/button/esp32gw_demo/cmd_toggle/config"]; b["payload_press"] != "toggle" || b["command_topic"] != "esp32gw/demo/set/ledStatus" {
		t.Errorf("toggle button = %v", b)
	}
	if s := configs["homeassistant/switch/esp32gw_relays/relay1/config"]; s["command_topic"] != "esp32gw/relays/set/relay1" || s["payload_on"] != "on" {
		t.Errorf("relay1 switch = %v", s)
	}

	// The button works as Home Assistant would press it.
	results := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/demo/set/+/result": 1})
	results.publish("esp32gw/demo/set/ledStatus", "toggle", false)
	if m := results.expect("esp32gw/demo/set/ledStatus/result", within, nil); m.Payload != `{"ok":true}` {
		t.Errorf("button press: %s", m.Payload)
	}

	// Home Assistant restarts: everything again.
	results.publish("homeassistant/status", "online", false)
	collect()
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want valueKind
	}{
		{`21.5`, kindNumber}, {`-3`, kindNumber}, {`true`, kindBinary}, {`"LED ON"`, kindBinary},
		{`"off"`, kindBinary}, {`"Open"`, kindBinary}, {`"hello"`, kindText}, {`null`, kindText},
		{`{"a":1}`, kindJSON}, {`[1,2]`, kindJSON}, {`"onion"`, kindText},
	} {
		if got := classify(json.RawMessage(tc.v)); got != tc.want {
			t.Errorf("classify(%s) = %d, want %d", tc.v, got, tc.want)
		}
	}
}

func TestCommandValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`toggle`, `"toggle"`},
		{`"toggle"`, `"toggle"`},
		{` 42 `, `42`},
		{`-1.5`, `-1.5`},
		{`true`, `true`},
		{`{"a": 1}`, `{"a":1}`},
		{`[1,2]`, `"[1,2]"`},
		{`null`, `"null"`},
		{"toggle\n", `"toggle"`},
		{``, `""`},
		{"\xff", "\"\ufffd\""},
	} {
		if got := string(commandValue([]byte(tc.in))); got != tc.want {
			t.Errorf("commandValue(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestParseTopic(t *testing.T) {
	b := New(gateway.MQTTConfig{TopicPrefix: "home/gw"}, gateway.NewHub(gateway.Options{GatewayID: "a"}), nil)
	for _, tc := range []struct {
		topic      string
		kind       topicKind
		dev, label string
	}{
		{"home/gw/demo/set/led", tkSet, "demo", "led"},
		{"home/gw/demo/set/", tkSet, "demo", ""},
		{"home/gw/demo/set/led/result", tkResult, "demo", "led"},
		{"home/gw/demo/meta", tkMeta, "demo", ""},
		{"home/gw/demo/status", tkStatus, "demo", ""},
		{"home/gw/demo/temp", tkValue, "demo", "temp"},
		{"home/gw/bridge/state", tkOther, "", ""},
		{"other/demo/temp", tkOther, "", ""},
		{"home/gw/demo/set", tkOther, "", ""},
	} {
		k, d, l := b.parseTopic(tc.topic)
		if k != tc.kind || d != tc.dev || l != tc.label {
			t.Errorf("parseTopic(%s) = %d %q %q, want %d %q %q", tc.topic, k, d, l, tc.kind, tc.dev, tc.label)
		}
	}
}
