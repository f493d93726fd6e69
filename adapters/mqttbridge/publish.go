package mqttbridge

import "time"

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
