package mqttbridge

import (
	"container/list"
	"sync"
)

// stateQueue holds state messages from the broker (other gateways' metas,
// statuses and values, Home Assistant's birth message) between paho's
// handler and dispatch. Each carries a topic's whole state, so a newer
// message on a topic still queued replaces the older one in place: a flood
// of updates never piles up and the latest state is never dropped.
// Overflow policy: beyond max distinct topics, a message on a new topic is
// dropped (push returns false; the caller counts it). A linksDown note is
// always taken, and messages after it never replace ones before it, so
// dispatch sees it in order. push never blocks; safe for concurrent use.
type stateQueue struct {
	max    int
	notify chan struct{} // capacity 1: something was pushed

	mu      sync.Mutex
	l       list.List                // of inMsg, oldest first
	byTopic map[string]*list.Element // replaceable entries
}

func (q *stateQueue) init(topics int) {
	q.max = topics
	q.notify = make(chan struct{}, 1)
	q.byTopic = map[string]*list.Element{}
}

func (q *stateQueue) push(m inMsg) bool {
	q.mu.Lock()
	if e, ok := q.byTopic[m.topic]; ok {
		e.Value = m
	} else {
		if q.l.Len() >= q.max {
			q.mu.Unlock()
			return false
		}
		q.byTopic[m.topic] = q.l.PushBack(m)
	}
	q.mu.Unlock()
	q.wake()
	return true
}

func (q *stateQueue) pushLinksDown(reason string) {
	q.mu.Lock()
	q.l.PushBack(inMsg{linksDown: reason})
	clear(q.byTopic)
	q.mu.Unlock()
	q.wake()
}

func (q *stateQueue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// pop takes the oldest message, if any.
func (q *stateQueue) pop() (inMsg, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.l.Front()
	if e == nil {
		return inMsg{}, false
	}
	m := q.l.Remove(e).(inMsg)
	if q.byTopic[m.topic] == e {
		delete(q.byTopic, m.topic)
	}
	return m, true
}
