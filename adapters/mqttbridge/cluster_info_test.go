package mqttbridge

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/mosquittotest"
)

// infoOf is a device's info in g's hub as the info topic encodes it
// ("" when the device is unknown).
func (g *testGateway) infoOf(dev string) string {
	st, err := g.hub.DeviceState(dev)
	if err != nil {
		return ""
	}
	return string(infoPayload(st.Info))
}

// nextInfo returns the next info message for dev on s, skipping others.
func nextInfo(t *testing.T, s *gateway.Subscription, dev string) *gateway.Message {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case m := <-s.C:
			if m.Kind == gateway.KindInfo && m.Device == dev {
				return m
			}
		case <-timer.C:
			t.Fatalf("no info message for %s within %v", dev, within)
			return nil
		}
	}
}

// noInfo fails if s holds an info message for dev now.
func noInfo(t *testing.T, s *gateway.Subscription, dev, after string) {
	t.Helper()
	for {
		select {
		case m := <-s.C:
			if m.Kind == gateway.KindInfo && m.Device == dev {
				t.Errorf("after %s: an info message %s", after, m.Data)
			}
		default:
			return
		}
	}
}

// With cluster mode, B shows the attributes of a board on A (device object,
// snapshot, info message to browsers) and follows A's changes; hostile info
// payloads are rejected and counted and change nothing; an empty info
// clears them; B never publishes them as its own.
func TestClusterImportsInfo(t *testing.T) {
	checkNoLeak(t)
	br := startBroker(t, mosquittotest.Options{})
	a := startGateway(t, br.URL(), gwOptions{id: "pi-a", mqtt: clustered})
	b := startGateway(t, br.URL(), gwOptions{id: "pi-b", mqtt: clustered})
	a.waitConnected(within)
	b.waitConnected(within)
	watch := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/kitchen/info": 1})
	s, _, err := b.hub.Subscribe(-1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	board := a.board("kitchen")
	board.Publish(gateway.Reading{Label: "temp", Value: json.RawMessage(`21.5`)}, attr("fw", `"1.2.0"`), attr("rssi", `-61`))
	const first = `{"fw":"1.2.0","rssi":-61}`
	waitFor(t, within, "B to show the board's info", func() bool { return b.infoOf("kitchen") == first })
	st, _ := b.hub.DeviceState("kitchen")
	if !st.Remote || st.Gateway != "pi-a" {
		t.Errorf("B's kitchen: remote %v gateway %q", st.Remote, st.Gateway)
	}
	if obj, _ := json.Marshal(st); !strings.Contains(string(obj), `"info":`+first) {
		t.Errorf("B's device object %s, want info %s", obj, first)
	}
	m := nextInfo(t, s, "kitchen")
	var frame struct {
		Type, Device string
		Info         map[string]json.RawMessage
	}
	if err := json.Unmarshal(m.Data, &frame); err != nil || frame.Type != "info" || frame.Device != "kitchen" || string(infoPayload(frame.Info)) != first {
		t.Errorf("B's /ws info frame %s (%v)", m.Data, err)
	}
	s2, snap, err := b.hub.Subscribe(-1, 0)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if len(snap) != 1 || snap[0].Kind != gateway.KindSnapshot || !strings.Contains(string(snap[0].Data), `"info":`+first) {
		t.Errorf("B's snapshot does not hold kitchen's info: %s", snap[0].Data)
	}

	// A's change reaches B.
	board.Publish(attr("rssi", `-55`))
	const second = `{"fw":"1.2.0","rssi":-55}`
	if m := nextInfo(t, s, "kitchen"); !strings.Contains(string(m.Data), `"info":`+second) {
		t.Errorf("B's info frame after A's change: %s", m.Data)
	}
	if got := b.infoOf("kitchen"); got != second {
		t.Errorf("B's info after A's change: %s, want %s", got, second)
	}

	// Hostile payloads on the info topic: each rejected and counted; B's
	// info, its browsers and A stay as they were.
	evil := newClient(t, br.URL(), clientOptions{}, nil)
	many := map[string]int{}
	for i := range gateway.MaxLabelsPerDevice + 1 {
		many[fmt.Sprintf("k%d", i)] = i
	}
	tooMany, _ := json.Marshal(many)
	for _, h := range []struct{ name, payload string }{
		{"an array", `[1,2,3]`},
		{"a string", `"1.2.0"`},
		{"null", `null`},
		{"not JSON", `{"fw":`},
		{"binary", "\xff\xfe\x00"},
		{"over 64 KiB", `{"fw":"` + strings.Repeat("x", 70<<10) + `"}`},
		{"a value over value_bytes", `{"fw":"` + strings.Repeat("x", gateway.DefaultValueBytes) + `"}`},
		{"too many attributes", string(tooMany)},
		{"a bad name", `{"a/b":1}`},
	} {
		before := b.bridge.m.inboundRejected.Load()
		evil.publish("esp32gw/kitchen/info", h.payload, false)
		waitFor(t, within, h.name+" to be rejected", func() bool { return b.bridge.m.inboundRejected.Load() == before+1 })
		if got := b.infoOf("kitchen"); got != second {
			t.Errorf("after %s: B's info %s, want %s", h.name, got, second)
		}
		if got := a.infoOf("kitchen"); got != second {
			t.Errorf("after %s: A's info %s, want %s", h.name, got, second)
		}
		noInfo(t, s, "kitchen", h.name)
	}
	if st, _ := b.hub.DeviceState("kitchen"); !st.Online || st.Labels["temp"].Value == nil {
		t.Errorf("B's kitchen disturbed: online %v labels %v", st.Online, st.Labels)
	}

	// An empty (cleared) info clears B's copy.
	evil.publish("esp32gw/kitchen/info", "", false)
	if m := nextInfo(t, s, "kitchen"); !strings.Contains(string(m.Data), `"info":{}`) {
		t.Errorf("B's info frame after clearing: %s", m.Data)
	}
	if got := b.infoOf("kitchen"); got != `{}` {
		t.Errorf("B's info after clearing: %s", got)
	}
	// And A's next change brings it back.
	board.Publish(attr("rssi", `-50`))
	const third = `{"fw":"1.2.0","rssi":-50}`
	waitFor(t, within, "B to show A's newest info", func() bool { return b.infoOf("kitchen") == third })

	// B never published A's info as its own: each of A's payloads is on
	// the topic once.
	time.Sleep(300 * time.Millisecond)
	seen := map[string]int{}
	for _, m := range append(watch.pending, drainNow(watch)...) {
		seen[m.Payload]++
	}
	for _, p := range []string{first, second, third} {
		if seen[p] != 1 {
			t.Errorf("info %s published %d times, want once (by A only)", p, seen[p])
		}
	}
}

// An info that comes before its device's meta waits for it, bounded like
// the values that wait; an info of a device that is never announced is
// forgotten with it.
func TestClusterInfoBeforeMeta(t *testing.T) {
	checkNoLeak(t)
	br := startBroker(t, mosquittotest.Options{})
	b := startGateway(t, br.URL(), gwOptions{id: "pi-b", mqtt: clustered})
	b.waitConnected(within)
	c := newClient(t, br.URL(), clientOptions{}, nil)
	t.Cleanup(func() {
		for _, topic := range []string{"esp32gw/ghost/info", "esp32gw/ghost/meta", "esp32gw/ghost/status"} {
			c.publish(topic, "", true)
		}
	})
	c.publish("esp32gw/ghost/info", `{"fw":"2.0.0","chip":"esp32c3"}`, true)
	waitFor(t, within, "the info to wait for its meta", func() bool { return b.bridge.m.remotePending.Load() == 1 })
	if _, err := b.hub.DeviceState("ghost"); err == nil {
		t.Fatal("ghost imported without a meta")
	}
	c.publish("esp32gw/ghost/meta", `{"gateway":"pi-c","name":"Ghost","transport":"serial","commands":[]}`, true)
	waitFor(t, within, "ghost's info", func() bool { return b.infoOf("ghost") == `{"chip":"esp32c3","fw":"2.0.0"}` })
	if st, _ := b.hub.DeviceState("ghost"); st.Online {
		t.Errorf("ghost online without a status")
	}
	// Its gateway withdraws it: gone, info and all.
	c.publish("esp32gw/ghost/meta", "", true)
	waitFor(t, within, "ghost to be removed", func() bool { _, err := b.hub.DeviceState("ghost"); return err != nil })
}
