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
// from the hub, the publisher, the state dispatcher, the command
// dispatcher and its per-device workers) and returns only after all of them have exited. paho's own
// handlers never block: they hand messages to bounded channels.
package mqttbridge

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/esp32gw/esp32gw/adapters/mqttbridge/hadiscovery"
	"github.com/esp32gw/esp32gw/gateway"
)

// Tunables; each has its unit and its reason.
const (
	// hubQueueLen is the bridge's subscriber queue in the hub; the pump
	// only moves messages into the outbox, so it keeps up easily.
	hubQueueLen = 4096
	// setQueueLen bounds commands from set topics awaiting the dispatcher;
	// beyond it a command is answered "gateway busy" at once.
	setQueueLen = 256
	// commandQueueLen bounds each device's commands waiting for its worker;
	// beyond it a command is answered "gateway busy".
	commandQueueLen = 32
	// commandBudget is how long an MQTT command may take from its arrival
	// to its answer: one that waited longer is not run ("gateway busy: the
	// command waited too long"), one running is cut off then. It keeps the
	// contract's "command answer within 2 s".
	commandBudget = gateway.CommandTimeout
	// minCommandTime is the least of its budget a command must have left
	// to be sent to the board at all; with less it is answered busy.
	minCommandTime = 100 * time.Millisecond

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
	gw     string // this gateway's id
	topics topics
	ha     hadiscovery.Config
	qos    byte

	// Knobs tests may lower before Run.
	cmdBudget time.Duration

	out     *outbox
	conn    *connection
	pub     *publisher
	cluster *cluster // nil unless mqtt.cluster

	sets     chan setMsg   // commands from set topics
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
	inboundRejected atomic.Uint64
	commandsOK      atomic.Uint64
	commandsErr     atomic.Uint64
	retainedIgnored atomic.Uint64
	remoteDevices   atomic.Int64
	remotePending   atomic.Int64
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
		topics: topics{prefix}, qos: qos,
		cmdBudget: commandBudget,
		out:       newOutbox(defaultBacklogMsgs, defaultBacklogBytes),
		sets:      make(chan setMsg, setQueueLen),
		resync:    make(chan struct{}, 1),
		haOnline:  make(chan struct{}, 1),
	}
	b.ha = hadiscovery.Config{
		Prefix: haPrefix, NodePrefix: prefix,
		StatusTopic: b.topics.status, ValueTopic: b.topics.value, SetTopic: b.topics.set,
	}
	filters := b.topics.subscriptions(cfg.Cluster)
	if cfg.HomeAssistant.Enabled {
		filters[b.ha.BirthTopic()] = 0
	}
	b.conn = newConnection(cfg, clientID, b.topics, filters, b.log, &b.m, b.out)
	b.conn.onMessage = b.onMessage
	b.pub = &publisher{out: b.out, gate: &b.conn.gate, m: &b.m, log: b.log, window: inflightWindow}
	if cfg.Cluster {
		b.cluster = newCluster(hub, b.log, b.topics, b.out, &b.conn.gate, &b.m)
	}
	b.conn.up = func() {
		select {
		case b.resync <- struct{}{}:
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
	work.Go(func() { b.pump(workCtx) })
	work.Go(func() { b.commands(workCtx) })
	if b.cluster != nil {
		work.Go(func() { b.cluster.run(workCtx) })
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
	b.conn.shutdown(b.localDevices())
	return nil
}

// localDevices returns the status topics of this gateway's own devices.
func (b *Bridge) localDevices() []string {
	_, devices := b.hub.Snapshot()
	topics := make([]string, 0, len(devices)+1)
	for _, d := range devices {
		if !d.Remote && d.ID != bridgeDevice {
			topics = append(topics, b.topics.status(d.ID))
		}
	}
	return topics
}
