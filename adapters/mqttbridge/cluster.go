package mqttbridge

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
)

// Cluster tunables; each has its unit and its reason.
const (
	// stateQueueTopics bounds the distinct topics of state messages from
	// the broker awaiting the cluster; a newer message on a queued topic
	// replaces the older one, so only a flood of new topics drops (counted).
	stateQueueTopics = 4096
	// stateQueueBytes bounds the payloads of those messages together: 4096
	// topics of up to 64 KiB would otherwise be 256 MiB.
	stateQueueBytes = 16 << 20
	// remoteMetaWait is how long a remote device's status and values wait
	// for its meta before the entry is forgotten.
	remoteMetaWait = time.Minute
	// maxPendingBytes bounds the values of remote devices held while they
	// wait for their meta or their status, all devices together.
	maxPendingBytes = 8 << 20
	// remoteResultTimeout bounds waiting for another gateway's result; it
	// is below gateway.CommandTimeout so the browser gets our clear error.
	remoteResultTimeout = 1500 * time.Millisecond
	// probeWait is how long, after a ping, the gateways whose imported
	// devices are online have to answer on their alive topic before those
	// devices are marked offline.
	probeWait = 3 * time.Second
	// joinSettle is how long after a (re)connect the retained statuses of
	// other gateways' devices have to arrive before we ping their gateways:
	// a gateway that died while we were away left its devices "online".
	joinSettle = time.Second
	// maxRemoteDevices bounds what cluster mode imports.
	maxRemoteDevices = 1024
)

// cluster is cluster mode (mqtt.cluster): it imports the devices other
// gateways publish on the same broker and routes commands for them through
// their set topics. It owns the remote devices (their hub entries and
// links, cluster_remote.go), the liveness probe of other gateways
// (ping/alive, cluster_probe.go) and the waiters for the results of
// commands forwarded to another gateway (cluster_send.go).
//
// paho's handler calls take, the connection loop linksDown and joined;
// none of them blocks. Everything else runs on run's goroutine, which
// Bridge.Run starts and waits for; run detaches every remote device before
// it returns. The Bridge holds no cluster (nil) when cluster mode is off.
type cluster struct {
	hub    *gateway.Hub
	log    *slog.Logger
	gw     string // this gateway's id: never import our own devices
	topics topics
	out    *outbox
	gate   *gate // the broker connection: forwarded commands need it up
	m      *metrics

	// Knobs tests may lower before Run.
	resultTimeout, metaWait, probeWait, joinSettle time.Duration

	states   *stateQueue   // from take and linksDown, to run
	joinedCh chan struct{} // capacity 1: (re)connected, re-check who is alive
	waiters  waiters

	// run's own.
	remotes      map[string]*remoteDev
	probe        probe
	pendingBytes int // sum of remoteDev.pendingBytes
}

func newCluster(hub *gateway.Hub, log *slog.Logger, t topics, out *outbox, g *gate, m *metrics) *cluster {
	return &cluster{
		hub: hub, log: log, gw: hub.GatewayID(), topics: t, out: out, gate: g, m: m,
		resultTimeout: remoteResultTimeout, metaWait: remoteMetaWait, probeWait: probeWait, joinSettle: joinSettle,
		states:   newStateQueue(stateQueueTopics),
		joinedCh: make(chan struct{}, 1),
		waiters:  waiters{m: map[string][]*waiter{}},
		remotes:  map[string]*remoteDev{},
	}
}

// inMsg is one state message from the broker (a meta, status, value or info of
// another gateway's device, another gateway's offline or alive), or
// (linksDown) the connection loop's note that remote devices are
// unreachable now.
type inMsg struct {
	topic     string
	payload   []byte
	linksDown string // non-empty: detach every remote device with this reason
	// live: published while we were subscribed (not a retained message
	// delivered on subscribe), so its gateway was alive just now.
	live bool
}

// stateQueue holds state messages from the broker between paho's handler
// and run. Each carries a topic's whole state, so a newer message on a
// topic still queued replaces the older one in place: a flood of updates
// never piles up and the latest state is never dropped. Overflow policy
// (overflowRefuse): beyond max distinct topics, a message on a new topic is
// dropped (push returns false; the caller counts it). A linksDown note is
// pushed as a barrier: always taken, and messages after it never replace
// ones before it, so run sees it in order.
type stateQueue = queue[string, inMsg]

func newStateQueue(topics int) *stateQueue {
	return newQueue(queueOptions[string, inMsg]{
		maxLen: topics, maxBytes: stateQueueBytes, overflow: overflowRefuse, inPlace: true,
		key:  func(m inMsg) (string, bool) { return m.topic, true },
		size: func(m inMsg) int { return len(m.topic) + len(m.payload) },
	})
}

// take handles, without blocking, a message that is the cluster's: a
// result wakes its waiter; PREFIX/bridge/… topics go to takeBridge; metas,
// statuses, values and infos of other gateways' devices go to the state queue
// (our own devices' echo, invalid ids and labels are dropped first). It
// reports false for messages that are not the cluster's (commands).
func (c *cluster) take(topic string, payload []byte, retained bool) bool {
	if strings.HasPrefix(topic, c.topics.bridgeAll()) {
		c.takeBridge(topic, payload)
		return true
	}
	kind, dev, label := c.topics.parse(topic)
	switch kind {
	case tkResult:
		c.waiters.deliver(topic, payload)
	case tkMeta, tkStatus, tkValue, tkInfo:
		if info, ok := c.hub.Device(dev); ok && !info.Remote {
			return true // ours: the echo of what we published
		}
		if !gateway.ValidID(dev) || (kind == tkValue && !validLabel(label)) {
			c.m.inboundRejected.Add(1)
			c.log.Debug("mqtt: ignored message with an invalid device id or label", "topic", topic)
			return true
		}
		if !c.states.push(inMsg{topic: topic, payload: payload, live: !retained}) {
			c.m.inboundDropped.Add(1)
		}
	default:
		return false
	}
	return true
}

// takeBridge handles the cluster's PREFIX/bridge/… topics without
// blocking: another gateway's ping is answered on our alive topic (through
// the outbox); an "offline" on PREFIX/bridge/state and other gateways'
// alive answers go to dispatch through the state queue. Our own ping and
// alive are ignored.
func (c *cluster) takeBridge(topic string, payload []byte) {
	switch {
	case topic == c.topics.bridgeState():
		if strings.TrimSpace(string(payload)) != payloadOffline {
			return
		}
	case topic == c.topics.ping():
		if gatewayOf(payload) == c.gw {
			return // our own
		}
		// A state message: a burst of pings queues one answer.
		c.out.pushFront(&outMsg{topic: c.topics.alive(c.gw), payload: gatewayPayload(c.gw), qos: 1, state: true})
		return
	default:
		gw, ok := c.topics.aliveGateway(topic)
		if !ok || gw == c.gw {
			return
		}
		if !gateway.ValidID(gw) {
			c.m.inboundRejected.Add(1)
			return
		}
	}
	if !c.states.push(inMsg{topic: topic, payload: payload}) {
		c.m.inboundDropped.Add(1)
	}
}

// gatewayPayload is the payload of ping and alive: {"gateway":ID}.
func gatewayPayload(gw string) []byte {
	p, _ := json.Marshal(struct {
		Gateway string `json:"gateway"`
	}{gw})
	return p
}

// gatewayOf returns the gateway a ping or alive payload names ("" if none).
func gatewayOf(payload []byte) string {
	var p struct {
		Gateway string `json:"gateway"`
	}
	_ = json.Unmarshal(payload, &p)
	return p.Gateway
}

// joined tells run that the bridge (re)connected: once the retained
// statuses had time to arrive, it checks which gateways are alive.
func (c *cluster) joined() {
	select {
	case c.joinedCh <- struct{}{}:
	default:
	}
}

// linksDown tells run that other gateways are unreachable. The note goes
// into the state queue behind everything already there and ahead of
// anything the next connection brings (the queue stops coalescing across
// it).
func (c *cluster) linksDown(reason string) {
	c.states.pushBarrier(inMsg{linksDown: reason})
}

// run handles state messages until ctx ends: other gateways' devices are
// imported into the hub, their gateways' liveness is checked, and remote
// entries whose meta never came are evicted. It owns the remote devices'
// links and detaches them before it returns.
func (c *cluster) run(ctx context.Context) {
	defer func() {
		for _, r := range c.remotes {
			if r.link != nil {
				r.link.Detach("gateway shutting down")
			}
		}
		c.m.remotePending.Store(0)
	}()
	sweep := time.NewTicker(max(c.metaWait/4, 10*time.Millisecond))
	defer sweep.Stop()
	defer c.probe.cancel()
	var settle *time.Timer // after a (re)connect in cluster mode: then check who is alive
	defer func() {
		if settle != nil {
			settle.Stop()
		}
	}()
	for {
		var probeDone, settled <-chan time.Time
		if c.probe.timer != nil {
			probeDone = c.probe.timer.C
		}
		if settle != nil {
			settled = settle.C
		}
		select {
		case <-ctx.Done():
			return
		case <-c.joinedCh:
			if settle != nil {
				settle.Stop()
			}
			settle = time.NewTimer(c.joinSettle)
		case <-settled:
			settle = nil
			c.startProbe()
		case <-sweep.C:
			c.evictPending()
		case <-probeDone:
			c.probe.timer = nil
			c.endProbe()
		case <-c.states.notify:
			for {
				in, ok := c.states.pop()
				if !ok {
					break
				}
				c.handle(in)
			}
		}
	}
}

// handle applies one state message.
func (c *cluster) handle(in inMsg) {
	if in.linksDown != "" {
		c.probe.cancel()
		for _, r := range c.remotes {
			if r.link != nil {
				r.link.Detach(in.linksDown)
				r.link = nil
			}
		}
		return
	}
	if in.topic == c.topics.bridgeState() {
		c.startProbe() // takeBridge passes only "offline"
		return
	}
	if gw, ok := c.topics.aliveGateway(in.topic); ok {
		c.probe.heard(gw)
		return
	}
	kind, dev, label := c.topics.parse(in.topic)
	switch kind {
	case tkMeta, tkStatus, tkValue, tkInfo:
		c.importRemote(kind, dev, label, in.payload)
		if r := c.remotes[dev]; r != nil && in.live && r.gateway != "" {
			c.probe.heard(r.gateway) // it just published: alive
		}
		c.countPending()
	}
}
