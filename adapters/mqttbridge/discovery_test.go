package mqttbridge

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/adapters/mqttbridge/hadiscovery"
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

	// DESIGN.md: one entity per observed label and per allowed command.
	want := map[string]string{ // topic → component it must be
		"homeassistant/sensor/esp32gw_demo/count/config":               "sensor",
		"homeassistant/binary_sensor/esp32gw_demo/ledStatus/config":    "binary_sensor",
		"homeassistant/switch/esp32gw_demo/ledStatus_switch/config":    "switch",
		"homeassistant/button/esp32gw_demo/cmd_toggle/config":          "button",
		"homeassistant/sensor/esp32gw_climate/temperature/config":      "sensor",
		"homeassistant/sensor/esp32gw_climate/humidity/config":         "sensor",
		"homeassistant/binary_sensor/esp32gw_relays/relay1/config":     "binary_sensor",
		"homeassistant/binary_sensor/esp32gw_relays/relay2/config":     "binary_sensor",
		"homeassistant/switch/esp32gw_relays/relay1_switch/config":     "switch",
		"homeassistant/switch/esp32gw_relays/relay2_switch/config":     "switch",
		"homeassistant/button/esp32gw_relays/relay1_cmd_on/config":     "button",
		"homeassistant/button/esp32gw_relays/relay1_cmd_off/config":    "button",
		"homeassistant/button/esp32gw_relays/relay1_cmd_toggle/config": "button",
		"homeassistant/button/esp32gw_relays/relay2_cmd_on/config":     "button",
		"homeassistant/button/esp32gw_relays/relay2_cmd_off/config":    "button",
		"homeassistant/button/esp32gw_relays/relay2_cmd_toggle/config": "button",
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
	for topic, comp := range want {
		if got := strings.Split(topic, "/")[1]; got != comp {
			t.Fatalf("test table: %s is not a %s", topic, comp)
		}
	}
	check := func(topic string, kv map[string]any) {
		t.Helper()
		cfg := configs[topic]
		for k, v := range kv {
			if cfg[k] != v {
				t.Errorf("%s: %s = %v, want %v", topic, k, cfg[k], v)
			}
		}
	}
	// The binary sensors show the board's own values.
	check("homeassistant/binary_sensor/esp32gw_demo/ledStatus/config", map[string]any{
		"state_topic": "esp32gw/demo/ledStatus", "value_template": "{{ value_json }}", "payload_on": "LED ON", "payload_off": "LED OFF"})
	check("homeassistant/binary_sensor/esp32gw_relays/relay2/config", map[string]any{
		"state_topic": "esp32gw/relays/relay2", "payload_on": "on", "payload_off": "off"})
	// Every allowed command is a button pressing that value, on the label
	// it acts on.
	check("homeassistant/button/esp32gw_demo/cmd_toggle/config", map[string]any{"payload_press": "toggle", "command_topic": "esp32gw/demo/set/ledStatus"})
	check("homeassistant/button/esp32gw_relays/relay2_cmd_off/config", map[string]any{"payload_press": "off", "command_topic": "esp32gw/relays/set/relay2"})
	// The switches, besides.
	check("homeassistant/switch/esp32gw_demo/ledStatus_switch/config", map[string]any{
		"command_topic": "esp32gw/demo/set/ledStatus", "payload_on": "toggle", "payload_off": "toggle", "state_on": "LED ON", "state_off": "LED OFF"})
	check("homeassistant/switch/esp32gw_relays/relay1_switch/config", map[string]any{
		"command_topic": "esp32gw/relays/set/relay1", "payload_on": "on", "payload_off": "off", "state_on": "on", "state_off": "off"})

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

// Every label is an entity of its kind, every command a button; the
// unique_ids never collide, even with labels named like a button or a
// switch.
func TestDiscoveryConfigs(t *testing.T) {
	b := New(gateway.MQTTConfig{}, gateway.NewHub(gateway.Options{GatewayID: "a"}), nil)
	d := newLocalDev(gateway.DeviceInfo{ID: "dev", Name: "Dev", Transport: "sim", Commands: []string{"toggle", "42"}})
	for _, lv := range []struct{ l, v string }{
		{"temp", `21.5`}, {"mode", `"auto"`}, {"door", `true`}, {"cmd_toggle", `"x"`},
		{"door_switch", `1`}, {"set", `1`}, {"raw", `{"a":1}`},
	} {
		d.observe(lv.l, json.RawMessage(lv.v))
	}
	got := hadiscovery.Configs(b.ha, d.disc)
	ids := map[string]string{}
	comps := map[string]string{}
	for topic, p := range got {
		var cfg map[string]any
		if err := json.Unmarshal(p, &cfg); err != nil {
			t.Fatal(err)
		}
		id := cfg["unique_id"].(string)
		if other, dup := ids[id]; dup {
			t.Errorf("unique_id %s used by %s and %s", id, topic, other)
		}
		ids[id] = topic
		comps[cfg["name"].(string)] = strings.Split(topic, "/")[1]
		if cfg["name"] == "door" {
			if cfg["payload_on"] != "true" || cfg["payload_off"] != "false" || cfg["value_template"] != "{{ value }}" {
				t.Errorf("door: %v", cfg)
			}
		}
		if cfg["name"] == "42" && (cfg["payload_press"] != "42" || cfg["command_topic"] != "esp32gw/dev/set/door") {
			t.Errorf("button 42: %v", cfg)
		}
	}
	for name, want := range map[string]string{
		"temp": "sensor", "mode": "sensor", "door": "binary_sensor", "door switch": "switch", "cmd_toggle": "sensor",
		"door_switch": "sensor", "raw": "sensor", "toggle": "button", "42": "button",
	} {
		if comps[name] != want {
			t.Errorf("entity %q: %q, want %q (all: %v)", name, comps[name], want, comps)
		}
	}
	if len(got) != 9 {
		t.Errorf("%d configs, want 9 (no entity for the reserved label set): %v", len(got), comps)
	}
}
