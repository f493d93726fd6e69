package mqttbridge

import (
	"context"
	"fmt"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/esp32gw/esp32gw/adapters/mqttbridge/hadiscovery"
	"github.com/esp32gw/esp32gw/gateway"
)

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
// Home Assistant's birth message is a signal to the pump (a channel of
// one); the cluster's messages go to cluster.take; a set message goes to
// the bounded command queue (answered "gateway busy" when full). Oversized
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
			case b.haOnline <- struct{}{}:
			default:
			}
		}
		return
	}
	if b.cluster != nil && b.cluster.take(topic, payload, m.Retained()) {
		return
	}
	if kind, dev, label := b.topics.parse(topic); kind == tkSet {
		b.takeSet(dev, label, m)
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
	if !known && b.cluster != nil {
		return // maybe another gateway's device we have not imported yet
	}
	select {
	case b.sets <- setMsg{dev: dev, label: label, payload: m.Payload(), at: time.Now()}:
	default:
		b.m.inboundDropped.Add(1)
		b.answer(dev, label, errBusy)
	}
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
