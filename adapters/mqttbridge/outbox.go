package mqttbridge

import (
	"container/list"
	"sync"
	"sync/atomic"
	"time"
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

// outbox is the bounded backlog between the hub and the broker. It is filled
// by the pump (and by command results) and drained by the publisher while
// the broker is connected. Overflow policy: beyond maxMsgs messages or
// maxBytes bytes, the oldest non-state message is dropped (the oldest state
// message when only those remain) and counted in dropped. Pushing never
// blocks. Safe for concurrent use.
type outbox struct {
	maxMsgs, maxBytes int

	mu      sync.Mutex
	l       list.List                // of *outMsg, oldest first
	byTopic map[string]*list.Element // queued state messages
	bytes   int
	notify  chan struct{} // capacity 1: something was pushed

	dropped atomic.Uint64
}

func newOutbox(maxMsgs, maxBytes int) *outbox {
	return &outbox{maxMsgs: maxMsgs, maxBytes: maxBytes, byTopic: map[string]*list.Element{}, notify: make(chan struct{}, 1)}
}

// push appends m (or, with front, puts it first: shutdown states, commands
// for other gateways and bridge state jump the backlog).
func (o *outbox) push(m *outMsg, front bool) {
	o.mu.Lock()
	if m.state {
		if old, ok := o.byTopic[m.topic]; ok {
			o.removeLocked(old)
		}
	}
	var e *list.Element
	if front {
		e = o.l.PushFront(m)
	} else {
		e = o.l.PushBack(m)
	}
	if m.state {
		o.byTopic[m.topic] = e
	}
	o.bytes += m.size()
	for (o.l.Len() > o.maxMsgs || o.bytes > o.maxBytes) && o.l.Len() > 1 {
		victim := o.l.Front()
		for e := o.l.Front(); e != nil; e = e.Next() {
			if !e.Value.(*outMsg).state {
				victim = e
				break
			}
		}
		if victim.Value.(*outMsg) == m {
			break // never drop what was just pushed in favour of nothing
		}
		o.removeLocked(victim)
		o.dropped.Add(1)
	}
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// pop takes the oldest message, if any.
func (o *outbox) pop() (*outMsg, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e := o.l.Front()
	if e == nil {
		return nil, false
	}
	m := e.Value.(*outMsg)
	o.removeLocked(e)
	return m, true
}

func (o *outbox) removeLocked(e *list.Element) {
	m := e.Value.(*outMsg)
	o.l.Remove(e)
	o.bytes -= m.size()
	if m.state && o.byTopic[m.topic] == e {
		delete(o.byTopic, m.topic)
	}
}

// len returns the queued messages and bytes.
func (o *outbox) len() (msgs, bytes int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.l.Len(), o.bytes
}
