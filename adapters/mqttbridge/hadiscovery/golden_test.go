package hadiscovery

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/configs.golden from the current code")

// goldenDevices covers every kind of entity discovery makes for labels and
// commands: sensors of each shape, binary sensors with switches, buttons on
// no, one and several on/off labels, and labels named like other entities.
func goldenDevices() []Device {
	shape := func(v string) Shape { return ShapeOf(json.RawMessage(v)) }
	return []Device{
		{ID: "demo", Name: "Board demo", Transport: "sim", Commands: []string{"toggle"}, Labels: []Label{
			{"count", shape(`7`)}, {"ledStatus", shape(`"LED OFF"`)}, {"temp", shape(`"21.5"`)}, {"mode", shape(`"auto"`)}, {"raw", shape(`{"a":1}`)},
		}},
		{ID: "relays", Name: "Relays", Transport: "ws-dial", Commands: []string{"on", "off", "toggle"}, Labels: []Label{
			{"relay1", shape(`"on"`)}, {"relay2", shape(`false`)}, {"cmd_x", shape(`1`)}, {"door_switch", shape(`1`)}, {"héat", shape(`2`)},
		}},
		{ID: "bare", Name: "Bare", Transport: "serial", Commands: []string{"reset", "42"}},
	}
}

// The configs of existing entities stay byte for byte what they were when
// board attributes (diagnostics, the update entity) were added: Home
// Assistant keys entities by unique_id and shows what the config says, so
// any change here is a visible change for every user.
func TestConfigsGolden(t *testing.T) {
	var buf bytes.Buffer
	for _, d := range goldenDevices() {
		got := Configs(testConfig(), d)
		for _, topic := range slices.Sorted(maps.Keys(got)) {
			buf.WriteString(topic + "\n" + string(got[topic]) + "\n")
		}
	}
	path := filepath.Join("testdata", "configs.golden")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		gl, wl := strings.Split(buf.String(), "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("configs differ from testdata/configs.golden at line %d:\n got %s\nwant %s", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("configs differ from testdata/configs.golden: %d lines, want %d", len(gl), len(wl))
	}
}
