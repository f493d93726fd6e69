package mqttbridge

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/mosquittotest"
)

// reconnectDeadline is the contract's reconnect cap (30 s) plus room for
// one connection attempt; used only as a deadline.
const reconnectDeadline = 35 * time.Second

// The broker stops for about 5 s (100 readings at 20/s) and comes back with
// its persistence file: a persistent QoS 1 subscriber receives every
// reading (duplicates allowed, none missing), the bridge's subscriptions
// and retained states are back. The test logs the delivery percentage and
// the reconnect time.
func TestBrokerRestartDeliversEveryReading(t *testing.T) {
	checkNoLeak(t)
	br := startBroker(t, mosquittotest.Options{Persistence: true})
	g := startGateway(t, br.URL(), gwOptions{devices: []gateway.DeviceConfig{tutorial("demo", 50*time.Millisecond)}})
	g.waitConnected(within)

	var mu sync.Mutex
	got := map[int]int{}
	sub := newClient(t, br.URL(), clientOptions{id: "restart-subscriber", persistent: true}, map[string]byte{"esp32gw/demo/count": 1})
	// Count every reading the subscriber receives, from a goroutine this
	// test owns and stops.
	stopCount := make(chan struct{})
	counted := make(chan struct{})
	go func() {
		defer close(counted)
		for {
			select {
			case m := <-sub.ch:
				if n, err := strconv.Atoi(m.Payload); err == nil {
					mu.Lock()
					got[n]++
					mu.Unlock()
				}
			case <-stopCount:
				return
			}
		}
	}()
	defer func() { close(stopCount); <-counted }()
	maxGot := func() int {
		mu.Lock()
		defer mu.Unlock()
		m := -1
		for n := range got {
			m = max(m, n)
		}
		return m
	}
	count := func() int {
		v, _ := g.label("demo", "count")
		n, _ := strconv.Atoi(v)
		return n
	}
	waitFor(t, within, "the subscriber to receive readings", func() bool { return maxGot() >= 10 })
	first := func() int {
		mu.Lock()
		defer mu.Unlock()
		m := 1 << 30
		for n := range got {
			m = min(m, n)
		}
		return m
	}()

	br.Stop()
	downAt := count()
	// ~5 s outage, measured in readings the board produced meanwhile.
	waitFor(t, 20*time.Second, "100 readings while the broker is down", func() bool { return count() >= downAt+100 })
	if g.bridge.conn.gate.isUp() {
		t.Fatal("bridge still connected with the broker stopped")
	}
	backlog, _ := g.bridge.out.len()
	br.Restart()
	restartAt := time.Now()
	g.waitConnected(reconnectDeadline)
	reconnect := time.Since(restartAt)

	target := count() + 10
	waitFor(t, 30*time.Second, fmt.Sprintf("the subscriber to catch up to %d", target), func() bool { return maxGot() >= target })
	mu.Lock()
	missing := []int{}
	dups := 0
	for n := first; n <= target; n++ {
		if got[n] == 0 {
			missing = append(missing, n)
		}
		if got[n] > 1 {
			dups += got[n] - 1
		}
	}
	mu.Unlock()
	total := target - first + 1
	pct := 100 * float64(total-len(missing)) / float64(total)
	t.Logf("broker restart: down for %d readings at 20/s (backlog %d msgs when it returned), reconnect %.2fs after the broker restarted; delivered %d/%d readings = %.2f%%, %d duplicates",
		100, backlog, reconnect.Seconds(), total-len(missing), total, pct, dups)
	if len(missing) > 0 {
		t.Errorf("readings missing after the restart: %v", missing)
	}

	// Retained states and subscriptions are back.
	c := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/bridge/state": 1, "esp32gw/demo/status": 1, "esp32gw/demo/set/+/result": 1})
	if m := c.expect("esp32gw/bridge/state", within, func(m msg) bool { return m.Retained }); m.Payload != "online" {
		t.Errorf("bridge/state after restart = %q", m.Payload)
	}
	if m := c.expect("esp32gw/demo/status", within, func(m msg) bool { return m.Retained }); m.Payload != "online" {
		t.Errorf("demo/status after restart = %q", m.Payload)
	}
	c.publish("esp32gw/demo/set/led", "toggle", false)
	if m := c.expect("esp32gw/demo/set/led/result", within, nil); m.Payload != `{"ok":true}` {
		t.Errorf("command after restart: %s", m.Payload)
	}
}

// SIGKILL variant: the broker loses what it had not saved, but the bridge
// re-publishes its retained states on reconnect, so a fresh subscriber sees
// the truth again.
func TestBrokerCrashRestoresRetainedState(t *testing.T) {
	br := startBroker(t, mosquittotest.Options{})
	g := startGateway(t, br.URL(), gwOptions{devices: []gateway.DeviceConfig{tutorial("demo", time.Hour)}})
	g.waitConnected(within)
	if err := g.hub.Command(t.Context(), "demo", gateway.Command{Value: json.RawMessage(`"toggle"`)}); err != nil {
		t.Fatal(err)
	}
	br.Kill()
	br.Restart() // no persistence: every retained message is gone
	waitFor(t, reconnectDeadline, "the bridge to reconnect", func() bool { return g.bridge.m.connects.Load() >= 2 })
	for topic, want := range map[string]string{
		"esp32gw/bridge/state":   "online",
		"esp32gw/demo/status":    "online",
		"esp32gw/demo/ledStatus": `"LED ON"`,
		"esp32gw/demo/count":     "0",
	} {
		retainedEventually(t, br.URL(), topic, want)
	}
}

// retainedEventually checks, as a user subscribing now would, that topic's
// retained message becomes want (the re-publish after a reconnect is
// queued behind the backlog, so it may take a moment).
func retainedEventually(t *testing.T, url, topic, want string) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := "(nothing)"
	for time.Now().Before(deadline) {
		c := newClient(t, url, clientOptions{}, map[string]byte{topic: 1})
		select {
		case m := <-c.ch:
			if m.Retained && m.Payload == want {
				c.c.Disconnect(0)
				return
			}
			last = m.Payload
		case <-time.After(200 * time.Millisecond):
		}
		c.c.Disconnect(0)
	}
	t.Errorf("retained %s = %s, want %s", topic, last, want)
}

// The broker is down when the gateway starts: the hub serves, the bridge
// keeps retrying, and comes online within the cap once the broker is up.
func TestBrokerDownAtStart(t *testing.T) {
	checkNoLeak(t)
	br := startBroker(t, mosquittotest.Options{})
	br.Stop()
	g := startGateway(t, br.URL(), gwOptions{devices: []gateway.DeviceConfig{tutorial("demo", 50*time.Millisecond)}})
	// Browsers are served from the hub meanwhile: readings flow.
	waitFor(t, within, "readings with the broker down", func() bool { v, _ := g.label("demo", "count"); return v != "" && v != "0" })
	waitFor(t, within, "a failed connection attempt", func() bool { return g.bridge.m.connectFailures.Load() >= 1 })
	br.Restart()
	d := g.waitConnected(reconnectDeadline)
	t.Logf("bridge online %.2fs after the broker started (%d failed attempts before)", d.Seconds(), g.bridge.m.connectFailures.Load())
	c := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/bridge/state": 1})
	if m := c.expect("esp32gw/bridge/state", within, nil); m.Payload != "online" {
		t.Errorf("bridge/state = %q", m.Payload)
	}
	if strings.Count(g.logs.String(), "cannot connect") != 1 {
		t.Errorf("the connect failure should be logged once, not every attempt:\n%s", g.logs.String())
	}
}

// With the broker away the backlog stays within its bounds, drops the
// oldest readings first, and /metrics says how many.
func TestBacklogBoundedWhileBrokerDown(t *testing.T) {
	br := startBroker(t, mosquittotest.Options{})
	g := startGateway(t, br.URL(), gwOptions{devices: []gateway.DeviceConfig{tutorial("demo", 10*time.Millisecond)},
		bridge: func(b *Bridge) { b.out.opt.maxLen, b.out.opt.maxBytes = 50, 1<<20 }})
	g.waitConnected(within)
	br.Stop()
	waitFor(t, within, "the bridge to notice", func() bool { return !g.bridge.conn.gate.isUp() })
	waitFor(t, within, "drops", func() bool { return g.bridge.out.dropped.Load() >= 20 })
	if n, _ := g.bridge.out.len(); n > 50 {
		t.Errorf("backlog %d > 50", n)
	}
	var sb strings.Builder
	g.bridge.WriteMetrics(&sb)
	if !strings.Contains(sb.String(), "esp32gw_mqtt_backlog_dropped_total ") || strings.Contains(sb.String(), "esp32gw_mqtt_backlog_dropped_total 0\n") {
		t.Errorf("metrics do not show the drops:\n%s", sb.String())
	}
	if !strings.Contains(sb.String(), "esp32gw_mqtt_connected 0\n") {
		t.Errorf("metrics should say disconnected:\n%s", sb.String())
	}
}
