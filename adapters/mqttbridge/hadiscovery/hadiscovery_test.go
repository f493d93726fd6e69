package hadiscovery

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/esp32gw/esp32gw/gateway"
)

// The package stays pure: the standard library and the core only (no MQTT
// client; the bridge publishes what it returns).
func TestImportsStayPure(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			stdlib := !strings.Contains(strings.SplitN(p, "/", 2)[0], ".")
			if !stdlib && p != "github.com/esp32gw/esp32gw/gateway" {
				t.Errorf("%s imports %s: hadiscovery may import only the standard library and gateway", f, p)
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no source files checked")
	}
}

func testConfig() Config {
	return Config{
		Prefix: "homeassistant", NodePrefix: "esp32gw",
		StatusTopic: func(d string) string { return "esp32gw/" + d + "/status" },
		ValueTopic:  func(d, l string) string { return "esp32gw/" + d + "/" + l },
		SetTopic:    func(d, l string) string { return "esp32gw/" + d + "/set/" + l },
	}
}

// A board that prints numbers as strings gets a measurement sensor that
// reads the number, as the core (gateway.KindOf) classifies it.
func TestNumericText(t *testing.T) {
	d := Device{ID: "dev", Name: "Dev", Transport: "serial", Labels: []Label{{Name: "temp", Shape: ShapeOf(json.RawMessage(`"21.5"`))}}}
	got := Configs(testConfig(), d)
	p, ok := got["homeassistant/sensor/esp32gw_dev/temp/config"]
	if !ok || len(got) != 1 {
		t.Fatalf("configs = %v", got)
	}
	var cfg map[string]any
	if err := json.Unmarshal(p, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["state_class"] != "measurement" || cfg["value_template"] != "{{ value_json | float(0) }}" || cfg["state_topic"] != "esp32gw/dev/temp" {
		t.Errorf("numeric text sensor: %v", cfg)
	}
}

// Words the core calls on/off-like beyond the old list, and its word
// separators, pair the same way.
func TestShapeOfCoreWords(t *testing.T) {
	for _, tc := range []struct{ v, on, off string }{
		{`"enabled"`, "enabled", "disabled"}, {`"Inactive"`, "Active", "Inactive"}, {`"led_on"`, "led_on", "led_off"},
		{`"state=OFF"`, "state=ON", "state=OFF"}, {`"relay-1: closed"`, "relay-1: open", "relay-1: closed"},
		{`"door open\n"`, "door open\n", "door closed\n"},
	} {
		sh := ShapeOf(json.RawMessage(tc.v))
		if sh.form != formBinary || sh.on != tc.on || sh.off != tc.off {
			t.Errorf("ShapeOf(%s) = %+v, want on %q off %q", tc.v, sh, tc.on, tc.off)
		}
	}
}

// opposite spells only words the core calls on/off-like, each with the
// other state.
func TestOppositeAgreesWithCore(t *testing.T) {
	for w, o := range opposite {
		on, ok := gateway.OnOffWord(w)
		on2, ok2 := gateway.OnOffWord(o)
		if !ok || !ok2 || on == on2 {
			t.Errorf("opposite[%q] = %q: core says %q → %v,%v and %q → %v,%v", w, o, w, on, ok, o, on2, ok2)
		}
		if opposite[o] != w {
			t.Errorf("opposite is not symmetric for %q/%q", w, o)
		}
	}
	// Whatever the core takes as on/off-like, discovery can pair (so it
	// shows a binary sensor, not text): the word splitting agrees.
	for _, s := range []string{"on", "LED ON", "x:off", "a=b=true", "level_high", "is-low", " yes ", "no\t", "door:open\r\n", "ENABLED", "a_b-c d:e=active"} {
		if _, ok := gateway.OnOffWord(s); !ok {
			t.Fatalf("test input %q is not on/off-like to the core", s)
		}
		if _, _, ok := onOffPair(s); !ok {
			t.Errorf("onOffPair(%q): the core calls it on/off-like, discovery cannot pair it", s)
		}
	}
}

func attrConfig() Config {
	c := testConfig()
	c.InfoTopic = func(d string) string { return "esp32gw/" + d + "/info" }
	c.UpdateTopic = func(d string) string { return "esp32gw/" + d + "/update/state" }
	c.InstallTopic = func(d string) string { return "esp32gw/" + d + "/update/install" }
	return c
}

// A board's $rssi and $uptime are diagnostic sensors on the info topic and
// its $fw an update entity; they share the device block and availability
// of the board's other entities, and a label named like one of them keeps
// a distinct id.
func TestAttributeEntities(t *testing.T) {
	d := Device{ID: "dev", Name: "Dev", Transport: "ws-listen", Commands: []string{"toggle"},
		Labels: []Label{{Name: "temp", Shape: ShapeOf(json.RawMessage(`1`))}, {Name: "info_rssi", Shape: ShapeOf(json.RawMessage(`2`))}},
		RSSI:   true, Uptime: true, Firmware: true, Installable: true}
	got := Configs(attrConfig(), d)
	dec := func(topic string) map[string]any {
		t.Helper()
		p, ok := got[topic]
		if !ok {
			t.Fatalf("no %s in %v", topic, keys(got))
		}
		var cfg map[string]any
		if err := json.Unmarshal(p, &cfg); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	temp := dec("homeassistant/sensor/esp32gw_dev/temp/config")
	for _, tc := range []struct {
		topic string
		want  map[string]any
	}{
		{"homeassistant/sensor/esp32gw_dev/info_rssi/config", map[string]any{
			"name": "RSSI", "unique_id": "esp32gw_dev_info_rssi", "state_topic": "esp32gw/dev/info", "value_template": "{{ value_json.rssi }}",
			"device_class": "signal_strength", "unit_of_measurement": "dBm", "state_class": "measurement", "entity_category": "diagnostic"}},
		{"homeassistant/sensor/esp32gw_dev/info_uptime/config", map[string]any{
			"name": "Uptime", "unique_id": "esp32gw_dev_info_uptime", "state_topic": "esp32gw/dev/info", "value_template": "{{ value_json.uptime }}",
			"device_class": "duration", "unit_of_measurement": "s", "state_class": "measurement", "entity_category": "diagnostic"}},
		{"homeassistant/update/esp32gw_dev/firmware/config", map[string]any{
			"name": "Firmware", "unique_id": "esp32gw_dev_firmware", "state_topic": "esp32gw/dev/update/state", "device_class": "firmware",
			"entity_category": "config", "command_topic": "esp32gw/dev/update/install", "payload_install": "install"}},
	} {
		cfg := dec(tc.topic)
		for k, v := range tc.want {
			if cfg[k] != v {
				t.Errorf("%s: %s = %v, want %v", tc.topic, k, cfg[k], v)
			}
		}
		for _, k := range []string{"device", "availability_topic", "payload_available", "payload_not_available"} {
			if a, b := mustMarshal(cfg[k]), mustMarshal(temp[k]); a != b {
				t.Errorf("%s: %s = %s, the label's is %s", tc.topic, k, a, b)
			}
		}
	}
	// The label "info_rssi" is a sensor of its own, not the diagnostic one.
	n := 0
	for topic, p := range got {
		if strings.Contains(string(p), `"name":"info_rssi"`) {
			n++
			if strings.HasSuffix(topic, "/info_rssi/config") {
				t.Errorf("label info_rssi took the diagnostic sensor's topic")
			}
		}
	}
	if n != 1 {
		t.Errorf("label info_rssi: %d configs", n)
	}

	// Without an install, no command topic: Home Assistant shows no button.
	d.Installable = false
	if cfg := dec2(t, Configs(attrConfig(), d), "homeassistant/update/esp32gw_dev/firmware/config"); cfg["command_topic"] != nil || cfg["payload_install"] != nil {
		t.Errorf("update without install: %v", cfg)
	}
	// Without attributes, none of these entities.
	d.RSSI, d.Uptime, d.Firmware = false, false, false
	for topic := range Configs(attrConfig(), d) {
		if strings.HasSuffix(topic, "/info_rssi/config") || strings.HasSuffix(topic, "/info_uptime/config") || strings.Contains(topic, "/update/") {
			t.Errorf("entity %s without attributes", topic)
		}
	}
}

func TestUpdateStateJSON(t *testing.T) {
	pct := 42
	for _, tc := range []struct {
		s    UpdateState
		want string
	}{
		{UpdateState{InstalledVersion: "1.0", LatestVersion: "1.1", Title: "p"}, `{"installed_version":"1.0","latest_version":"1.1","in_progress":false,"update_percentage":null,"title":"p"}`},
		{UpdateState{InstalledVersion: "1.0", LatestVersion: "1.1", InProgress: true, UpdatePercentage: &pct, Title: "p"}, `{"installed_version":"1.0","latest_version":"1.1","in_progress":true,"update_percentage":42,"title":"p"}`},
	} {
		if got := string(tc.s.JSON()); got != tc.want {
			t.Errorf("got %s\nwant %s", got, tc.want)
		}
	}
}

func dec2(t *testing.T, got map[string][]byte, topic string) map[string]any {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(got[topic], &cfg); err != nil {
		t.Fatalf("%s: %v", topic, err)
	}
	return cfg
}

func keys(m map[string][]byte) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	return k
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
