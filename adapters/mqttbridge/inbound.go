package mqttbridge

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/esp32gw/esp32gw/gateway"
)

// inMsg is one state message from the broker (a meta, status or value of
// another gateway's device, or Home Assistant's birth message), or
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

// stateQueue holds state messages from the broker (other gateways' metas,
// statuses and values, Home Assistant's birth message) between paho's
// handler and dispatch. Each carries a topic's whole state, so a newer
// message on a topic still queued replaces the older one in place: a flood
// of updates never piles up and the latest state is never dropped.
// Overflow policy (overflowRefuse): beyond max distinct topics, a message
// on a new topic is dropped (push returns false; the caller counts it). A
// linksDown note is pushed as a barrier: always taken, and messages after
// it never replace ones before it, so dispatch sees it in order.
type stateQueue = queue[string, inMsg]

func newStateQueue(topics int) *stateQueue {
	return newQueue(queueOptions[string, inMsg]{
		maxLen: topics, overflow: overflowRefuse, inPlace: true,
		key: func(m inMsg) (string, bool) { return m.topic, true },
	})
}

// setMsg is one command from a set topic, with its arrival time: a command
// that waited longer than the command budget is answered, never run.
type setMsg struct {
	dev, label string
	payload    []byte
	at         time.Time
}

// Errors of the bridge's own command queueing. They unwrap to the core's
// sentinels so HTTP and other gateways map them as usual.
var (
	errBusy          = &gateway.UserError{Text: "gateway busy", Err: gateway.ErrRateLimited}
	errWaitedTooLong = &gateway.UserError{Text: "gateway busy: the command waited too long", Err: gateway.ErrTimeout}
)

// onMessage is paho's handler for every incoming message. It never blocks:
// a result wakes its waiter; a set message goes to the bounded command
// queue (answered "gateway busy" when full); a state message goes to the
// coalescing state queue. Oversized and invalid messages, and the echo of
// our own devices' topics, are dropped before queueing.
func (b *Bridge) onMessage(_ mqtt.Client, m mqtt.Message) {
	topic, payload := m.Topic(), m.Payload()
	if len(payload) > maxInboundPayload {
		b.m.inboundRejected.Add(1)
		b.log.Debug("mqtt: dropped oversized message", "topic", topic, "bytes", len(payload))
		return
	}
	if b.cfg.HomeAssistant.Enabled && topic == b.haPrefix+"/status" {
		if !b.states.push(inMsg{topic: topic, payload: payload}) {
			b.m.inboundDropped.Add(1)
		}
		return
	}
	if b.cfg.Cluster && strings.HasPrefix(topic, b.topics.bridgeAll()) {
		b.takeBridge(topic, payload)
		return
	}
	kind, dev, label := b.topics.parse(topic)
	switch kind {
	case tkResult:
		b.waiters.deliver(b.topics.result(dev, label), payload)
	case tkSet:
		b.takeSet(dev, label, m)
	case tkMeta, tkStatus, tkValue:
		if !b.cfg.Cluster {
			return
		}
		if info, ok := b.hub.Device(dev); ok && !info.Remote {
			return // ours: the echo of what we published
		}
		if !gateway.ValidID(dev) || (kind == tkValue && !validLabel(label)) {
			b.m.inboundRejected.Add(1)
			b.log.Debug("mqtt: ignored message with an invalid device id or label", "topic", topic)
			return
		}
		if !b.states.push(inMsg{topic: topic, payload: payload, live: !m.Retained()}) {
			b.m.inboundDropped.Add(1)
		}
	}
}

// takeBridge handles the cluster's PREFIX/bridge/… topics without
// blocking: another gateway's ping is answered on our alive topic (through
// the outbox); an "offline" on PREFIX/bridge/state and other gateways'
// alive answers go to dispatch through the state queue. Our own ping and
// alive are ignored.
func (b *Bridge) takeBridge(topic string, payload []byte) {
	switch {
	case topic == b.topics.bridgeState():
		if strings.TrimSpace(string(payload)) != payloadOffline {
			return
		}
	case topic == b.topics.ping():
		if gatewayOf(payload) == b.gw {
			return // our own
		}
		// A state message: a burst of pings queues one answer.
		b.out.pushFront(&outMsg{topic: b.topics.alive(b.gw), payload: gatewayPayload(b.gw), qos: 1, state: true})
		return
	default:
		gw, ok := b.topics.aliveGateway(topic)
		if !ok || gw == b.gw {
			return
		}
		if !gateway.ValidID(gw) {
			b.m.inboundRejected.Add(1)
			return
		}
	}
	if !b.states.push(inMsg{topic: topic, payload: payload}) {
		b.m.inboundDropped.Add(1)
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

// probe is a liveness check of other gateways in progress (dispatch's).
type probe struct {
	timer    *time.Timer
	suspects map[string]bool // gateways with online devices; deleted when heard from
	cleared  map[string]bool // gateways heard from since the ping
}

// startProbe re-asserts PREFIX/bridge/state (another gateway's Will or
// clean shutdown set it offline; it means "at least one gateway on this
// prefix is up") and, unless a check is already running, pings the
// gateways whose imported devices are online.
func (b *Bridge) startProbe(remotes map[string]*remoteDev, p *probe) {
	b.out.pushFront(&outMsg{topic: b.topics.bridgeState(), payload: []byte(payloadOnline), qos: 1, retain: true, state: true})
	if p.timer != nil {
		// A check is running: devices imported since (retained statuses
		// arrive in any order) make their gateways suspects too, unless
		// those already answered the ping.
		for _, r := range remotes {
			if r.link != nil && !p.cleared[r.gateway] {
				p.suspects[r.gateway] = true
			}
		}
		return
	}
	suspects := map[string]bool{}
	for _, r := range remotes {
		if r.link != nil {
			suspects[r.gateway] = true
		}
	}
	if len(suspects) == 0 {
		return
	}
	p.suspects, p.cleared = suspects, map[string]bool{}
	p.timer = time.NewTimer(b.probeWait)
	// Queued as state: a full backlog evicts readings, never the ping (a
	// lost ping would make every suspect look dead).
	b.out.pushFront(&outMsg{topic: b.topics.ping(), payload: gatewayPayload(b.gw), qos: 1, state: true})
	b.log.Debug("mqtt: another gateway went offline; checking which", "gateways", len(suspects))
}

// endProbe marks offline the devices of every suspect that did not answer.
func (b *Bridge) endProbe(remotes map[string]*remoteDev, p *probe) {
	for gw := range p.suspects {
		n := 0
		for _, r := range remotes {
			if r.gateway == gw && r.link != nil {
				r.link.Detach("gateway " + gw + " stopped answering")
				r.link = nil
				r.online = false // until its gateway publishes online again
				n++
			}
		}
		if n > 0 {
			b.log.Warn("mqtt: gateway stopped answering; its devices are offline", "gateway", gw, "devices", n)
		}
	}
	p.cancel()
}

func (p *probe) cancel() {
	if p.timer != nil {
		p.timer.Stop()
	}
	p.timer, p.suspects, p.cleared = nil, nil, nil
}

func (p *probe) heard(gw string) {
	if p.timer != nil {
		delete(p.suspects, gw)
		p.cleared[gw] = true
	}
}

// takeSet checks a set message and queues it for the command dispatcher;
// when that queue is full the command is answered "gateway busy" at once.
func (b *Bridge) takeSet(dev, label string, m mqtt.Message) {
	if m.Retained() {
		// A retained command would fire on every restart ("ghost
		// switching"); the contract says ignore it.
		b.m.retainedIgnored.Add(1)
		b.log.Debug("mqtt: ignored retained command", "device", dev, "label", label)
		return
	}
	info, known := b.hub.Device(dev)
	if known && info.Remote {
		return // its own gateway answers
	}
	if !known && b.cfg.Cluster {
		return // maybe another gateway's device we have not imported yet
	}
	select {
	case b.sets <- setMsg{dev: dev, label: label, payload: m.Payload(), at: time.Now()}:
	default:
		b.m.inboundDropped.Add(1)
		b.answer(dev, label, errBusy)
	}
}

// validLabel reports whether a label from a topic may become a reading:
// what the hub accepts from boards, minus the reserved topic names.
func validLabel(l string) bool {
	if l == "" || len(l) > gateway.MaxLabelLen || !utf8.ValidString(l) || reservedLabel(l) {
		return false
	}
	for _, c := range l {
		if unicode.IsControl(c) {
			return false
		}
	}
	return true
}

// dispatch handles state messages until ctx ends: other gateways' devices
// are imported into the hub, and Home Assistant's birth message triggers a
// discovery re-send. It owns the remote devices' links, and evicts remote
// entries whose meta never came.
func (b *Bridge) dispatch(ctx context.Context) {
	remotes := map[string]*remoteDev{}
	defer func() {
		for _, r := range remotes {
			if r.link != nil {
				r.link.Detach("gateway shutting down")
			}
		}
		b.m.remotePending.Store(0)
	}()
	sweep := time.NewTicker(max(b.remoteMetaWait/4, 10*time.Millisecond))
	defer sweep.Stop()
	var p probe
	defer p.cancel()
	var settle *time.Timer // after a (re)connect in cluster mode: then check who is alive
	defer func() {
		if settle != nil {
			settle.Stop()
		}
	}()
	for {
		var probeDone, settled <-chan time.Time
		if p.timer != nil {
			probeDone = p.timer.C
		}
		if settle != nil {
			settled = settle.C
		}
		select {
		case <-ctx.Done():
			return
		case <-b.joined:
			if b.cfg.Cluster {
				if settle != nil {
					settle.Stop()
				}
				settle = time.NewTimer(b.joinSettle)
			}
		case <-settled:
			settle = nil
			b.startProbe(remotes, &p)
		case <-sweep.C:
			b.evictPending(remotes)
		case <-probeDone:
			p.timer = nil
			b.endProbe(remotes, &p)
		case <-b.states.notify:
			for {
				in, ok := b.states.pop()
				if !ok {
					break
				}
				b.handleState(remotes, &p, in)
			}
		}
	}
}

// handleState applies one state message.
func (b *Bridge) handleState(remotes map[string]*remoteDev, p *probe, in inMsg) {
	if in.linksDown != "" {
		p.cancel()
		for _, r := range remotes {
			if r.link != nil {
				r.link.Detach(in.linksDown)
				r.link = nil
			}
		}
		return
	}
	if b.cfg.HomeAssistant.Enabled && in.topic == b.haPrefix+"/status" {
		if strings.TrimSpace(string(in.payload)) == payloadOnline {
			select {
			case b.haOnline <- struct{}{}:
			default:
			}
		}
		return
	}
	if in.topic == b.topics.bridgeState() {
		b.startProbe(remotes, p) // takeBridge passes only "offline"
		return
	}
	if gw, ok := b.topics.aliveGateway(in.topic); ok {
		p.heard(gw)
		return
	}
	kind, dev, label := b.topics.parse(in.topic)
	switch kind {
	case tkMeta, tkStatus, tkValue:
		b.importRemote(remotes, kind, dev, label, in.payload)
		if r := remotes[dev]; r != nil && in.live && r.gateway != "" {
			p.heard(r.gateway) // it just published: alive
		}
		b.countPending(remotes)
	}
}

// evictPending forgets remote entries that have waited longer than
// remoteMetaWait for their meta (statuses and values for a device no
// gateway announces: stale retained junk, or hostile input).
func (b *Bridge) evictPending(remotes map[string]*remoteDev) {
	now := time.Now()
	for id, r := range remotes {
		if !r.added && now.Sub(r.created) > b.remoteMetaWait {
			b.pendingBytes -= r.pendingBytes
			delete(remotes, id)
			b.log.Debug("mqtt: forgot a device whose meta never came", "device", id)
		}
	}
	b.countPending(remotes)
}

func (b *Bridge) countPending(remotes map[string]*remoteDev) {
	n := 0
	for _, r := range remotes {
		if !r.added {
			n++
		}
	}
	b.m.remotePending.Store(int64(n))
}

// commands runs the set messages until ctx ends. Each device has its own
// worker while it has commands waiting, so its commands keep their order
// and a slow board delays only its own; a command older than cmdBudget is
// answered "gateway busy: the command waited too long" without running.
// It waits for the workers it started before it returns.
func (b *Bridge) commands(ctx context.Context) {
	var (
		mu      sync.Mutex
		queues  = map[string]chan setMsg{} // devices with a running worker
		workers sync.WaitGroup
	)
	defer workers.Wait()
	worker := func(dev string, q chan setMsg) {
		for {
			mu.Lock()
			select {
			case c := <-q:
				mu.Unlock()
				b.runCommand(ctx, c)
			default:
				delete(queues, dev)
				mu.Unlock()
				return
			}
		}
	}
	for {
		var c setMsg
		select {
		case <-ctx.Done():
			return
		case c = <-b.sets:
		}
		if len(c.payload) > maxSetPayload {
			b.answer(c.dev, c.label, fmt.Errorf("%w: command over %d bytes", gateway.ErrBadCommand, maxSetPayload))
			continue
		}
		if _, known := b.hub.Device(c.dev); !known {
			b.answer(c.dev, c.label, fmt.Errorf("device %s: %w", c.dev, gateway.ErrUnknownDevice))
			continue
		}
		// Known local devices only: the workers are bounded by the config.
		mu.Lock()
		q, running := queues[c.dev]
		if !running {
			q = make(chan setMsg, commandQueueLen)
			queues[c.dev] = q
		}
		select {
		case q <- c:
		default:
			b.answer(c.dev, c.label, fmt.Errorf("device %s: %w (MQTT command queue full)", c.dev, errBusy))
		}
		mu.Unlock()
		if !running {
			workers.Go(func() { worker(c.dev, q) })
		}
	}
}

// runCommand runs one MQTT command within what is left of its budget and
// answers it on its result topic.
func (b *Bridge) runCommand(ctx context.Context, c setMsg) {
	if ctx.Err() != nil {
		return
	}
	deadline := c.at.Add(b.cmdBudget)
	if time.Until(deadline) < minCommandTime {
		b.log.Debug("mqtt command waited too long", "device", c.dev, "label", c.label)
		b.answer(c.dev, c.label, errWaitedTooLong)
		return
	}
	cctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	err := b.hub.Command(cctx, c.dev, gateway.Command{Label: c.label, Value: commandValue(c.payload)})
	if err != nil {
		b.log.Debug("mqtt command failed", "device", c.dev, "label", c.label, "err", err)
	}
	b.answer(c.dev, c.label, err)
}

// answer publishes a command's result (never retained).
func (b *Bridge) answer(dev, label string, err error) {
	if err == nil {
		b.m.commandsOK.Add(1)
	} else {
		b.m.commandsErr.Add(1)
	}
	b.out.pushFront(&outMsg{topic: b.topics.result(dev, label), payload: resultPayload(dev, err), qos: 1})
}

// waiters are commands sent to other gateways, waiting for their result
// topic. MQTT 3.1.1 has no correlation ids, so a result goes to the oldest
// waiter on its topic.
type waiters struct {
	mu sync.Mutex
	m  map[string][]*waiter
}

type waiter struct {
	topic string
	ch    chan []byte // capacity 1
}

func (w *waiters) add(topic string) *waiter {
	wt := &waiter{topic: topic, ch: make(chan []byte, 1)}
	w.mu.Lock()
	w.m[topic] = append(w.m[topic], wt)
	w.mu.Unlock()
	return wt
}

func (w *waiters) remove(wt *waiter) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.m[wt.topic]
	for i, x := range list {
		if x == wt {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(w.m, wt.topic)
	} else {
		w.m[wt.topic] = list
	}
}

// deliver hands payload to the oldest waiter on topic; it never blocks.
func (w *waiters) deliver(topic string, payload []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.m[topic]
	if len(list) == 0 {
		return
	}
	wt := list[0]
	if len(list) == 1 {
		delete(w.m, topic)
	} else {
		w.m[topic] = list[1:]
	}
	wt.ch <- append([]byte(nil), payload...)
}

// remoteDev is a device another gateway publishes, as dispatch sees it.
type remoteDev struct {
	created      time.Time // evicted if no meta came within remoteMetaWait
	pendingBytes int       // size of values
	gateway      string
	added        bool // meta seen and the device is in the hub
	online       bool
	link         gateway.Link
	values       map[string]json.RawMessage // latest values not yet in the hub
	order        []string
}

// importRemote applies one meta, status or value message of another
// gateway's device to the hub. Retained messages arrive in any order, so
// status and values wait for the meta, and values wait for the device to be
// online (the hub takes readings only from a live link).
func (b *Bridge) importRemote(remotes map[string]*remoteDev, kind topicKind, dev, label string, payload []byte) {
	if info, ok := b.hub.Device(dev); ok && !info.Remote {
		return // ours: we published it
	}
	r := remotes[dev]
	if r == nil {
		if len(payload) == 0 || len(remotes) >= maxRemoteDevices {
			return
		}
		r = &remoteDev{created: time.Now(), values: map[string]json.RawMessage{}}
		remotes[dev] = r
	}
	switch kind {
	case tkMeta:
		if len(payload) == 0 {
			// Its gateway withdrew it (retained meta cleared).
			if r.link != nil {
				r.link.Detach("withdrawn by gateway " + r.gateway)
			}
			if r.added {
				b.hub.RemoveDevice(dev)
				b.m.remoteDevices.Add(-1)
			}
			b.pendingBytes -= r.pendingBytes
			delete(remotes, dev)
			return
		}
		var meta struct {
			Gateway   string   `json:"gateway"`
			Name      string   `json:"name"`
			Transport string   `json:"transport"`
			Commands  []string `json:"commands"`
		}
		if err := json.Unmarshal(payload, &meta); err != nil || !gateway.ValidID(meta.Gateway) {
			// The gateway name reaches /metrics labels and browsers: it
			// must be an id like ours.
			b.m.inboundRejected.Add(1)
			b.log.Debug("mqtt: ignored bad meta", "device", dev, "gateway", meta.Gateway, "err", err)
			return
		}
		if meta.Gateway == b.gw {
			// Our own gateway published it once (a device since removed
			// from our config): never re-import our own devices.
			if !r.added {
				b.pendingBytes -= r.pendingBytes
				delete(remotes, dev)
			}
			return
		}
		err := b.hub.AddDevice(gateway.DeviceInfo{ID: dev, Name: meta.Name, Gateway: meta.Gateway, Transport: meta.Transport, Commands: meta.Commands, Remote: true})
		if err != nil {
			b.log.Warn("mqtt: cannot import device from another gateway", "device", dev, "gateway", meta.Gateway, "err", err)
			b.pendingBytes -= r.pendingBytes
			delete(remotes, dev)
			return
		}
		if !r.added {
			b.m.remoteDevices.Add(1)
			b.log.Info("mqtt: imported device", "device", dev, "gateway", meta.Gateway)
		}
		r.added, r.gateway = true, meta.Gateway
	case tkStatus:
		r.online = strings.TrimSpace(string(payload)) == payloadOnline
		if !r.online && r.link != nil {
			r.link.Detach("offline on gateway " + r.gateway)
			r.link = nil
		}
	case tkValue:
		if reservedLabel(label) {
			return
		}
		v := json.RawMessage(payload)
		if !json.Valid(v) {
			v, _ = json.Marshal(string(payload))
		}
		if r.link != nil {
			r.link.Publish(gateway.Reading{Label: label, Value: v})
			return
		}
		old, had := r.values[label]
		if b.pendingBytes-len(old)+len(v) > maxPendingBytes {
			b.m.inboundDropped.Add(1)
			return
		}
		if !had {
			if len(r.order) >= gateway.MaxLabelsPerDevice {
				return
			}
			r.order = append(r.order, label)
		}
		r.values[label] = v
		r.pendingBytes += len(v) - len(old)
		b.pendingBytes += len(v) - len(old)
	}
	if r.added && r.online && r.link == nil {
		link, err := b.hub.Attach(dev, b.remoteSend(dev, r.gateway))
		if err != nil {
			b.log.Debug("mqtt: cannot attach remote device", "device", dev, "err", err)
			return
		}
		r.link = link
		for _, l := range r.order {
			link.Publish(gateway.Reading{Label: l, Value: r.values[l]})
		}
		clear(r.values)
		r.order = r.order[:0]
		b.pendingBytes -= r.pendingBytes
		r.pendingBytes = 0
	}
}

// remoteLinksDown tells dispatch that other gateways are unreachable. The
// note goes into the state queue behind everything already there and ahead
// of anything the next connection brings (the queue stops coalescing
// across it).
func (b *Bridge) remoteLinksDown(reason string) {
	if b.cfg.Cluster {
		b.states.pushBarrier(inMsg{linksDown: reason})
	}
}

// remoteSend is the SendFunc of a device on another gateway: the command
// goes to its set topic and the answer comes from its result topic.
func (b *Bridge) remoteSend(dev, gw string) gateway.SendFunc {
	return func(ctx context.Context, c gateway.Command) error {
		if !b.conn.gate.isUp() {
			return fmt.Errorf("%w: no MQTT broker connection to reach gateway %s", gateway.ErrOffline, gw)
		}
		rt := b.topics.result(dev, c.Label)
		w := b.waiters.add(rt)
		defer b.waiters.remove(w)
		// QoS 0, and never sent once nobody waits: a command must not reach
		// the board after its answer (paho would resend a QoS 1 publish
		// after a reconnect, tens of seconds later: a ghost toggle).
		b.out.pushFront(&outMsg{topic: b.topics.set(dev, c.Label), payload: append([]byte(nil), c.Value...), qos: 0,
			expires: time.Now().Add(b.resultTimeout)})
		t := time.NewTimer(b.resultTimeout)
		defer t.Stop()
		select {
		case p := <-w.ch:
			var res struct {
				OK    bool         `json:"ok"`
				Error string       `json:"error"`
				Code  gateway.Code `json:"code"`
			}
			if err := json.Unmarshal(p, &res); err != nil {
				return fmt.Errorf("gateway %s answered %s with a malformed result: %w", gw, rt, err)
			}
			if res.OK {
				return nil
			}
			return remoteError(gw, res.Error, res.Code)
		case <-t.C:
			return fmt.Errorf("%w: gateway %s sent no result on %s within %v", gateway.ErrTimeout, gw, rt, b.resultTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// remoteError is another gateway's answer as an error here: its code gives
// the core's sentinel, so browsers and HTTP clients see the same status and
// sentence as for a local device; its text stays in the error for logs.
func remoteError(gw, text string, code gateway.Code) error {
	if s := gateway.Sentinel(code); s != nil {
		return fmt.Errorf("gateway %s: %s: %w", gw, text, s)
	}
	return fmt.Errorf("gateway %s: %s", gw, text)
}
