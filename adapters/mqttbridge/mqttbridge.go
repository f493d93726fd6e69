// Package mqttbridge mirrors the hub to an MQTT broker and takes commands
// from it (DESIGN.md, "MQTT topics"): every reading goes to
// PREFIX/<device>/<label>, availability to PREFIX/<device>/status and
// PREFIX/bridge/state (with a retained Last Will), metadata to
// PREFIX/<device>/meta, a board's attributes to PREFIX/<device>/info;
// commands arrive on PREFIX/<device>/set/<label> and are answered on
// …/result. With homeassistant.enabled it publishes MQTT discovery configs
// (built by hadiscovery), and with an Updates (WithUpdates) takes the
// update entities' install requests; with cluster it imports the
// devices other gateways publish on the same broker and routes commands for
// them through their set topics.
//
// The parts, each owning what its doc says:
//
//   - connection (conn.go, conn_close.go): paho's client, the socket under
//     it, Last Will, subscriptions, reconnect backoff, shutdown;
//   - publisher (publish.go): the in-flight window from the outbox to paho;
//   - outbox and the other queues (queue.go): bounded, with their overflow
//     policies written down;
//   - pump (pump.go): the hub's stream into the outbox, discovery included;
//   - commander (commands.go): commands from set topics and their results;
//   - installer (updates.go, nil unless an Updates is given and
//     homeassistant.enabled): Home Assistant's install requests for the
//     update entities;
//   - cluster (cluster*.go, nil unless mqtt.cluster): other gateways'
//     devices, their liveness, and commands forwarded to them;
//   - topics (topics.go): every topic name, and the parser.
//
// Run starts every goroutine the bridge has (the connection loop runs on
// Run's own) and returns only after all of them, and paho's, have exited.
// paho's handlers never block: they hand messages to bounded queues or
// channels of one.
package mqttbridge

import (
	"context"
	"log/slog"
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/esp32gw/esp32gw/adapters/mqttbridge/hadiscovery"
	"github.com/esp32gw/esp32gw/gateway"
)

// Tunables; each has its unit and its reason.
const (
	// hubQueueLen is the bridge's subscriber queue in the hub; the pump
	// only moves messages into the outbox, so it keeps up easily.
	hubQueueLen = 4096
	// maxInboundPayload bounds any message from the broker (the board frame
	// limit); larger ones are dropped and counted.
	maxInboundPayload = 64 << 10
)

// Bridge is the MQTT side of the gateway. Create it with New and start it
// with Run, once. It wires its parts together and owns their goroutines:
// the connection (conn), the publisher (pub), the pump from the hub, the
// command runner, and, in cluster mode, the cluster.
type Bridge struct {
	cfg    gateway.MQTTConfig
	hub    *gateway.Hub
	log    *slog.Logger
	topics topics
	ha     hadiscovery.Config

	out     *outbox
	conn    *connection
	pub     *publisher
	pump    *pump
	cmds    *commander
	cluster *cluster   // nil unless mqtt.cluster
	install *installer // nil unless updates and homeassistant.enabled

	updates Updates // WithUpdates; nil: not wired

	m metrics
}

// New returns a bridge for hub; Run connects it. The gateway id names this
// gateway in device metadata and keeps cluster mode from importing its own
// devices.
func New(cfg gateway.MQTTConfig, hub *gateway.Hub, log *slog.Logger, opts ...Option) *Bridge {
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
		cfg: cfg, hub: hub, log: log.With("component", "mqtt"),
		topics: topics{prefix},
		out:    newOutbox(defaultBacklogMsgs, defaultBacklogBytes),
	}
	for _, o := range opts {
		o(b)
	}
	b.ha = hadiscovery.Config{
		Prefix: haPrefix, NodePrefix: prefix,
		StatusTopic: b.topics.status, ValueTopic: b.topics.value, SetTopic: b.topics.set,
		InfoTopic: b.topics.info, UpdateTopic: b.topics.updateState, InstallTopic: b.topics.install,
	}
	filters := b.topics.subscriptions(cfg.Cluster)
	if cfg.HomeAssistant.Enabled {
		filters[b.ha.BirthTopic()] = 0
	}
	if cfg.HomeAssistant.Enabled && b.updates != nil {
		// QoS 0, as set topics: the broker never keeps an install request
		// for later.
		filters[b.topics.installFilter()] = 0
		b.install = &installer{
			updates: b.updates, hub: hub, out: b.out, topics: b.topics, m: &b.m, log: b.log, clustered: cfg.Cluster,
			reqs: make(chan installReq, installQueueLen),
		}
	}
	b.conn = newConnection(cfg, clientID, b.topics, filters, b.log, &b.m, b.out)
	b.conn.onMessage = b.onMessage
	b.pub = &publisher{out: b.out, gate: &b.conn.gate, m: &b.m, log: b.log, window: inflightWindow}
	b.pump = &pump{
		hub: hub, out: b.out, topics: b.topics, retain: cfg.Retain, qos: qos, log: b.log,
		resync: make(chan struct{}, 1), haOnline: make(chan struct{}, 1), firmware: make(chan struct{}, 1),
	}
	if cfg.HomeAssistant.Enabled {
		b.pump.ha = &b.ha
		b.pump.updates = b.updates
	}
	b.cmds = &commander{
		hub: hub, out: b.out, topics: b.topics, m: &b.m, log: b.log, clustered: cfg.Cluster,
		budget: commandBudget, sets: make(chan setMsg, setQueueLen),
	}
	if cfg.Cluster {
		b.cluster = newCluster(hub, b.log, b.topics, b.out, &b.conn.gate, &b.m)
	}
	b.conn.up = func() {
		select {
		case b.pump.resync <- struct{}{}:
		default:
		}
		if b.cluster != nil {
			b.cluster.joined()
		}
	}
	b.conn.lost = func() {
		if b.cluster != nil {
			b.cluster.linksDown("gateway lost its MQTT broker connection")
		}
	}
	return b
}

// Run keeps the bridge connected until ctx ends, then publishes offline
// states and disconnects before it returns. The gateway keeps serving while
// the broker is away: Run retries for ever and the backlog is bounded.
func (b *Bridge) Run(ctx context.Context) error {
	// Workers stop when workCtx ends; the publisher lives a little longer
	// (pubCtx) to send the offline states.
	workCtx, stopWork := context.WithCancel(context.Background())
	pubCtx, stopPub := context.WithCancel(context.Background())
	defer stopPub()
	defer stopWork()
	client := b.conn.newClient()
	var work, pub sync.WaitGroup
	work.Go(func() { b.pump.run(workCtx) })
	work.Go(func() { b.cmds.run(workCtx) })
	if b.cluster != nil {
		work.Go(func() { b.cluster.run(workCtx) })
	}
	if b.install != nil {
		work.Go(func() { b.install.run(workCtx) })
	}
	pub.Go(func() { b.pub.run(pubCtx, client) })

	b.conn.run(ctx)

	// Shutdown: stop taking work, tell the broker we are going, disconnect.
	// The publisher stops first, so nothing it still holds (a queued
	// "online") can overtake the offline states, which go to paho directly,
	// past the in-flight window.
	stopWork()
	work.Wait()
	stopPub()
	pub.Wait()
	b.conn.shutdown(b.localStatusTopics())
	return nil
}

// onMessage is paho's handler for every incoming message. It never blocks:
// Home Assistant's birth message is a signal to the pump (a channel of
// one); the cluster's messages go to cluster.take; a set message goes to
// the bounded command queue (answered "gateway busy" when full), an
// install request to the installer's (likewise). Oversized
// messages are dropped before anything else.
func (b *Bridge) onMessage(_ mqtt.Client, m mqtt.Message) {
	topic, payload := m.Topic(), m.Payload()
	if len(payload) > maxInboundPayload {
		b.m.inboundRejected.Add(1)
		b.log.Debug("mqtt: dropped oversized message", "topic", topic, "bytes", len(payload))
		return
	}
	if b.cfg.HomeAssistant.Enabled && topic == b.ha.BirthTopic() {
		if hadiscovery.IsBirth(payload) {
			select {
			case b.pump.haOnline <- struct{}{}:
			default:
			}
		}
		return
	}
	if b.cluster != nil && b.cluster.take(topic, payload, m.Retained()) {
		return
	}
	switch kind, dev, label := b.topics.parse(topic); {
	case kind == tkSet:
		b.cmds.take(dev, label, m)
	case kind == tkInstall && b.install != nil:
		b.install.take(dev, m)
	}
}

// localStatusTopics returns the status topics of this gateway's own
// devices.
func (b *Bridge) localStatusTopics() []string {
	_, devices := b.hub.Snapshot()
	topics := make([]string, 0, len(devices)+1)
	for _, d := range devices {
		if !d.Remote && d.ID != bridgeDevice {
			topics = append(topics, b.topics.status(d.ID))
		}
	}
	return topics
}
