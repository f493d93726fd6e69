package mqttbridge

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/mosquittotest"
)

func clustered(c *gateway.MQTTConfig) { c.Cluster = true; c.ClientID = "esp32gw" }

// Two gateways on one broker: B shows A's board (marked with A), follows
// its readings, and commands it; neither re-imports its own devices.
func TestClusterTwoGateways(t *testing.T) {
	checkNoLeak(t)
	br := startBroker(t, mosquittotest.Options{})
	a := startGateway(t, br.URL(), gwOptions{id: "pi-a", devices: []gateway.DeviceConfig{tutorial("demo", 50*time.Millisecond)}, mqtt: clustered})
	b := startGateway(t, br.URL(), gwOptions{id: "pi-b", devices: []gateway.DeviceConfig{tutorial("bench", time.Hour)}, mqtt: clustered})
	a.waitConnected(within)
	b.waitConnected(within)
	if a.bridge.conn.clientID == b.bridge.conn.clientID {
		t.Fatalf("both gateways use client id %q", a.bridge.conn.clientID)
	}

	waitFor(t, within, "B to show A's board online with readings", func() bool {
		st, err := b.hub.DeviceState("demo")
		_, has := st.Labels["count"]
		return err == nil && st.Online && has
	})
	st, _ := b.hub.DeviceState("demo")
	if st.Gateway != "pi-a" || !st.Remote || len(st.Commands) != 1 || st.Commands[0] != "toggle" {
		t.Errorf("B's view of demo: gateway %q remote %v commands %v", st.Gateway, st.Remote, st.Commands)
	}
	waitFor(t, within, "A to show B's board", func() bool { st, err := a.hub.DeviceState("bench"); return err == nil && st.Gateway == "pi-b" })
	if st, _ := a.hub.DeviceState("demo"); st.Remote || st.Gateway != "pi-a" {
		t.Errorf("A re-imported its own device: %+v", st)
	}

	// A command on B reaches the board on A, and the new state comes back.
	if err := b.hub.Command(t.Context(), "demo", gateway.Command{Label: "led", Value: json.RawMessage(`"toggle"`)}); err != nil {
		t.Fatalf("command via B: %v", err)
	}
	if v, _ := a.label("demo", "ledStatus"); v != `"LED ON"` {
		t.Errorf("A's board: ledStatus %s, want LED ON right after the ack", v)
	}
	waitFor(t, within, "B to see LED ON", func() bool { v, _ := b.label("demo", "ledStatus"); return v == `"LED ON"` })
	// Empty label: the set topic gets an empty level, and it still works.
	if err := b.hub.Command(t.Context(), "demo", gateway.Command{Value: json.RawMessage(`"toggle"`)}); err != nil {
		t.Fatalf("command without label via B: %v", err)
	}
	waitFor(t, within, "B to see LED OFF", func() bool { v, _ := b.label("demo", "ledStatus"); return v == `"LED OFF"` })

	// B checks A's allow-list itself.
	err := b.hub.Command(t.Context(), "demo", gateway.Command{Value: json.RawMessage(`"explode"`)})
	if !errors.Is(err, gateway.ErrNotAllowed) {
		t.Errorf("explode via B: %v, want ErrNotAllowed", err)
	}

	// A goes away cleanly: B shows its board offline and refuses commands.
	a.stop()
	waitFor(t, within, "B to show demo offline", func() bool { st, _ := b.hub.DeviceState("demo"); return !st.Online })
	err = b.hub.Command(t.Context(), "demo", gateway.Command{Value: json.RawMessage(`"toggle"`)})
	if !errors.Is(err, gateway.ErrOffline) {
		t.Errorf("command for a board whose gateway left: %v, want ErrOffline", err)
	}
}

// A gateway that does not answer: the command fails with a clear timeout,
// within the contract's 2 s.
func TestClusterCommandTimeout(t *testing.T) {
	br := startBroker(t, mosquittotest.Options{})
	b := startGateway(t, br.URL(), gwOptions{id: "pi-b", mqtt: clustered})
	b.waitConnected(within)
	// A gateway that announced a board and then hung (or was SIGKILLed).
	c := newClient(t, br.URL(), clientOptions{}, nil)
	c.publish("esp32gw/ghost/meta", `{"gateway":"pi-c","name":"Ghost","transport":"serial","commands":["toggle"]}`, true)
	c.publish("esp32gw/ghost/status", "online", true)
	t.Cleanup(func() {
		c.publish("esp32gw/ghost/meta", "", true)
		c.publish("esp32gw/ghost/status", "", true)
	})
	waitFor(t, within, "ghost to be imported online", func() bool { st, err := b.hub.DeviceState("ghost"); return err == nil && st.Online })
	start := time.Now()
	err := b.hub.Command(t.Context(), "ghost", gateway.Command{Label: "led", Value: json.RawMessage(`"toggle"`)})
	took := time.Since(start)
	if !errors.Is(err, gateway.ErrTimeout) || !strings.Contains(err.Error(), "pi-c") {
		t.Errorf("err = %v, want a timeout naming gateway pi-c", err)
	}
	if took > 2*time.Second {
		t.Errorf("answer after %v; the contract says within 2 s", took)
	}
	// Its gateway withdraws it: it disappears from B.
	c.publish("esp32gw/ghost/meta", "", true)
	waitFor(t, within, "ghost to be removed", func() bool { _, err := b.hub.DeviceState("ghost"); return err != nil })
}

// ssl:// with a private CA, and username/password; a wrong password keeps
// retrying and never shows up in the logs.
func TestTLSAndPassword(t *testing.T) {
	br := startBroker(t, mosquittotest.Options{TLS: true, Users: map[string]string{"gw": "s3cret-pass"}})
	pem, err := os.ReadFile(br.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	// The user's way: mqtt.ca_file names the private CA.
	g := startGateway(t, br.URL(), gwOptions{devices: []gateway.DeviceConfig{tutorial("demo", 50*time.Millisecond)},
		mqtt: func(c *gateway.MQTTConfig) { c.Username, c.Password, c.CAFile = "gw", "s3cret-pass", br.CAFile }})
	g.waitConnected(within)
	c := newClient(t, br.URL(), clientOptions{tls: tc, user: "gw", pass: "s3cret-pass"}, map[string]byte{"esp32gw/demo/count": 1})
	c.expect("esp32gw/demo/count", within, nil)

	bad := startGateway(t, br.URL(), gwOptions{id: "gw2",
		mqtt:   func(c *gateway.MQTTConfig) { c.Username, c.Password = "gw", "wrong-pass-xyz" },
		bridge: func(b *Bridge) { b.conn.tlsConfig = tc }})
	waitFor(t, within, "the bad password to be refused twice", func() bool { return bad.bridge.m.connectFailures.Load() >= 2 })
	bad.stop()
	for _, logs := range []string{g.logs.String(), bad.logs.String()} {
		if strings.Contains(logs, "s3cret-pass") || strings.Contains(logs, "wrong-pass-xyz") {
			t.Errorf("a password reached the log:\n%s", logs)
		}
	}
	if !strings.Contains(bad.logs.String(), "not Authorized") && !strings.Contains(bad.logs.String(), "bad user name or password") {
		t.Logf("refusal as logged:\n%s", bad.logs.String())
	}
}

// With mqtt.cluster off the bridge has no cluster: other gateways' state
// and results are ignored, and no cluster subscription is made.
func TestClusterOffHasNoCluster(t *testing.T) {
	hub := gateway.NewHub(gateway.Options{GatewayID: "me"})
	defer hub.Close()
	b := New(gateway.DefaultConfig().MQTT, hub, nil)
	if b.cluster != nil {
		t.Fatal("cluster mode off, but the bridge has a cluster")
	}
	for _, topic := range []string{"esp32gw/other/meta", "esp32gw/other/set/led/result", "esp32gw/bridge/ping", "esp32gw/bridge/state"} {
		b.onMessage(nil, fakeMessage{topic: topic, payload: []byte(`{"gateway":"x"}`)})
	}
	if n, _ := b.out.len(); n != 0 {
		t.Errorf("%d messages queued for the broker, want none (no alive answer without cluster)", n)
	}
	if _, ok := b.conn.filters["esp32gw/+/+"]; ok || len(b.conn.filters) != 1 {
		t.Errorf("subscriptions without cluster: %v", b.conn.filters)
	}
}
