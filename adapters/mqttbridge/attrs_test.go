package mqttbridge

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/mosquittotest"
)

// fakeUpdates is a firmware catalogue and job starter the test controls.
type fakeUpdates struct {
	mu       sync.Mutex
	latest   map[string]string // "project/chip" → version
	installs []string          // devices Install was called for
	err      error             // Install's answer, when set
}

func (f *fakeUpdates) Latest(project, chip string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.latest[project+"/"+chip]
	return v, ok
}

func (f *fakeUpdates) Install(_ context.Context, device string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.installs = append(f.installs, device)
	if f.err != nil {
		return "", f.err
	}
	return fmt.Sprintf("job-%d", len(f.installs)), nil
}

func (f *fakeUpdates) setLatest(key, v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latest[key] = v
}

func (f *fakeUpdates) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.installs...)
}

// board adds a device with no transport of its own to g's hub and attaches
// a link the test drives as a board would (readings, $ attributes).
func (g *testGateway) board(id string) gateway.Link {
	g.t.Helper()
	if err := g.hub.AddDevice(gateway.DeviceInfo{ID: id, Name: "Board " + id, Transport: gateway.TransportWSListen}); err != nil {
		g.t.Fatal(err)
	}
	l, err := g.hub.Attach(id, func(context.Context, gateway.Command) error { return nil })
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { l.Detach("test over") })
	return l
}

func attr(name, value string) gateway.Reading {
	return gateway.Reading{Label: name, Value: json.RawMessage(value), Attr: true}
}

// A board's $ attributes are one retained JSON object on its info topic:
// published once they arrive, again when one changes, there for a late
// subscriber, and again after the broker lost its retained messages.
func TestInfoTopic(t *testing.T) {
	checkNoLeak(t)
	br := startBroker(t, mosquittotest.Options{})
	g := startGateway(t, br.URL(), gwOptions{})
	g.waitConnected(within)
	c := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/kitchen/#": 1})
	b := g.board("kitchen")
	b.Publish(gateway.Reading{Label: "temp", Value: json.RawMessage(`21.5`)}, attr("fw", `"1.2.0"`), attr("rssi", `-61`), attr("chip", `"esp32s3"`))

	m := c.expect("esp32gw/kitchen/info", within, nil)
	if m.Payload != `{"chip":"esp32s3","fw":"1.2.0","rssi":-61}` || m.QoS != 1 {
		t.Errorf("info = %s (qos %d), want the attributes without $, keys sorted, at QoS 1", m.Payload, m.QoS)
	}
	// Attributes are never labels of their own.
	c.expect("esp32gw/kitchen/temp", within, nil)
	for _, m := range append(c.pending, drainNow(c)...) {
		if strings.Contains(m.Topic, "$") || strings.HasSuffix(m.Topic, "/rssi") || strings.HasSuffix(m.Topic, "/fw") {
			t.Errorf("attribute published as a value: %s", m.Topic)
		}
	}

	// A change: the whole object again.
	b.Publish(attr("rssi", `-55`))
	c.expect("esp32gw/kitchen/info", within, func(m msg) bool { return m.Payload == `{"chip":"esp32s3","fw":"1.2.0","rssi":-55}` })
	retainedEventually(t, br.URL(), "esp32gw/kitchen/info", `{"chip":"esp32s3","fw":"1.2.0","rssi":-55}`)

	// The broker restarts without persistence: the bridge restores it.
	br.Kill()
	br.Restart()
	waitFor(t, reconnectDeadline, "the bridge to reconnect", func() bool { return g.bridge.m.connects.Load() >= 2 })
	retainedEventually(t, br.URL(), "esp32gw/kitchen/info", `{"chip":"esp32s3","fw":"1.2.0","rssi":-55}`)
}

// drainNow returns what client c has received and not yet taken.
func drainNow(c *client) []msg {
	var got []msg
	for {
		select {
		case m := <-c.ch:
			got = append(got, m)
		default:
			return got
		}
	}
}

// haConfigs collects the retained discovery configs of one node until
// done says they are complete.
func haConfigs(t *testing.T, c *client, done func(map[string]map[string]any) bool) map[string]map[string]any {
	t.Helper()
	configs := map[string]map[string]any{}
	c.collectUntil(func(m msg) bool {
		if strings.HasSuffix(m.Topic, "/config") {
			if m.Payload == "" {
				delete(configs, m.Topic)
			} else {
				configs[m.Topic] = mustJSON(t, m.Payload)
			}
		} else {
			// Other topics (info, update state) stay for later expects: on
			// a loaded machine they can arrive before the last config.
			c.pending = append(c.pending, m)
		}
		return done(configs)
	}, within)
	return configs
}

// With Home Assistant discovery, $rssi and $uptime are diagnostic sensors
// reading the info topic, $fw an update entity whose latest version comes
// from the catalogue, whose progress comes from $ota, and whose install
// starts a job; all re-sent when Home Assistant comes back.
func TestHomeAssistantBoardAttributes(t *testing.T) {
	checkNoLeak(t)
	br := startBroker(t, mosquittotest.Options{})
	c := newClient(t, br.URL(), clientOptions{}, map[string]byte{
		"homeassistant/+/esp32gw_garage/#": 1, "esp32gw/garage/update/#": 1, "esp32gw/garage/info": 1, "esp32gw/nobody/update/#": 1,
	})
	// Left behind by some tool before the gateway starts: must never start
	// a job when the gateway subscribes.
	c.publish("esp32gw/garage/update/install", "install", true)
	t.Cleanup(func() { c.publish("esp32gw/garage/update/install", "", true) })

	up := &fakeUpdates{latest: map[string]string{"weather/esp32s3": "1.3.0"}}
	g := startGatewayWith(t, br.URL(), up)
	g.waitConnected(within)
	b := g.board("garage")
	b.Publish(gateway.Reading{Label: "temp", Value: json.RawMessage(`20`)},
		attr("fw", `"1.2.0"`), attr("project", `"weather"`), attr("chip", `"esp32s3"`), attr("rssi", `-61`), attr("uptime", `3600`), attr("heap", `120000`))

	const (
		rssiTopic   = "homeassistant/sensor/esp32gw_garage/info_rssi/config"
		uptimeTopic = "homeassistant/sensor/esp32gw_garage/info_uptime/config"
		updateTopic = "homeassistant/update/esp32gw_garage/firmware/config"
		tempTopic   = "homeassistant/sensor/esp32gw_garage/temp/config"
	)
	complete := func(cs map[string]map[string]any) bool {
		return cs[rssiTopic] != nil && cs[uptimeTopic] != nil && cs[updateTopic] != nil && cs[tempTopic] != nil
	}
	configs := haConfigs(t, c, complete)
	check := func(topic string, kv map[string]any) {
		t.Helper()
		cfg := configs[topic]
		for k, v := range kv {
			if cfg[k] != v {
				t.Errorf("%s: %s = %v, want %v", topic, k, cfg[k], v)
			}
		}
		// The same device block and availability as the board's other entities.
		for _, k := range []string{"device", "availability_topic", "payload_available", "payload_not_available"} {
			a, _ := json.Marshal(cfg[k])
			b, _ := json.Marshal(configs[tempTopic][k])
			if string(a) != string(b) {
				t.Errorf("%s: %s = %s, the temp sensor's is %s", topic, k, a, b)
			}
		}
		if id, _ := cfg["unique_id"].(string); id == "" || id == configs[tempTopic]["unique_id"] {
			t.Errorf("%s: unique_id %q", topic, id)
		}
	}
	check(rssiTopic, map[string]any{
		"unique_id": "esp32gw_garage_info_rssi", "state_topic": "esp32gw/garage/info", "value_template": "{{ value_json.rssi }}",
		"entity_category": "diagnostic", "device_class": "signal_strength", "unit_of_measurement": "dBm", "state_class": "measurement",
	})
	check(uptimeTopic, map[string]any{
		"unique_id": "esp32gw_garage_info_uptime", "state_topic": "esp32gw/garage/info", "value_template": "{{ value_json.uptime }}",
		"entity_category": "diagnostic", "device_class": "duration", "unit_of_measurement": "s", "state_class": "measurement",
	})
	check(updateTopic, map[string]any{
		"unique_id": "esp32gw_garage_firmware", "state_topic": "esp32gw/garage/update/state", "command_topic": "esp32gw/garage/update/install",
		"payload_install": "install", "entity_category": "config", "device_class": "firmware",
	})
	if configs[tempTopic]["availability_topic"] != "esp32gw/garage/status" {
		t.Errorf("availability: %v", configs[tempTopic]["availability_topic"])
	}

	// The update entity's state: installed from $fw, latest from the catalogue.
	state := func(pred func(map[string]any) bool) map[string]any {
		t.Helper()
		var got map[string]any
		c.expect("esp32gw/garage/update/state", within, func(m msg) bool {
			got = mustJSON(t, m.Payload)
			return pred(got)
		})
		return got
	}
	st := state(func(s map[string]any) bool { return s["latest_version"] == "1.3.0" })
	if st["installed_version"] != "1.2.0" || st["in_progress"] != false || st["update_percentage"] != nil || st["title"] != "weather" {
		t.Errorf("update state = %v", st)
	}
	if _, ok := st["update_percentage"]; !ok {
		t.Errorf("update state has no update_percentage (null while idle): %v", st)
	}

	// The retained install request left from before was ignored.
	if n := len(up.calls()); n != 0 {
		t.Fatalf("Install called %d times for a retained request", n)
	}
	if n := g.bridge.m.retainedIgnored.Load(); n != 1 {
		t.Errorf("retained requests ignored = %d, want 1", n)
	}

	// Home Assistant's install: one job, for that board, answered.
	c.publish("esp32gw/garage/update/install", "install", false)
	res := c.expect("esp32gw/garage/update/install/result", within, nil)
	if res.Payload != `{"ok":true,"job":"job-1"}` || res.Retained {
		t.Errorf("install result = %s retained=%v", res.Payload, res.Retained)
	}
	if calls := up.calls(); len(calls) != 1 || calls[0] != "garage" {
		t.Errorf("Install calls = %v, want [garage]", calls)
	}
	// An unknown device is answered, and nothing is installed.
	c.publish("esp32gw/nobody/update/install", "install", false)
	res = c.expect("esp32gw/nobody/update/install/result", within, nil)
	if r := mustJSON(t, res.Payload); r["ok"] != false || r["code"] != "unknown_device" {
		t.Errorf("install for an unknown device: %s", res.Payload)
	}
	if calls := up.calls(); len(calls) != 1 {
		t.Errorf("Install calls = %v after an unknown device", calls)
	}

	// The board reports progress: Home Assistant sees it.
	b.Publish(attr("ota", `{"state":"downloading","progress":42}`))
	st = state(func(s map[string]any) bool { return s["in_progress"] == true })
	if st["update_percentage"] != float64(42) || st["installed_version"] != "1.2.0" {
		t.Errorf("update state while downloading = %v", st)
	}
	b.Publish(attr("ota", `{"state":"downloading","progress":97}`))
	state(func(s map[string]any) bool { return s["update_percentage"] == float64(97) })
	// It reboots into the new version; the last $ota is from the old one.
	b.Publish(attr("fw", `"1.3.0"`))
	st = state(func(s map[string]any) bool { return s["installed_version"] == "1.3.0" })
	if st["in_progress"] != false || st["update_percentage"] != nil || st["latest_version"] != "1.3.0" {
		t.Errorf("update state after the update = %v", st)
	}
	c.expect("esp32gw/garage/info", within, func(m msg) bool { return strings.Contains(m.Payload, `"fw":"1.3.0"`) })

	// A new firmware is uploaded: the latest version follows.
	up.setLatest("weather/esp32s3", "1.4.0")
	g.bridge.FirmwareChanged()
	state(func(s map[string]any) bool {
		return s["latest_version"] == "1.4.0" && s["installed_version"] == "1.3.0"
	})

	// A refused install says why.
	up.mu.Lock()
	up.err = fmt.Errorf("device garage: %w", gateway.ErrOffline)
	up.mu.Unlock()
	time.Sleep(installRepeatWindow) // the same device's next install is not a repeat
	c.publish("esp32gw/garage/update/install", "install", false)
	res = c.expect("esp32gw/garage/update/install/result", within, nil)
	if r := mustJSON(t, res.Payload); r["ok"] != false || r["code"] != "offline" || r["error"] != "device garage is offline" {
		t.Errorf("refused install: %s", res.Payload)
	}

	// Home Assistant restarts: the attribute entities and the state again.
	c.publish("homeassistant/status", "online", false)
	resent := map[string]bool{}
	c.collectUntil(func(m msg) bool {
		resent[m.Topic] = true
		return resent[rssiTopic] && resent[uptimeTopic] && resent[updateTopic] && resent["esp32gw/garage/update/state"]
	}, within)
}

// Without a catalogue (no WithUpdates), the update entity shows the
// installed version as the latest and offers no install.
func TestUpdateEntityWithoutCatalogue(t *testing.T) {
	br := startBroker(t, mosquittotest.Options{})
	c := newClient(t, br.URL(), clientOptions{}, map[string]byte{"homeassistant/update/#": 1, "esp32gw/solo/update/#": 1})
	g := startGateway(t, br.URL(), gwOptions{mqtt: func(m *gateway.MQTTConfig) { m.HomeAssistant.Enabled = true }})
	g.waitConnected(within)
	b := g.board("solo")
	b.Publish(attr("fw", `"0.9"`), attr("project", `"p"`), attr("chip", `"esp32"`))
	cfg := mustJSON(t, c.expect("homeassistant/update/esp32gw_solo/firmware/config", within, nil).Payload)
	if cfg["command_topic"] != nil || cfg["payload_install"] != nil {
		t.Errorf("update entity without a catalogue offers an install: %v", cfg)
	}
	st := mustJSON(t, c.expect("esp32gw/solo/update/state", within, nil).Payload)
	if st["installed_version"] != "0.9" || st["latest_version"] != "0.9" {
		t.Errorf("state = %v", st)
	}
	// Progress still shows (a job started from the dashboard).
	b.Publish(attr("ota", `{"state":"downloading","progress":5}`))
	c.expect("esp32gw/solo/update/state", within, func(m msg) bool {
		s := mustJSON(t, m.Payload)
		return s["in_progress"] == true && s["update_percentage"] == float64(5)
	})
	// Nobody listens on the install topic.
	c.publish("esp32gw/solo/update/install", "install", false)
	c.publish("esp32gw/solo/update/marker", "x", false)
	for _, m := range c.collectUntil(func(m msg) bool { return m.Topic == "esp32gw/solo/update/marker" }, within) {
		if strings.HasSuffix(m.Topic, "/result") {
			t.Errorf("install answered without a catalogue: %s", m.Payload)
		}
	}
}

// startGatewayWith is startGateway with Home Assistant discovery and a
// catalogue, and no sim boards.
func startGatewayWith(t *testing.T, url string, up Updates) *testGateway {
	t.Helper()
	return startGateway(t, url, gwOptions{id: "gw1", mqtt: func(m *gateway.MQTTConfig) { m.HomeAssistant.Enabled = true }, options: []Option{WithUpdates(up)}})
}
