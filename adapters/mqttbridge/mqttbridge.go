// Package mqttbridge mirrors the hub to an MQTT broker and takes commands
// from it (DESIGN.md, "MQTT topics"): every reading goes to
// PREFIX/<device>/<label>, availability to PREFIX/<device>/status and
// PREFIX/bridge/state (with a retained Last Will), metadata to
// PREFIX/<device>/meta; commands arrive on PREFIX/<device>/set/<label> and
// are answered on …/result. With homeassistant.enabled it publishes MQTT
// discovery configs; with cluster it imports the devices other gateways
// publish on the same broker and routes commands for them through their set
// topics.
//
// Run owns every goroutine the bridge starts (the connection loop, the pump
// from the hub, the publisher, the inbound dispatcher and the command
// workers) and returns only after all of them have exited. paho's own
// handlers never block: they hand messages to bounded channels.
package mqttbridge

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/esp32gw/esp32gw/gateway"
)

// Tunables; each has its unit and its reason.
const (
	// Reconnect backoff: the first retry comes within 1 s (a jittered
	// 0.5–1 s), then the base doubles up to 30 s (contract: "first retry
	// within 1 s, jittered exponential backoff, cap 30 s, never gives up").
	backoffMin = time.Second
	backoffMax = 30 * time.Second

	// keepAlive makes the broker publish our Last Will within 1.5× this
	// when the link dies silently; pingTimeout drops a dead link.
	keepAlive   = 15 * time.Second
	pingTimeout = 5 * time.Second
	// connectTimeout bounds one connection attempt (dial + CONNACK).
	connectTimeout = 5 * time.Second
	// writeTimeout bounds how long paho may take to accept one publish.
	writeTimeout = 2 * time.Second
	// subscribeTimeout bounds waiting for SUBACK after a (re)connect.
	subscribeTimeout = 5 * time.Second

	// The backlog while the broker is away: at 20 readings/s, 10,000
	// messages hold more than 8 minutes; 8 MiB bounds memory on a Pi.
	defaultBacklogMsgs  = 10000
	defaultBacklogBytes = 8 << 20
	// inflightWindow bounds publishes handed to paho and not yet
	// acknowledged; they sit in paho's store across a reconnect.
	inflightWindow = 256
	// notConnectedPause is how long the publisher waits when paho says the
	// connection is gone before connectLoop noticed (a brief race).
	notConnectedPause = 100 * time.Millisecond

	// hubQueueLen is the bridge's subscriber queue in the hub; the pump
	// only moves messages into the outbox, so it keeps up easily.
	hubQueueLen = 4096
	// inboundQueueLen bounds messages from the broker awaiting dispatch;
	// beyond it they are dropped and counted.
	inboundQueueLen = 1024
	// commandWorkers run MQTT commands (each may wait up to the hub's
	// CommandTimeout); a device always uses the same worker, so its
	// commands keep their order. commandQueueLen bounds each worker's queue.
	commandWorkers  = 4
	commandQueueLen = 32

	// remoteResultTimeout bounds waiting for another gateway's result; it
	// is below gateway.CommandTimeout so the browser gets our clear error.
	remoteResultTimeout = 1500 * time.Millisecond
	// maxRemoteDevices bounds what cluster mode imports.
	maxRemoteDevices = 1024

	// shutdownFlush bounds waiting for the offline states to be acknowledged
	// on shutdown; disconnectQuiesce is paho's grace for DISCONNECT.
	shutdownFlush     = 1500 * time.Millisecond
	disconnectQuiesce = 250
)

// Bridge is the MQTT side of the gateway. Create it with New and start it
// with Run, once.
type Bridge struct {
	cfg      gateway.MQTTConfig
	hub      *gateway.Hub
	log      *slog.Logger
	gw       string // this gateway's id
	prefix   string
	haPrefix string
	clientID string
	qos      byte

	// Knobs tests may lower before Run.
	backoffMin, backoffMax time.Duration
	resultTimeout          time.Duration
	tlsConfig              *tls.Config // nil: system roots for ssl://

	out     *outbox
	gate    gate
	waiters waiters

	inbound  chan inMsg
	resync   chan struct{} // capacity 1: (re)connected, re-publish everything
	haOnline chan struct{} // capacity 1: Home Assistant restarted

	m metrics
}

// metrics are the bridge's counters for /metrics.
type metrics struct {
	connected       atomic.Bool
	connects        atomic.Uint64
	connectFailures atomic.Uint64
	published       atomic.Uint64
	publishErrors   atomic.Uint64
	inboundDropped  atomic.Uint64
	commandsOK      atomic.Uint64
	commandsErr     atomic.Uint64
	retainedIgnored atomic.Uint64
	remoteDevices   atomic.Int64
	lastReconnect   atomic.Int64 // ns from connection loss to the next connect
}

// New returns a bridge for hub; Run connects it. The gateway id names this
// gateway in device metadata and keeps cluster mode from importing its own
// devices.
func New(cfg gateway.MQTTConfig, hub *gateway.Hub, log *slog.Logger) *Bridge {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	gw := hub.GatewayID()
	clientID := cfg.ClientID
	if cfg.Cluster && clientID == gateway.DefaultConfig().MQTT.ClientID && gw != "" {
		// Two gateways with the same client id would take turns kicking
		// each other off the broker; the default becomes per-gateway.
		clientID += "-" + gw
	}
	qos := byte(1)
	if cfg.QoS >= 0 && cfg.QoS <= 2 {
		qos = byte(cfg.QoS)
	}
	prefix := cfg.TopicPrefix
	if prefix == "" {
		prefix = "esp32gw"
	}
	haPrefix := cfg.HomeAssistant.Prefix
	if haPrefix == "" {
		haPrefix = "homeassistant"
	}
	b := &Bridge{
		cfg: cfg, hub: hub, log: log.With("component", "mqtt"), gw: gw,
		prefix: prefix, haPrefix: haPrefix, clientID: clientID, qos: qos,
		backoffMin: backoffMin, backoffMax: backoffMax, resultTimeout: remoteResultTimeout,
		out:      newOutbox(defaultBacklogMsgs, defaultBacklogBytes),
		inbound:  make(chan inMsg, inboundQueueLen),
		resync:   make(chan struct{}, 1),
		haOnline: make(chan struct{}, 1),
		waiters:  waiters{m: map[string][]*waiter{}},
	}
	b.gate.init()
	return b
}

// Run keeps the bridge connected until ctx ends, then publishes offline
// states and disconnects before it returns. The gateway keeps serving while
// the broker is away: Run retries for ever and the backlog is bounded.
func (b *Bridge) Run(ctx context.Context) error {
	lost := make(chan error, 1)
	client := mqtt.NewClient(b.clientOptions(lost))

	// Workers stop when workCtx ends; the publisher lives a little longer
	// (pubCtx) to send the offline states.
	workCtx, stopWork := context.WithCancel(context.Background())
	pubCtx, stopPub := context.WithCancel(context.Background())
	defer stopPub()
	defer stopWork()
	var work, pub sync.WaitGroup
	work.Go(func() { b.pump(workCtx) })
	cmds := make([]chan command, commandWorkers)
	for i := range cmds {
		cmds[i] = make(chan command, commandQueueLen)
		work.Go(func() { b.commandWorker(workCtx, cmds[i]) })
	}
	work.Go(func() { b.dispatch(workCtx, cmds) })
	pub.Go(func() { b.publisher(pubCtx, client) })

	b.connectLoop(ctx, client, lost)

	// Shutdown: stop taking work, tell the broker we are going, disconnect.
	stopWork()
	work.Wait()
	if b.gate.isUp() {
		acked := b.pushOfflineStates()
		select {
		case <-acked:
		case <-time.After(shutdownFlush):
			b.log.Warn("mqtt: offline states not acknowledged before shutdown; the broker's Last Will covers the bridge state")
		}
	}
	stopPub()
	pub.Wait()
	client.Disconnect(disconnectQuiesce)
	b.gate.down()
	b.m.connected.Store(false)
	b.log.Info("mqtt disconnected")
	return nil
}

// clientOptions builds paho's options. AutoReconnect and ConnectRetry are
// off: connectLoop owns reconnection (jittered backoff, capped at 30 s,
// stoppable at once by ctx) and calls Connect on the same client, so paho's
// store keeps unacknowledged QoS 1 publishes and resends them (CleanSession
// false, fixed client id: the broker keeps our session across outages).
func (b *Bridge) clientOptions(lost chan<- error) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions()
	o.AddBroker(b.cfg.Broker)
	o.SetClientID(b.clientID)
	o.SetUsername(b.cfg.Username)
	o.SetPassword(b.cfg.Password)
	o.SetCleanSession(false)
	// The ordered store resends unacknowledged publishes in the order they
	// were made (the default MemoryStore resends in map order).
	o.SetStore(mqtt.NewOrderedMemoryStore())
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetResumeSubs(false) // connectLoop subscribes on every connect
	// Order stays on: onMessage never blocks (it only hands off to bounded
	// channels), and ordered delivery keeps a remote device's status and
	// values in the order they were published.
	o.SetOrderMatters(true)
	o.SetKeepAlive(keepAlive)
	o.SetPingTimeout(pingTimeout)
	o.SetConnectTimeout(connectTimeout)
	o.SetWriteTimeout(writeTimeout)
	o.SetBinaryWill(b.bridgeTopic(), []byte(payloadOffline), 1, true)
	o.SetDefaultPublishHandler(b.onMessage)
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		select {
		case lost <- err:
		default:
		}
	})
	if u, err := url.Parse(b.cfg.Broker); err == nil {
		switch u.Scheme {
		case "ssl", "tls", "mqtts", "tcps", "wss":
			tc := b.tlsConfig
			if tc == nil {
				tc = &tls.Config{MinVersion: tls.VersionTLS12}
				if b.cfg.CAFile != "" {
					// Validated when the config was loaded; a file that has
					// gone since falls back to the system roots, loudly.
					pool, err := gateway.LoadCAFile(b.cfg.CAFile)
					if err != nil {
						b.log.Error("mqtt.ca_file", "err", err)
					}
					tc.RootCAs = pool
				}
			}
			o.SetTLSConfig(tc)
		}
	}
	return o
}

// connectLoop connects, serves the connection until it is lost, backs off
// and connects again, until ctx ends. It logs state changes once, not every
// attempt.
func (b *Bridge) connectLoop(ctx context.Context, client mqtt.Client, lost <-chan error) {
	delay := b.backoffMin
	failing := false
	var lostAt time.Time
	for {
		tok := client.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
			// Let the attempt finish (bounded by connectTimeout) so no paho
			// goroutine outlives Run; loopback and LAN answer at once.
			tok.WaitTimeout(time.Second)
			return
		}
		if err := tok.Error(); err != nil {
			b.m.connectFailures.Add(1)
			if !failing {
				b.log.Warn("mqtt: cannot connect, retrying with backoff", "broker", b.cfg.Broker, "err", err)
				failing = true
			} else {
				b.log.Debug("mqtt: connect failed", "broker", b.cfg.Broker, "err", err)
			}
		} else {
			failing = false
			delay = b.backoffMin
			b.m.connects.Add(1)
			if !lostAt.IsZero() {
				b.m.lastReconnect.Store(int64(time.Since(lostAt)))
			}
			b.onConnected(ctx, client)
			select {
			case err := <-lost:
				lostAt = time.Now()
				b.gate.down()
				b.m.connected.Store(false)
				b.log.Warn("mqtt: connection lost, reconnecting", "broker", b.cfg.Broker, "err", err)
				b.remoteLinksDown(ctx, "gateway lost its MQTT broker connection")
			case <-ctx.Done():
				return
			}
		}
		// Jitter: wait between half and all of the current base.
		wait := delay/2 + rand.N(delay/2+1)
		delay = min(delay*2, b.backoffMax)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// onConnected runs after every successful connect: subscriptions first (so
// that "connected" means commands are heard), then the bridge state ahead
// of any backlog, then a full re-publish (statuses, metas, last values,
// discovery) behind it.
func (b *Bridge) onConnected(ctx context.Context, client mqtt.Client) {
	filters := map[string]byte{
		// QoS 0 on purpose: the broker does not queue QoS 0 messages for an
		// offline session, so commands sent while the gateway was away are
		// never replayed later (contract: commands are never queued).
		b.prefix + "/+/" + topicSet + "/+": 0,
	}
	if b.cfg.Cluster {
		// State of other gateways' devices: the retained metas, statuses and
		// values arrive again on every subscribe, so QoS 0 loses nothing
		// that matters and no stale backlog is replayed.
		filters[b.prefix+"/+/+"] = 0
		filters[b.prefix+"/+/"+topicSet+"/+/"+topicResult] = 1
	}
	if b.cfg.HomeAssistant.Enabled {
		filters[b.haPrefix+"/status"] = 0
	}
	tok := client.SubscribeMultiple(filters, nil)
	t := time.NewTimer(subscribeTimeout)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			b.log.Error("mqtt: subscribe failed; commands over MQTT will not arrive", "err", err)
		}
	case <-t.C:
		b.log.Warn("mqtt: no SUBACK in time", "timeout", subscribeTimeout)
	case <-ctx.Done():
	}
	t.Stop()

	b.out.push(&outMsg{topic: b.bridgeTopic(), payload: []byte(payloadOnline), qos: 1, retain: true, state: true}, true)
	b.gate.up()
	b.m.connected.Store(true)
	select {
	case b.resync <- struct{}{}:
	default:
	}
	b.log.Info("mqtt connected", "broker", b.cfg.Broker, "client_id", b.clientID, "prefix", b.prefix)
}

// gate tells the publisher whether the broker is connected.
type gate struct {
	mu     sync.Mutex
	isOn   bool
	upCh   chan struct{} // closed while up
	downCh chan struct{} // closed while down
}

func (g *gate) init() {
	g.upCh, g.downCh = make(chan struct{}), make(chan struct{})
	close(g.downCh)
}

func (g *gate) up() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.isOn {
		return
	}
	g.isOn = true
	close(g.upCh)
	g.downCh = make(chan struct{})
}

func (g *gate) down() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.isOn {
		return
	}
	g.isOn = false
	close(g.downCh)
	g.upCh = make(chan struct{})
}

// state returns whether the gate is up, and the channel that is closed when
// that changes.
func (g *gate) state() (up bool, change <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.isOn {
		return true, g.downCh
	}
	return false, g.upCh
}

func (g *gate) isUp() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.isOn
}

// inflight is one publish handed to paho.
type inflight struct {
	tok mqtt.Token
	m   *outMsg
}

// publisher drains the outbox into paho while the broker is connected,
// keeping at most inflightWindow publishes unacknowledged. A publish paho
// refused because the connection had just gone is put back at the front.
func (b *Bridge) publisher(ctx context.Context, client mqtt.Client) {
	var window []inflight
	reap := func(block bool, change <-chan struct{}) {
		for len(window) > 0 {
			f := window[0]
			if block {
				select {
				case <-f.tok.Done():
				case <-change:
					return
				case <-ctx.Done():
					return
				}
			} else {
				select {
				case <-f.tok.Done():
				default:
					return
				}
			}
			window = window[1:]
			b.finish(f)
			block = false
		}
	}
	for {
		up, change := b.gate.state()
		if !up {
			select {
			case <-change:
				continue
			case <-ctx.Done():
				return
			}
		}
		reap(false, nil)
		if len(window) >= inflightWindow {
			reap(true, change)
			if ctx.Err() != nil {
				return
			}
			continue
		}
		m, ok := b.out.pop()
		if !ok {
			var head <-chan struct{}
			if len(window) > 0 {
				head = window[0].tok.Done()
			}
			select {
			case <-b.out.notify:
			case <-head:
			case <-change:
			case <-ctx.Done():
				return
			}
			continue
		}
		tok := client.Publish(m.topic, m.qos, m.retain, m.payload)
		if done(tok) && errors.Is(tok.Error(), mqtt.ErrNotConnected) {
			// The connection is gone and connectLoop has not closed the
			// gate yet: put it back and wait for that instead of spinning.
			b.out.push(m, true)
			t := time.NewTimer(notConnectedPause)
			select {
			case <-change:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			continue
		}
		window = append(window, inflight{tok, m})
	}
}

// finish accounts for one completed publish.
func (b *Bridge) finish(f inflight) {
	err := f.tok.Error()
	switch {
	case err == nil:
		b.m.published.Add(1)
		if f.m.acked != nil {
			close(f.m.acked)
		}
	case errors.Is(err, mqtt.ErrNotConnected):
		// Never reached paho's store: try again after the reconnect.
		b.out.push(f.m, true)
	default:
		// "publish was broken by timeout": paho stored it and resends it
		// on reconnect. Anything else is lost; count it.
		b.m.publishErrors.Add(1)
		b.log.Debug("mqtt publish failed", "topic", f.m.topic, "err", err)
	}
}

// pushOfflineStates queues, ahead of any backlog, every local device's
// offline status and then the bridge's; the returned channel is closed once
// the broker acknowledged the last of them.
func (b *Bridge) pushOfflineStates() <-chan struct{} {
	_, devices := b.hub.Snapshot()
	last := &outMsg{topic: b.bridgeTopic(), payload: []byte(payloadOffline), qos: 1, retain: true, state: true, acked: make(chan struct{})}
	b.out.push(last, true)
	for i := len(devices) - 1; i >= 0; i-- {
		if d := devices[i]; !d.Remote {
			b.out.push(&outMsg{topic: b.statusTopic(d.ID), payload: []byte(payloadOffline), qos: 1, retain: true, state: true}, true)
		}
	}
	return last.acked
}

// done reports whether tok has completed, without waiting.
func done(tok mqtt.Token) bool {
	select {
	case <-tok.Done():
		return true
	default:
		return false
	}
}
