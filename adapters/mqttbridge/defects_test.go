package mqttbridge

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/backoff"
	"github.com/esp32gw/esp32gw/internal/mosquittotest"
)

// The broker stops acknowledging (the network back from it died) while
// the in-flight window is full: shutdown still leaves the offline states
// on the broker, sent past the window, and closes the connection without
// DISCONNECT so the Last Will is not discarded; all within main's budget.
func TestShutdownWhenBrokerStopsAcknowledging(t *testing.T) {
	checkNoLeak(t)
	br := startBroker(t, mosquittotest.Options{})
	px := mosquittotest.StartProxy(t, br)
	g := startGateway(t, px.URL(), gwOptions{devices: []gateway.DeviceConfig{tutorial("demo", 10*time.Millisecond)},
		bridge: func(b *Bridge) { b.pub.window = 4 }})
	g.waitConnected(within)
	c := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/bridge/state": 1, "esp32gw/demo/status": 1, "esp32gw/demo/count": 1})
	c.expect("esp32gw/demo/status", within, func(m msg) bool { return m.Payload == "online" })
	c.expect("esp32gw/demo/count", within, nil)

	px.FreezeDownstream()
	// The window fills with publishes the broker got but whose PUBACKs
	// never arrive; readings pile up in the outbox behind it.
	waitFor(t, within, "a backlog behind the full window", func() bool { n, _ := g.bridge.out.len(); return n > 20 })
	start := time.Now()
	g.stop()
	if d := time.Since(start); d > 3500*time.Millisecond {
		t.Errorf("shutdown took %v; main's whole budget is 4 s", d)
	}
	late := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/bridge/state": 1, "esp32gw/demo/status": 1})
	if m := late.expect("esp32gw/demo/status", within, nil); m.Payload != "offline" {
		t.Errorf("retained demo/status = %q, want offline\n%s", m.Payload, g.logs.String())
	}
	if m := late.expect("esp32gw/bridge/state", within, nil); m.Payload != "offline" {
		t.Errorf("retained bridge/state = %q, want offline", m.Payload)
	}
	if !strings.Contains(g.logs.String(), "without DISCONNECT") {
		t.Errorf("the bridge should have closed the connection without DISCONNECT:\n%s", g.logs.String())
	}
}

// Shutdown during a connect attempt to a broker that never answers: Run
// returns at once, and only after paho has let go of the connection.
func TestShutdownDuringConnect(t *testing.T) {
	checkNoLeak(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, 1024)
		for { // read CONNECT and never answer; end when the client closes
			if _, err := conn.Read(buf); err != nil {
				close(closed)
				return
			}
		}
	})
	g := startGateway(t, "tcp://"+ln.Addr().String(), gwOptions{})
	waitFor(t, within, "a connection to the silent broker", func() bool { return connecting(g) })
	start := time.Now()
	g.stop()
	if d := time.Since(start); d > time.Second {
		t.Errorf("shutdown during a connect took %v", d)
	}
	// paho let go of the socket before Run returned: the broker side sees
	// the close at once, not after paho's 5 s connect timeout.
	select {
	case <-closed:
	case <-time.After(500 * time.Millisecond):
		t.Errorf("Run returned while paho still held the connection")
	}
}

// connecting reports whether the bridge has a connection open (paho is in
// its handshake).
func connecting(g *testGateway) bool {
	g.bridge.conn.conns.mu.Lock()
	defer g.bridge.conn.conns.mu.Unlock()
	return g.bridge.conn.conns.raw != nil
}

// A subscription the broker refuses (SUBACK 0x80, not a token error):
// the bridge logs it at Error, never says connected, drops the connection
// and tries again.
func TestRefusedSubscriptionReconnects(t *testing.T) {
	checkNoLeak(t)
	br := startBroker(t, mosquittotest.Options{})
	px := mosquittotest.StartProxy(t, br)
	px.RefuseSubscriptions(true)
	g := startGateway(t, px.URL(), gwOptions{devices: []gateway.DeviceConfig{tutorial("demo", time.Hour)},
		bridge: func(b *Bridge) {
			b.conn.backoff = backoff.Policy{Base: 20 * time.Millisecond, Cap: 50 * time.Millisecond}
		}})
	waitFor(t, within, "a second connection after the refusal", func() bool { return g.bridge.m.connects.Load() >= 2 })
	if g.bridge.conn.gate.isUp() || g.bridge.m.connected.Load() {
		t.Errorf("bridge marked connected though its subscription was refused")
	}
	logs := g.logs.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "refused subscriptions") {
		t.Errorf("no Error about the refused subscription:\n%s", logs)
	}
	if strings.Contains(logs, "mqtt connected") {
		t.Errorf("logged connected:\n%s", logs)
	}
	// The broker relents: the next attempt subscribes and connects.
	px.RefuseSubscriptions(false)
	g.waitConnected(within)
}

// A broker URL with user:pass@ never shows the password in the logs.
func TestBrokerURLRedactedInLogs(t *testing.T) {
	br := startBroker(t, mosquittotest.Options{Users: map[string]string{"gw": "s3cret-pass"}})
	g := startGateway(t, "tcp://gw:s3cret-pass@"+br.Addr(), gwOptions{})
	g.waitConnected(within)
	bad := startGateway(t, "tcp://gw:wrong-pass-xyz@"+br.Addr(), gwOptions{id: "gw2"})
	waitFor(t, within, "a refused connection", func() bool { return bad.bridge.m.connectFailures.Load() >= 1 })
	br.Stop()
	waitFor(t, within, "the lost connection", func() bool { return !g.bridge.conn.gate.isUp() })
	g.stop()
	bad.stop()
	for _, logs := range []string{g.logs.String(), bad.logs.String()} {
		if strings.Contains(logs, "s3cret-pass") || strings.Contains(logs, "wrong-pass-xyz") {
			t.Errorf("a password reached the log:\n%s", logs)
		}
		if !strings.Contains(logs, "gw:xxxxx@") {
			t.Errorf("the broker URL should be logged redacted:\n%s", logs)
		}
	}
	if got := redactURL("tcp://u:p a%@h:1"); got != "xxxxx@h:1" {
		t.Errorf("unparsable URL redacted as %q", got)
	}
}

// A slow board delays neither other devices' commands nor its own queued
// ones past the budget: every command is answered within 2 s, and one that
// waited too long is answered "gateway busy" without reaching the board.
func TestSlowBoardCommands(t *testing.T) {
	checkNoLeak(t)
	br := startBroker(t, mosquittotest.Options{})
	c := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/+/set/+/result": 1})
	g := startGateway(t, br.URL(), gwOptions{})
	var sent sync.Map                              // value → true: commands the slow board received
	for _, id := range []string{"slow", "quick"} { // one worker each; before, the same of 4
		if err := g.hub.AddDevice(gateway.DeviceInfo{ID: id, Transport: "ws-dial", Commands: []string{"a", "b", "c", "toggle"}}); err != nil {
			t.Fatal(err)
		}
	}
	slow, err := g.hub.Attach("slow", func(ctx context.Context, cmd gateway.Command) error {
		sent.Store(string(cmd.Value), true)
		<-ctx.Done() // a board whose link never takes the command
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Detach("test over")
	quick, err := g.hub.Attach("quick", func(context.Context, gateway.Command) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer quick.Detach("test over")
	g.waitConnected(within)

	start := time.Now()
	for _, v := range []string{"a", "b", "c"} {
		c.publish("esp32gw/slow/set/"+v, v, false)
	}
	c.publish("esp32gw/quick/set/led", "toggle", false)
	if m := c.expect("esp32gw/quick/set/led/result", within, nil); m.Payload != `{"ok":true}` {
		t.Errorf("quick: %s", m.Payload)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the quick board's command was answered after %v, behind the slow board", d)
	}
	for _, v := range []string{"a", "b", "c"} {
		m := c.expect("esp32gw/slow/set/"+v+"/result", within, nil)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("slow %s answered after %v; the contract says within 2 s", v, d)
		}
		res := mustJSON(t, m.Payload)
		if res["ok"] != false {
			t.Errorf("slow %s: %s, want an error", v, m.Payload)
		}
		if v != "a" {
			if res["error"] != "gateway busy: the command waited too long" {
				t.Errorf("slow %s: %s, want gateway busy", v, m.Payload)
			}
			if _, ran := sent.Load(`"` + v + `"`); ran {
				t.Errorf("slow %s reached the board after waiting too long", v)
			}
		}
	}
}

// fakeMessage is a broker message for onMessage (nothing real delivers
// one without a running dispatcher).
type fakeMessage struct {
	topic    string
	payload  []byte
	retained bool
}

func (m fakeMessage) Duplicate() bool   { return false }
func (m fakeMessage) Qos() byte         { return 0 }
func (m fakeMessage) Retained() bool    { return m.retained }
func (m fakeMessage) Topic() string     { return m.topic }
func (m fakeMessage) MessageID() uint16 { return 0 }
func (m fakeMessage) Payload() []byte   { return m.payload }
func (m fakeMessage) Ack()              {}

var _ mqtt.Message = fakeMessage{}

// paho's handler never drops a command without an answer, coalesces state
// by topic, skips our own devices' echo, and drops oversized or invalid
// input before queueing.
func TestOnMessageQueues(t *testing.T) {
	hub := gateway.NewHub(gateway.Options{GatewayID: "me"})
	defer hub.Close()
	if err := hub.AddDevice(gateway.DeviceInfo{ID: "mine", Transport: "sim"}); err != nil {
		t.Fatal(err)
	}
	cfg := gateway.DefaultConfig().MQTT
	b := New(cfg, hub, nil)
	b.cmds.sets = make(chan setMsg, 2) // no dispatcher runs: the queue fills
	for range 5 {
		b.onMessage(nil, fakeMessage{topic: "esp32gw/mine/set/led", payload: []byte("toggle")})
	}
	if len(b.cmds.sets) != 2 {
		t.Errorf("%d commands queued, want 2", len(b.cmds.sets))
	}
	busy := 0
	for {
		m, ok := b.out.pop()
		if !ok {
			break
		}
		if m.topic == "esp32gw/mine/set/led/result" && string(m.payload) == `{"ok":false,"error":"gateway busy","code":"rate_limited"}` {
			busy++
		}
	}
	if busy != 3 {
		t.Errorf("%d commands answered gateway busy, want 3", busy)
	}

	cfg.Cluster = true
	b = New(cfg, hub, nil)
	for i := range 10000 {
		b.onMessage(nil, fakeMessage{topic: "esp32gw/other/count", payload: []byte{byte('0' + i%10)}})
	}
	b.onMessage(nil, fakeMessage{topic: "esp32gw/mine/count", payload: []byte("1")})                // our echo
	b.onMessage(nil, fakeMessage{topic: "esp32gw/Bad Id/status", payload: []byte("online")})        // invalid id
	b.onMessage(nil, fakeMessage{topic: "esp32gw/other/\x01", payload: []byte("1")})                // invalid label
	b.onMessage(nil, fakeMessage{topic: "esp32gw/other/big", payload: make([]byte, 64<<10+1)})      // oversized
	b.onMessage(nil, fakeMessage{topic: "esp32gw/bridge/meta", payload: []byte(`{"gateway":"x"}`)}) // reserved
	b.onMessage(nil, fakeMessage{topic: "esp32gw/other/status", payload: []byte("online")})
	var got []inMsg
	for {
		m, ok := b.cluster.states.pop()
		if !ok {
			break
		}
		got = append(got, m)
	}
	if len(got) != 2 || got[0].topic != "esp32gw/other/count" || string(got[0].payload) != "9" || got[1].topic != "esp32gw/other/status" {
		t.Errorf("state queue = %+v, want the latest count then the status", got)
	}
	if n := b.m.inboundRejected.Load(); n != 3 {
		t.Errorf("rejected %d, want 3", n)
	}
	// A linksDown note is not overtaken by later state on a queued topic.
	b.cluster.states.push(inMsg{topic: "esp32gw/other/status", payload: []byte("online")})
	b.cluster.linksDown("gone")
	b.cluster.states.push(inMsg{topic: "esp32gw/other/status", payload: []byte("offline")})
	var order []string
	for {
		m, ok := b.cluster.states.pop()
		if !ok {
			break
		}
		order = append(order, m.linksDown+string(m.payload))
	}
	if strings.Join(order, ",") != "online,gone,offline" {
		t.Errorf("order %v", order)
	}
}

// Cluster mode against hostile or stale input: oversized messages, invalid
// ids, labels and gateway names never become devices; statuses for devices
// no gateway announces are forgotten.
func TestClusterHostileInput(t *testing.T) {
	checkNoLeak(t)
	br := startBroker(t, mosquittotest.Options{})
	g := startGateway(t, br.URL(), gwOptions{id: "pi-b", mqtt: clustered, bridge: func(b *Bridge) { b.cluster.metaWait = 200 * time.Millisecond }})
	g.waitConnected(within)
	c := newClient(t, br.URL(), clientOptions{}, map[string]byte{"esp32gw/+/set/+": 1})
	for _, dev := range []string{"junk1", "junk2", "junk3"} {
		c.publish("esp32gw/"+dev+"/status", "online", false)
	}
	waitFor(t, within, "pending entries", func() bool { return g.bridge.m.remotePending.Load() > 0 })
	waitFor(t, within, "pending entries to be forgotten", func() bool { return g.bridge.m.remotePending.Load() == 0 })

	c.publish("esp32gw/evil/meta", `{"gateway":"bad gw\"} 1\n# x","name":"x","transport":"sim","commands":["toggle"]}`, false)
	c.publish("esp32gw/Evil/meta", `{"gateway":"pi-c","name":"x","transport":"sim"}`, false)
	c.publish("esp32gw/big/meta", `{"gateway":"pi-c","name":"`+strings.Repeat("x", 70<<10)+`"}`, false)
	c.publish("esp32gw/bridge/meta", `{"gateway":"pi-c","name":"x","transport":"sim"}`, false)
	// A good one last: once it is in, the others have been handled.
	c.publish("esp32gw/ghost/meta", `{"gateway":"pi-c","name":"Ghost","transport":"serial","commands":["toggle"]}`, false)
	c.publish("esp32gw/ghost/status", "online", false)
	waitFor(t, within, "ghost to be imported", func() bool { st, err := g.hub.DeviceState("ghost"); return err == nil && st.Online })
	for _, id := range []string{"evil", "Evil", "big", "bridge"} {
		if _, ok := g.hub.Device(id); ok {
			t.Errorf("imported %q", id)
		}
	}
	if n := g.bridge.m.inboundRejected.Load(); n < 3 {
		t.Errorf("rejected %d, want at least 3", n)
	}

	// A command for another gateway's board goes out at QoS 0 (never
	// resent by paho after a reconnect) and is answered by our timeout.
	err := g.hub.Command(t.Context(), "ghost", gateway.Command{Label: "led", Value: json.RawMessage(`"toggle"`)})
	if !errors.Is(err, gateway.ErrTimeout) {
		t.Errorf("command for ghost: %v", err)
	}
	if m := c.expect("esp32gw/ghost/set/led", within, nil); m.QoS != 0 {
		t.Errorf("remote command published at QoS %d, want 0", m.QoS)
	}
}
