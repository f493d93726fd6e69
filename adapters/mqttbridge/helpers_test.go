package mqttbridge

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/esp32gw/esp32gw/adapters/sim"
	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/mosquittotest"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// testGateway is an in-process gateway: a real hub, sim boards and the
// bridge, all stopped (and waited for) by the test's Cleanup or stop.
type testGateway struct {
	t      *testing.T
	hub    *gateway.Hub
	bridge *Bridge
	logs   *testutil.SyncBuffer
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

type gwOptions struct {
	id      string
	devices []gateway.DeviceConfig
	mqtt    func(*gateway.MQTTConfig)
	bridge  func(*Bridge) // knobs, before Run
	options []Option      // for New
}

func tutorial(id string, interval time.Duration) gateway.DeviceConfig {
	return gateway.DeviceConfig{ID: id, Name: "Board " + id, Transport: gateway.TransportSim, Commands: []string{"toggle"},
		CommandFormat: gateway.FormatText, Sim: gateway.SimConfig{Board: "tutorial", Interval: gateway.Duration(interval)}}
}

func startGateway(t *testing.T, brokerURL string, o gwOptions) *testGateway {
	t.Helper()
	if o.id == "" {
		o.id = "gw1"
	}
	logs := &testutil.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	hub := gateway.NewHub(gateway.Options{GatewayID: o.id, Logger: log})
	cfg := gateway.DefaultConfig().MQTT
	cfg.Enabled = true
	cfg.Broker = brokerURL
	cfg.ClientID = "esp32gw-test-" + o.id
	if o.mqtt != nil {
		o.mqtt(&cfg)
	}
	for _, d := range o.devices {
		if err := hub.AddDevice(gateway.DeviceInfo{ID: d.ID, Name: d.Name, Transport: d.Transport, Commands: d.Commands}); err != nil {
			t.Fatal(err)
		}
	}
	b := New(cfg, hub, log, o.options...)
	if o.bridge != nil {
		o.bridge(b)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &testGateway{t: t, hub: hub, bridge: b, logs: logs, cancel: cancel}
	for _, d := range o.devices {
		g.wg.Go(func() { _ = sim.New(d, log).Run(ctx, hub) })
	}
	g.wg.Go(func() {
		if err := b.Run(ctx); err != nil {
			t.Errorf("bridge Run: %v", err)
		}
	})
	t.Cleanup(g.stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway %s log:\n%s", o.id, logs.String())
		}
	})
	return g
}

// stop shuts the gateway down in main's order: boards, hub, bridge.
func (g *testGateway) stop() {
	g.once.Do(func() {
		g.cancel()
		done := make(chan struct{})
		go func() { g.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			g.t.Errorf("gateway did not stop within 10 s")
		}
		g.hub.Close()
	})
}

// waitConnected waits until the bridge is connected to the broker.
func (g *testGateway) waitConnected(within time.Duration) time.Duration {
	g.t.Helper()
	start := time.Now()
	up, change := g.bridge.conn.gate.state()
	if up {
		return 0
	}
	select {
	case <-change:
		return time.Since(start)
	case <-time.After(within):
		g.t.Fatalf("bridge not connected within %v\n%s", within, g.logs.String())
		return 0
	}
}

// label returns a device label's current value in the hub.
func (g *testGateway) label(dev, label string) (string, bool) {
	st, err := g.hub.DeviceState(dev)
	if err != nil {
		return "", false
	}
	v, ok := st.Labels[label]
	return string(v.Value), ok
}

// waitFor polls cond (cheap, in-process state) until it holds or the
// deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// msg is one message a test client received.
type msg struct {
	Topic    string
	Payload  string
	Retained bool
	QoS      byte
}

// client is a test MQTT client that records what it receives.
type client struct {
	t       *testing.T
	c       mqtt.Client
	ch      chan msg
	pending []msg // received, not yet asked for (used by expect only)
}

type clientOptions struct {
	id         string
	persistent bool // CleanSession false, auto-reconnect
	tls        *tls.Config
	user, pass string
}

func newClient(t *testing.T, brokerURL string, co clientOptions, subs map[string]byte) *client {
	t.Helper()
	if co.id == "" {
		co.id = fmt.Sprintf("test-%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano())
	}
	cl := &client{t: t, ch: make(chan msg, 100000)}
	o := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(co.id).
		SetCleanSession(!co.persistent).SetAutoReconnect(co.persistent).SetConnectRetry(co.persistent).
		SetMaxReconnectInterval(300 * time.Millisecond).SetConnectRetryInterval(300 * time.Millisecond).
		SetConnectTimeout(2 * time.Second).SetUsername(co.user).SetPassword(co.pass).SetOrderMatters(true)
	if co.tls != nil {
		o.SetTLSConfig(co.tls)
	}
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		select {
		case cl.ch <- msg{m.Topic(), string(m.Payload()), m.Retained(), m.Qos()}:
		default:
			t.Errorf("test client queue full")
		}
	})
	o.SetOnConnectHandler(func(c mqtt.Client) {
		if len(subs) > 0 {
			c.SubscribeMultiple(subs, nil) // the token completes on SUBACK; the first connect waits below
		}
	})
	cl.c = mqtt.NewClient(o)
	tok := cl.c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("test client connect: %v", tok.Error())
	}
	if len(subs) > 0 {
		// Make sure the subscription is in place before the test goes on.
		st := cl.c.SubscribeMultiple(subs, nil)
		if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
			t.Fatalf("test client subscribe: %v", st.Error())
		}
	}
	t.Cleanup(func() { cl.c.Disconnect(100) })
	return cl
}

func (cl *client) publish(topic, payload string, retained bool) {
	cl.t.Helper()
	tok := cl.c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		cl.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// expect returns the first message on topic for which ok holds (nil: any),
// failing after within. Messages it passes over are kept for later
// expects, so the order in which a test asks does not lose any.
func (cl *client) expect(topic string, within time.Duration, ok func(msg) bool) msg {
	cl.t.Helper()
	match := func(m msg) bool { return m.Topic == topic && (ok == nil || ok(m)) }
	for i, m := range cl.pending {
		if match(m) {
			cl.pending = append(cl.pending[:i:i], cl.pending[i+1:]...)
			return m
		}
	}
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case m := <-cl.ch:
			if match(m) {
				return m
			}
			cl.pending = append(cl.pending, m)
		case <-timer.C:
			cl.t.Fatalf("no matching message on %s within %v", topic, within)
			return msg{}
		}
	}
}

// drain returns what arrived until no message came for quiet (used only to
// collect retained messages after a barrier message proved delivery).
func (cl *client) collectUntil(stop func(msg) bool, within time.Duration) []msg {
	cl.t.Helper()
	var got []msg
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case m := <-cl.ch:
			got = append(got, m)
			if stop(m) {
				return got
			}
		case <-timer.C:
			cl.t.Fatalf("collect: stop condition not met within %v (got %d messages)", within, len(got))
			return got
		}
	}
}

func startBroker(t *testing.T, o mosquittotest.Options) *mosquittotest.Broker {
	return mosquittotest.Start(t, o)
}

// checkNoLeak fails when goroutines started during the test are still
// running shortly after it ended (every owner must have stopped its own).
func checkNoLeak(t *testing.T) { testutil.CheckGoroutines(t) }

func mustJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not a JSON object: %q: %v", s, err)
	}
	return m
}
