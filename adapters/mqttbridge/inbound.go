package mqttbridge

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/esp32gw/esp32gw/gateway"
)

// inMsg is one message from the broker, or (linksDown) the connection
// loop's note that remote devices are unreachable now.
type inMsg struct {
	topic     string
	payload   []byte
	retained  bool
	linksDown string // non-empty: detach every remote device with this reason
}

// command is one MQTT command for a local device.
type command struct {
	dev, label string
	value      json.RawMessage
}

// onMessage is paho's handler for every incoming message. It never blocks:
// a result wakes its waiter, anything else goes to the bounded inbound
// queue (dropped and counted when full).
func (b *Bridge) onMessage(_ mqtt.Client, m mqtt.Message) {
	topic := m.Topic()
	if kind, dev, label := b.parseTopic(topic); kind == tkResult {
		b.waiters.deliver(b.resultTopic(dev, label), m.Payload())
		return
	}
	select {
	case b.inbound <- inMsg{topic: topic, payload: m.Payload(), retained: m.Retained()}:
	default:
		b.m.inboundDropped.Add(1)
	}
}

// dispatch handles inbound messages until ctx ends: commands go to their
// device's worker, other gateways' devices are imported into the hub, and
// Home Assistant's birth message triggers a discovery re-send. It owns the
// remote devices' links.
func (b *Bridge) dispatch(ctx context.Context, workers []chan command) {
	remotes := map[string]*remoteDev{}
	defer func() {
		for _, r := range remotes {
			if r.link != nil {
				r.link.Detach("gateway shutting down")
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-b.inbound:
			if in.linksDown != "" {
				for _, r := range remotes {
					if r.link != nil {
						r.link.Detach(in.linksDown)
						r.link = nil
					}
				}
				continue
			}
			if b.cfg.HomeAssistant.Enabled && in.topic == b.haPrefix+"/status" {
				if strings.TrimSpace(string(in.payload)) == payloadOnline {
					select {
					case b.haOnline <- struct{}{}:
					default:
					}
				}
				continue
			}
			kind, dev, label := b.parseTopic(in.topic)
			switch kind {
			case tkSet:
				b.route(dev, label, in, workers)
			case tkMeta, tkStatus, tkValue:
				if b.cfg.Cluster {
					b.importRemote(remotes, kind, dev, label, in.payload)
				}
			}
		}
	}
}

// route checks a set message and queues it for its device's worker.
func (b *Bridge) route(dev, label string, in inMsg, workers []chan command) {
	if in.retained {
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
	if len(in.payload) > maxSetPayload {
		b.answer(dev, label, fmt.Errorf("%w: command over %d bytes", gateway.ErrBadCommand, maxSetPayload))
		return
	}
	c := command{dev: dev, label: label, value: commandValue(in.payload)}
	h := fnv.New32a()
	h.Write([]byte(dev))
	select {
	case workers[h.Sum32()%uint32(len(workers))] <- c:
	default:
		b.answer(dev, label, fmt.Errorf("device %s: %w (MQTT command queue full)", dev, gateway.ErrRateLimited))
	}
}

// commandWorker runs commands one at a time until ctx ends, answering each
// on its result topic.
func (b *Bridge) commandWorker(ctx context.Context, in <-chan command) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-in:
			err := b.hub.Command(ctx, c.dev, gateway.Command{Label: c.label, Value: c.value})
			if err != nil {
				b.log.Debug("mqtt command failed", "device", c.dev, "label", c.label, "err", err)
			}
			b.answer(c.dev, c.label, err)
		}
	}
}

// answer publishes a command's result (never retained).
func (b *Bridge) answer(dev, label string, err error) {
	if err == nil {
		b.m.commandsOK.Add(1)
	} else {
		b.m.commandsErr.Add(1)
	}
	b.out.push(&outMsg{topic: b.resultTopic(dev, label), payload: resultPayload(err), qos: 1}, true)
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
	gateway string
	added   bool // meta seen and the device is in the hub
	online  bool
	link    *gateway.Link
	values  map[string]json.RawMessage // latest values not yet in the hub
	order   []string
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
		r = &remoteDev{values: map[string]json.RawMessage{}}
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
			delete(remotes, dev)
			return
		}
		var meta struct {
			Gateway   string   `json:"gateway"`
			Name      string   `json:"name"`
			Transport string   `json:"transport"`
			Commands  []string `json:"commands"`
		}
		if err := json.Unmarshal(payload, &meta); err != nil || meta.Gateway == "" {
			b.log.Debug("mqtt: ignored bad meta", "device", dev, "err", err)
			return
		}
		if meta.Gateway == b.gw {
			// Our own gateway published it once (a device since removed
			// from our config): never re-import our own devices.
			if !r.added {
				delete(remotes, dev)
			}
			return
		}
		err := b.hub.AddDevice(gateway.DeviceInfo{ID: dev, Name: meta.Name, Gateway: meta.Gateway, Transport: meta.Transport, Commands: meta.Commands, Remote: true})
		if err != nil {
			b.log.Warn("mqtt: cannot import device from another gateway", "device", dev, "gateway", meta.Gateway, "err", err)
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
		if _, ok := r.values[label]; !ok {
			if len(r.order) >= gateway.MaxLabelsPerDevice {
				return
			}
			r.order = append(r.order, label)
		}
		r.values[label] = v
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
	}
}

// remoteLinksDown tells dispatch that other gateways are unreachable; it
// waits for room in the queue so the note is ordered before anything the
// next connection brings.
func (b *Bridge) remoteLinksDown(ctx context.Context, reason string) {
	if !b.cfg.Cluster {
		return
	}
	select {
	case b.inbound <- inMsg{linksDown: reason}:
	case <-ctx.Done():
	}
}

// remoteSend is the SendFunc of a device on another gateway: the command
// goes to its set topic and the answer comes from its result topic.
func (b *Bridge) remoteSend(dev, gw string) gateway.SendFunc {
	return func(ctx context.Context, c gateway.Command) error {
		if !b.gate.isUp() {
			return fmt.Errorf("%w: no MQTT broker connection to reach gateway %s", gateway.ErrOffline, gw)
		}
		rt := b.resultTopic(dev, c.Label)
		w := b.waiters.add(rt)
		defer b.waiters.remove(w)
		b.out.push(&outMsg{topic: b.setTopic(dev, c.Label), payload: append([]byte(nil), c.Value...), qos: 1}, true)
		t := time.NewTimer(b.resultTimeout)
		defer t.Stop()
		select {
		case p := <-w.ch:
			var res struct {
				OK    bool   `json:"ok"`
				Error string `json:"error"`
			}
			if err := json.Unmarshal(p, &res); err != nil {
				return fmt.Errorf("gateway %s answered %s with a malformed result: %w", gw, rt, err)
			}
			if res.OK {
				return nil
			}
			return remoteError(gw, res.Error)
		case <-t.C:
			return fmt.Errorf("%w: gateway %s sent no result on %s within %v", gateway.ErrTimeout, gw, rt, b.resultTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// remoteError keeps the meaning of another gateway's error text: when it
// names one of the core's sentinel errors, the result wraps that sentinel so
// browsers and HTTP clients see the same status as for a local device.
func remoteError(gw, text string) error {
	e := &remoteErr{msg: "gateway " + gw + ": " + text}
	for _, s := range []error{gateway.ErrOffline, gateway.ErrNotAllowed, gateway.ErrUnknownDevice, gateway.ErrRateLimited, gateway.ErrTimeout, gateway.ErrBadCommand} {
		if strings.Contains(text, s.Error()) {
			e.sentinel = s
			break
		}
	}
	return e
}

// remoteErr is another gateway's error text, unwrapping to the sentinel
// it names (if any).
type remoteErr struct {
	msg      string
	sentinel error
}

func (e *remoteErr) Error() string { return e.msg }
func (e *remoteErr) Unwrap() error { return e.sentinel }
