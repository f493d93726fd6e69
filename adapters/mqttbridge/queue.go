package mqttbridge

import (
	"container/list"
	"sync"
	"sync/atomic"
)

// queue is a bounded FIFO between goroutines that never blocks its
// producers: paho's handler and the pump push, one consumer pops (woken
// by notify). A value may carry a key (queueOptions.key): a keyed value is
// a whole state, so pushing one replaces the queued value with the same
// key instead of piling up behind it. Safe for concurrent use.
//
// Bounds and overflow, chosen per queue by queueOptions:
//
//   - maxLen values and maxBytes bytes (by size; 0: no byte bound);
//   - overflowEvict: the push is always taken; while over a bound, the
//     oldest unkeyed value is dropped (the oldest keyed one when only those
//     remain), never the value just pushed; each drop is counted in dropped.
//     Used where the newest data matters most (readings for the broker).
//   - overflowRefuse: a push that would add a value beyond maxLen (or
//     beyond maxBytes) is refused (push returns false and dropped counts it); replacing a
//     queued value with the same key is always taken, so the latest state
//     of a topic already queued is never lost. Used where a flood of new
//     keys must not evict state already queued.
//
// A barrier (pushBarrier) is always taken, whatever the bounds, and stops
// coalescing across it: values pushed after it never replace values before
// it, so the consumer sees it in order. Barriers must be rare (the caller
// bounds them).
type queue[K comparable, V any] struct {
	opt    queueOptions[K, V]
	notify chan struct{} // capacity 1: signalled after every push

	dropped atomic.Uint64 // values evicted or refused

	mu    sync.Mutex
	l     list.List           // of *queued[K, V], oldest first
	byKey map[K]*list.Element // keyed values that a newer one may replace
	bytes int
}

type overflowPolicy int

const (
	overflowEvict  overflowPolicy = iota // drop the oldest (unkeyed first) to take the new
	overflowRefuse                       // refuse a value that would add an entry
)

// queueOptions configure a queue.
type queueOptions[K comparable, V any] struct {
	maxLen   int
	maxBytes int         // 0: not bounded by bytes
	size     func(V) int // nil: 0
	// key returns a value's key, and false for a value that no later one
	// may replace.
	key      func(V) (K, bool)
	overflow overflowPolicy
	// inPlace: a keyed push takes the place of the value it replaces;
	// otherwise that value is removed and the new one goes where pushed
	// (the back, or the front with pushFront), so the queue keeps the
	// order in which values were pushed.
	inPlace bool
}

type queued[K comparable, V any] struct {
	v     V
	key   K
	keyed bool
	size  int
}

func newQueue[K comparable, V any](o queueOptions[K, V]) *queue[K, V] {
	return &queue[K, V]{opt: o, notify: make(chan struct{}, 1), byKey: map[K]*list.Element{}}
}

// push appends v; see the type's doc for what happens when it is full.
func (q *queue[K, V]) push(v V) bool { return q.put(v, false) }

// pushFront puts v first (messages that must overtake a backlog).
func (q *queue[K, V]) pushFront(v V) bool { return q.put(v, true) }

func (q *queue[K, V]) put(v V, front bool) bool {
	e := &queued[K, V]{v: v}
	if q.opt.key != nil {
		e.key, e.keyed = q.opt.key(v)
	}
	if q.opt.size != nil {
		e.size = q.opt.size(v)
	}
	q.mu.Lock()
	ok := q.putLocked(e, front)
	q.mu.Unlock()
	if ok {
		q.wake()
	}
	return ok
}

func (q *queue[K, V]) putLocked(e *queued[K, V], front bool) bool {
	if e.keyed {
		if old, ok := q.byKey[e.key]; ok {
			if q.opt.inPlace {
				q.bytes += e.size - old.Value.(*queued[K, V]).size
				old.Value = e
				q.evictLocked(old)
				return true
			}
			q.removeLocked(old)
		}
	}
	if q.opt.overflow == overflowRefuse && (q.l.Len() >= q.opt.maxLen || (q.opt.maxBytes > 0 && q.bytes+e.size > q.opt.maxBytes)) {
		q.dropped.Add(1)
		return false
	}
	var el *list.Element
	if front {
		el = q.l.PushFront(e)
	} else {
		el = q.l.PushBack(e)
	}
	if e.keyed {
		q.byKey[e.key] = el
	}
	q.bytes += e.size
	q.evictLocked(el)
	return true
}

// evictLocked applies overflowEvict, sparing just.
func (q *queue[K, V]) evictLocked(just *list.Element) {
	if q.opt.overflow != overflowEvict {
		return
	}
	for q.l.Len() > 1 && (q.l.Len() > q.opt.maxLen || (q.opt.maxBytes > 0 && q.bytes > q.opt.maxBytes)) {
		victim := q.l.Front()
		for el := q.l.Front(); el != nil; el = el.Next() {
			if !el.Value.(*queued[K, V]).keyed {
				victim = el
				break
			}
		}
		if victim == just {
			return // never drop what was just pushed in favour of nothing
		}
		q.removeLocked(victim)
		q.dropped.Add(1)
	}
}

// pushBarrier appends v, always, and stops coalescing across it.
func (q *queue[K, V]) pushBarrier(v V) {
	e := &queued[K, V]{v: v}
	if q.opt.size != nil {
		e.size = q.opt.size(v)
	}
	q.mu.Lock()
	q.l.PushBack(e)
	q.bytes += e.size
	clear(q.byKey)
	q.mu.Unlock()
	q.wake()
}

func (q *queue[K, V]) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// pop takes the oldest value, if any.
func (q *queue[K, V]) pop() (V, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	el := q.l.Front()
	if el == nil {
		var zero V
		return zero, false
	}
	e := el.Value.(*queued[K, V])
	q.removeLocked(el)
	return e.v, true
}

func (q *queue[K, V]) removeLocked(el *list.Element) {
	e := q.l.Remove(el).(*queued[K, V])
	q.bytes -= e.size
	if e.keyed && q.byKey[e.key] == el {
		delete(q.byKey, e.key)
	}
}

// len returns the queued values and their bytes.
func (q *queue[K, V]) len() (n, bytes int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.l.Len(), q.bytes
}
