package mqttbridge

import (
	"context"
	"errors"
	"log/slog"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Publishing tunables; each has its unit and its reason.
const (
	// The backlog while the broker is away: at 20 readings/s, 10,000
	// messages hold more than 8 minutes; 8 MiB bounds memory on a Pi.
	defaultBacklogMsgs  = 10000
	defaultBacklogBytes = 8 << 20
	// inflightWindow bounds publishes handed to paho and not yet
	// acknowledged; they sit in paho's store across a reconnect.
	inflightWindow = 256
	// notConnectedPause is how long the publisher waits when paho says the
	// connection is gone before the connection loop noticed (a brief race).
	notConnectedPause = 100 * time.Millisecond
)

// outMsg is one message waiting for the broker.
type outMsg struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
	// state messages (statuses, metas, discovery, re-sent last values) carry
	// a topic's whole current state: a newer one for the same topic replaces
	// a queued older one, so they never pile up while the broker is away.
	state bool
	// expires, when set, is when the message stops being worth sending
	// (a command for another gateway nobody waits for any more).
	expires time.Time
}

func (m *outMsg) size() int { return len(m.topic) + len(m.payload) }

// outbox is the bounded backlog between the hub and the broker. It is
// filled by the pump (and by command results and cluster messages) and
// drained by the publisher while the broker is connected. Overflow policy
// (overflowEvict): beyond maxMsgs messages or maxBytes bytes, the oldest
// non-state message is dropped (the oldest state message when only those
// remain) and counted in dropped. A state message replaces the queued one
// on its topic and goes where it is pushed, so the backlog keeps the hub's
// order. Pushing never blocks.
type outbox = queue[string, *outMsg]

func newOutbox(maxMsgs, maxBytes int) *outbox {
	return newQueue(queueOptions[string, *outMsg]{
		maxLen: maxMsgs, maxBytes: maxBytes, overflow: overflowEvict,
		size: (*outMsg).size,
		key:  func(m *outMsg) (string, bool) { return m.topic, m.state },
	})
}

// publisher is the only goroutine that hands messages to paho's Publish
// (besides shutdown's offline states, sent after it stopped). It owns the
// in-flight window; Bridge.Run starts run and waits for it, and stops it
// only after every producer of the outbox has stopped.
type publisher struct {
	out    *outbox
	gate   *gate
	m      *metrics
	log    *slog.Logger
	window int // in-flight publishes, inflightWindow; tests may lower it before Run
}

// inflight is one publish handed to paho.
type inflight struct {
	tok mqtt.Token
	m   *outMsg
}

// run drains the outbox into paho while the broker is connected, keeping
// at most window publishes unacknowledged, until ctx ends. A publish paho
// refused because the connection had just gone is put back at the front.
func (p *publisher) run(ctx context.Context, client mqtt.Client) {
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
			p.finish(f)
			block = false
		}
	}
	for {
		up, change := p.gate.state()
		if !up {
			select {
			case <-change:
				continue
			case <-ctx.Done():
				return
			}
		}
		reap(false, nil)
		if len(window) >= p.window {
			reap(true, change)
			if ctx.Err() != nil {
				return
			}
			continue
		}
		m, ok := p.out.pop()
		if !ok {
			var head <-chan struct{}
			if len(window) > 0 {
				head = window[0].tok.Done()
			}
			select {
			case <-p.out.notify:
			case <-head:
			case <-change:
			case <-ctx.Done():
				return
			}
			continue
		}
		if !m.expires.IsZero() && time.Now().After(m.expires) {
			continue // nobody waits for it any more
		}
		tok := client.Publish(m.topic, m.qos, m.retain, m.payload)
		if done(tok) && errors.Is(tok.Error(), mqtt.ErrNotConnected) {
			// The connection is gone and connectLoop has not closed the
			// gate yet: put it back and wait for that instead of spinning.
			p.out.pushFront(m)
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
func (p *publisher) finish(f inflight) {
	err := f.tok.Error()
	switch {
	case err == nil:
		p.m.published.Add(1)
	case errors.Is(err, mqtt.ErrNotConnected):
		// Never reached paho's store: try again after the reconnect.
		p.out.pushFront(f.m)
	default:
		// "publish was broken by timeout": paho stored it and resends it
		// on reconnect. Anything else is lost; count it.
		p.m.publishErrors.Add(1)
		p.log.Debug("mqtt publish failed", "topic", f.m.topic, "err", err)
	}
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
