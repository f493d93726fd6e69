package mqttbridge

import (
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/mosquittotest"
)

// A gateway that dies without DISCONNECT (SIGKILL, power loss): the broker
// publishes its Will on the shared bridge/state. B re-asserts "online"
// there, pings, and marks only the silent gateway's devices offline; C,
// alive, keeps its device online. A clean restart of A brings its device
// back on B.
func TestClusterGatewayDies(t *testing.T) {
	checkNoLeak(t)
	br := startBroker(t, mosquittotest.Options{})
	a := startGateway(t, br.URL(), gwOptions{id: "pi-a", devices: []gateway.DeviceConfig{tutorial("demo", 50*time.Millisecond)}, mqtt: clustered})
	b := startGateway(t, br.URL(), gwOptions{id: "pi-b", mqtt: clustered})
	c := startGateway(t, br.URL(), gwOptions{id: "pi-c", devices: []gateway.DeviceConfig{tutorial("bench", time.Hour)}, mqtt: clustered})
	a.waitConnected(within)
	b.waitConnected(within)
	c.waitConnected(within)
	waitFor(t, within, "B to show demo and bench online", func() bool {
		d, err1 := b.hub.DeviceState("demo")
		e, err2 := b.hub.DeviceState("bench")
		return err1 == nil && err2 == nil && d.Online && e.Online
	})
	watch := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/bridge/state": 1})
	watch.expect("esp32gw/bridge/state", within, func(m msg) bool { return m.Retained && m.Payload == "online" })

	// A's connection ends without DISCONNECT, and A cannot reconnect.
	start := time.Now()
	a.bridge.conn.conns.abort()
	watch.expect("esp32gw/bridge/state", within, func(m msg) bool { return m.Payload == "offline" }) // A's Will
	watch.expect("esp32gw/bridge/state", within, func(m msg) bool { return m.Payload == "online" })  // re-asserted
	waitFor(t, 5*time.Second, "B to show demo offline", func() bool { st, _ := b.hub.DeviceState("demo"); return !st.Online })
	took := time.Since(start)
	t.Logf("A's death to B showing demo offline: %v", took)
	st, _ := b.hub.DeviceState("demo")
	if st.Reason != "gateway pi-a stopped answering" {
		t.Errorf("demo's reason on B = %q", st.Reason)
	}
	if st, _ := b.hub.DeviceState("bench"); !st.Online {
		t.Errorf("bench (on live gateway pi-c) went offline on B: %q", st.Reason)
	}
	late := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/bridge/state": 1})
	if m := late.expect("esp32gw/bridge/state", within, nil); m.Payload != "online" || !m.Retained {
		t.Errorf("retained bridge/state = %q (retained %v), want online", m.Payload, m.Retained)
	}

	// A comes back: its retained statuses and values re-import demo.
	a.stop()
	a2 := startGateway(t, br.URL(), gwOptions{id: "pi-a", devices: []gateway.DeviceConfig{tutorial("demo", 50*time.Millisecond)}, mqtt: clustered})
	a2.waitConnected(within)
	waitFor(t, within, "B to show demo online again", func() bool { st, _ := b.hub.DeviceState("demo"); return st.Online })
	for _, g := range []*testGateway{b, c} {
		if _, err := g.hub.DeviceState("bridge"); err == nil {
			t.Errorf("a gateway imported the bridge topics as a device")
		}
	}
}

// A gateway that died while we were away left its devices' statuses
// retained "online": after connecting, B checks who answers and marks the
// dead gateway's devices offline; a live gateway's stay online.
func TestClusterGatewayDiedWhileAway(t *testing.T) {
	checkNoLeak(t)
	br := startBroker(t, mosquittotest.Options{})
	a := startGateway(t, br.URL(), gwOptions{id: "pi-a", devices: []gateway.DeviceConfig{tutorial("demo", time.Hour)}, mqtt: clustered})
	c := startGateway(t, br.URL(), gwOptions{id: "pi-c", devices: []gateway.DeviceConfig{tutorial("bench", time.Hour)}, mqtt: clustered})
	a.waitConnected(within)
	c.waitConnected(within)
	retainedEventually(t, br.URL(), "esp32gw/demo/status", "online")
	retainedEventually(t, br.URL(), "esp32gw/bench/status", "online")
	a.bridge.conn.conns.abort()                                       // A dies; its devices' statuses stay retained "online"
	retainedEventually(t, br.URL(), "esp32gw/bridge/state", "online") // C re-asserted it

	start := time.Now()
	b := startGateway(t, br.URL(), gwOptions{id: "pi-b", mqtt: clustered})
	b.waitConnected(within)
	waitFor(t, within, "B to import bench", func() bool { st, err := b.hub.DeviceState("bench"); return err == nil && st.Online })
	waitFor(t, 10*time.Second, "B to show demo offline", func() bool {
		st, err := b.hub.DeviceState("demo")
		return err == nil && !st.Online && st.Reason == "gateway pi-a stopped answering"
	})
	t.Logf("B's start to demo shown offline: %v", time.Since(start))
	if st, _ := b.hub.DeviceState("bench"); !st.Online {
		t.Errorf("bench (on live gateway pi-c) went offline on B: %q", st.Reason)
	}
}
