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
