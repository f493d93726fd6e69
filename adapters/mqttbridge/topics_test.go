package mqttbridge

import (
	"strings"
	"testing"
)

func TestParseTopic(t *testing.T) {
	tp := topics{"home/gw"}
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
		{"home/gw/demo/info", tkInfo, "demo", ""},
		{"home/gw/demo/update/install", tkInstall, "demo", ""},
		{"home/gw/demo/update/state", tkOther, "", ""},
		{"home/gw/demo/update/install/result", tkOther, "", ""},
		{"home/gw/demo/update", tkValue, "demo", "update"}, // a label may be named update: the entity's topics are below it
		{"home/gw/bridge/update/install", tkOther, "", ""},
		{"home/gw/bridge/state", tkOther, "", ""},
		{"home/gw/bridge/meta", tkOther, "", ""}, // never a remote device named bridge
		{"home/gw/bridge/set/x", tkOther, "", ""},
		{"other/demo/temp", tkOther, "", ""},
		{"home/gw/demo/set", tkOther, "", ""},
		// Hostile or malformed topics.
		{"", tkOther, "", ""},
		{"home/gw", tkOther, "", ""},
		{"home/gw/", tkOther, "", ""},
		{"home/gw//temp", tkOther, "", ""},              // empty device level
		{"home/gw//set/led", tkOther, "", ""},           // empty device level
		{"home/gwx/demo/temp", tkOther, "", ""},         // a longer prefix is another prefix
		{"home/gw/demo/temp/extra", tkOther, "", ""},    // a value topic has one level
		{"home/gw/demo/set/led/other", tkOther, "", ""}, // only result below a set topic
		{"home/gw/demo/set/led/result/x", tkOther, "", ""},
		{"home/gw/demo/set/a/b/c/d/e/f", tkOther, "", ""},
		{"home/gw/demo/meta/x", tkOther, "", ""},
		{"home/gw/demo/", tkValue, "demo", ""}, // an empty label: callers reject it (validLabel)
		{"/home/gw/demo/temp", tkOther, "", ""},
		{"home/gw/demo\x00/temp", tkValue, "demo\x00", "temp"}, // callers reject the id (gateway.ValidID)
		{"home/gw/" + strings.Repeat("x/", 1000) + "y", tkOther, "", ""},
		{"home/gw/+/temp", tkValue, "+", "temp"}, // wildcards are not valid in a published topic; ValidID rejects it
	} {
		k, d, l := tp.parse(tc.topic)
		if k != tc.kind || d != tc.dev || l != tc.label {
			t.Errorf("parse(%q) = %d %q %q, want %d %q %q", tc.topic, k, d, l, tc.kind, tc.dev, tc.label)
		}
	}
}

// Every topic the bridge builds parses back to what it was built from.
func TestTopicsRoundTrip(t *testing.T) {
	tp := topics{"esp32gw"}
	for _, tc := range []struct {
		topic      string
		kind       topicKind
		dev, label string
	}{
		{tp.status("demo"), tkStatus, "demo", ""},
		{tp.meta("demo"), tkMeta, "demo", ""},
		{tp.value("demo", "temp"), tkValue, "demo", "temp"},
		{tp.set("demo", "led"), tkSet, "demo", "led"},
		{tp.set("demo", ""), tkSet, "demo", ""},
		{tp.result("demo", "led"), tkResult, "demo", "led"},
		{tp.info("demo"), tkInfo, "demo", ""},
		{tp.install("demo"), tkInstall, "demo", ""},
		{tp.updateState("demo"), tkOther, "", ""},
		{tp.installResult("demo"), tkOther, "", ""},
		{tp.bridgeState(), tkOther, "", ""},
		{tp.ping(), tkOther, "", ""},
		{tp.alive("pi-a"), tkOther, "", ""},
	} {
		k, d, l := tp.parse(tc.topic)
		if k != tc.kind || d != tc.dev || l != tc.label {
			t.Errorf("parse(%q) = %d %q %q, want %d %q %q", tc.topic, k, d, l, tc.kind, tc.dev, tc.label)
		}
	}
	if got := tp.bridgeState(); got != "esp32gw/bridge/state" {
		t.Errorf("bridgeState = %s", got)
	}
	if got := tp.result("d", "l"); got != "esp32gw/d/set/l/result" {
		t.Errorf("result = %s", got)
	}
}

func TestAliveGateway(t *testing.T) {
	tp := topics{"esp32gw"}
	for _, tc := range []struct {
		topic string
		gw    string
		ok    bool
	}{
		{tp.alive("pi-a"), "pi-a", true},
		{"esp32gw/bridge/pi-a/alive", "pi-a", true},
		{"esp32gw/bridge/alive", "", false},
		{"esp32gw/bridge/a/b/alive", "", false},
		{"esp32gw/bridge/state", "", false},
		{"esp32gw/bridge/ping", "", false},
		{"other/bridge/pi-a/alive", "", false},
		{"esp32gw/demo/pi-a/alive", "", false},
		{"esp32gw/bridge/pi-a/alive/x", "", false},
	} {
		gw, ok := tp.aliveGateway(tc.topic)
		if gw != tc.gw || ok != tc.ok {
			t.Errorf("aliveGateway(%q) = %q %v, want %q %v", tc.topic, gw, ok, tc.gw, tc.ok)
		}
	}
}

func TestSubscriptions(t *testing.T) {
	tp := topics{"p"}
	if got := tp.subscriptions(false); len(got) != 1 || got["p/+/set/+"] != 0 {
		t.Errorf("subscriptions without cluster = %v", got)
	}
	got := tp.subscriptions(true)
	for f, q := range map[string]byte{"p/+/set/+": 0, "p/+/+": 0, "p/+/set/+/result": 1, "p/bridge/+/alive": 1} {
		if v, ok := got[f]; !ok || v != q {
			t.Errorf("cluster subscription %s = %d (%v), want QoS %d", f, v, ok, q)
		}
	}
	if len(got) != 4 {
		t.Errorf("cluster subscriptions = %v", got)
	}
}
