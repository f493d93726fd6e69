package gateway

import (
	"sync"
	"sync/atomic"
)

// broadcastLocked hands msgs (one board frame's readings, or a single
// message) to every subscriber that wants them, never blocking. A subscriber
// that already has its queue length waiting has fallen behind and
// is dropped with ErrSlowConsumer; otherwise the whole batch fits, because
// the queue has room for a full frame beyond the queue length. So one board
// frame with many readings never costs a browser that keeps up its stream.
func (h *Hub) broadcastLocked(msgs ...*Message) {
	for s := range h.subs {
		if s.wake != nil {
			h.queueLocked(s, msgs)
			continue
		}
		if len(s.ch) >= s.limit {
			h.counters.SlowConsumers.Add(1)
			h.dropLocked(s, ErrSlowConsumer)
			continue
		}
		for _, m := range msgs {
			if !s.wants(m) {
				continue
			}
			select {
			case s.ch <- m:
			default:
				h.counters.SlowConsumers.Add(1)
				h.dropLocked(s, ErrSlowConsumer)
			}
			if _, live := h.subs[s]; !live {
				break
			}
		}
	}
}

// queueLocked is broadcastLocked for a queue subscriber (SubscribeQueue):
// the same policy, one lock of the subscriber's queue per batch, and one
// wake when the batch lands in an empty queue.
func (h *Hub) queueLocked(s *Subscription, msgs []*Message) {
	f := s.filter.Load()
	s.mu.Lock()
	if s.q.n >= s.limit {
		s.mu.Unlock()
		h.counters.SlowConsumers.Add(1)
		h.dropLocked(s, ErrSlowConsumer)
		return
	}
	wasEmpty := s.q.n == 0
	for _, m := range msgs {
		if !f.wants(m) {
			continue
		}
		if !s.q.push(m, s.limit+MaxReadingsPerFrame) {
			s.mu.Unlock()
			h.counters.SlowConsumers.Add(1)
			h.dropLocked(s, ErrSlowConsumer)
			return
		}
	}
	woke := wasEmpty && s.q.n > 0
	s.mu.Unlock()
	if woke {
		s.wake()
	}
}

func (h *Hub) dropLocked(s *Subscription, err error) {
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	s.err = err
	close(s.done)
	if s.wake != nil {
		s.wake()
	}
}

// Subscribe registers a subscriber. With since >= 0 and the history still
// holding every event after since, first holds exactly those events (and the
// status changes among them); otherwise first holds one snapshot. queueLen
// <= 0 means DefaultQueueLen. The subscription ends when Close is called, when
// the hub shuts down, or when its queue overflows (Err says which).
func (h *Hub) Subscribe(since int64, queueLen int) (s *Subscription, first []*Message, err error) {
	return h.subscribe(since, queueLen, nil)
}

// SubscribeQueue is Subscribe for a consumer that takes its messages in
// batches with Take instead of reading C (which stays nil): they wait in a
// ring that grows with need and holds nothing while the subscriber is idle.
// wake is called when messages land in an empty queue and when the
// subscription ends; it is called with the hub's lock held, so it must
// return at once and must not call the hub.
func (h *Hub) SubscribeQueue(since int64, queueLen int, wake func()) (s *Subscription, first []*Message, err error) {
	return h.subscribe(since, queueLen, wake)
}

func (h *Hub) subscribe(since int64, queueLen int, wake func()) (s *Subscription, first []*Message, err error) {
	if queueLen <= 0 {
		queueLen = DefaultQueueLen
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, nil, ErrShutdown
	}
	s = &Subscription{hub: h, limit: queueLen, done: make(chan struct{}), wake: wake}
	if wake == nil {
		s.ch = make(chan *Message, queueLen+MaxReadingsPerFrame)
		s.C = s.ch
	}
	first, ok := h.replay.since(since, h.seq)
	var (
		states []DeviceState
		seq    = h.seq
	)
	if !ok {
		states = h.statesLocked() // a copy: encoded below, outside the lock
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	// The snapshot is first: whatever the subscription receives on C was
	// broadcast after seq, so encoding it now, unlocked, keeps the order
	// while boards and other subscribers go on.
	if !ok {
		first = []*Message{newSnapshotMessage(h.gatewayID, seq, states)}
	}
	return s, first, nil
}

// Subscription is one subscriber's bounded queue. Read C (or, after
// SubscribeQueue, call Take) until Done is closed; then Err says why it ended.
type Subscription struct {
	C     <-chan *Message
	hub   *Hub
	limit int // messages waiting beyond this: the subscriber has fallen behind
	ch    chan *Message
	done  chan struct{}
	err   error // set before done is closed

	// Queue subscribers (SubscribeQueue) only.
	wake func()
	mu   sync.Mutex // guards q; taken inside the hub's lock, never around it
	q    msgRing

	filter atomic.Pointer[Filter]
}

// Take appends up to limit queued messages to dst, oldest first, and
// removes them from the queue (SubscribeQueue only). After a burst, an
// emptied queue gives its memory back.
func (s *Subscription) Take(dst []*Message, limit int) []*Message {
	s.mu.Lock()
	dst = s.q.pop(dst, limit)
	s.mu.Unlock()
	return dst
}

// Queued is the number of messages waiting.
func (s *Subscription) Queued() int {
	if s.wake == nil {
		return len(s.ch)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.n
}

// msgRing is a FIFO of messages in a power-of-two ring that grows on
// demand up to a cap and is released when a large one drains.
type msgRing struct {
	buf  []*Message
	head int // index of the oldest
	n    int // messages held
}

const (
	ringMin  = 8   // first allocation, for a subscriber that gets anything at all
	ringKeep = 256 // an emptied ring larger than this is released
)

// push appends m unless limit messages are held.
func (r *msgRing) push(m *Message, limit int) bool {
	if r.n >= limit {
		return false
	}
	if r.n == len(r.buf) {
		size := max(ringMin, 2*len(r.buf))
		nb := make([]*Message, size)
		k := copy(nb, r.buf[r.head:])
		copy(nb[k:], r.buf[:r.head])
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = m
	r.n++
	return true
}

// pop appends up to limit of the oldest messages to dst and forgets them.
func (r *msgRing) pop(dst []*Message, limit int) []*Message {
	k := min(r.n, limit)
	mask := len(r.buf) - 1
	for i := 0; i < k; i++ {
		j := (r.head + i) & mask
		dst = append(dst, r.buf[j])
		r.buf[j] = nil
	}
	r.n -= k
	if r.n == 0 {
		r.head = 0
		if len(r.buf) > ringKeep {
			r.buf = nil
		}
	} else {
		r.head = (r.head + k) & mask
	}
	return dst
}

// Filter narrows what a subscriber receives. Snapshots always pass.
type Filter struct {
	Devices map[string]bool // nil: every device
	Logs    bool
	// NoEvents: readings are not delivered, only what changes a device's
	// state (status, info, snapshots). For the gateway's own followers
	// that act on board state (firmware updates): they cost nothing per
	// reading and never fall behind under a flood of readings.
	NoEvents bool
}

// SkipEvents makes the subscriber receive no events (readings), only
// status, info, snapshot and pending messages, for every device.
func (s *Subscription) SkipEvents() { s.filter.Store(&Filter{NoEvents: true}) }

// SetFilter replaces the subscriber's filter; nil devices means all devices.
func (s *Subscription) SetFilter(devices []string, logs bool) {
	f := &Filter{Logs: logs}
	if len(devices) > 0 {
		f.Devices = map[string]bool{}
		for _, d := range devices {
			f.Devices[d] = true
		}
	}
	s.filter.Store(f)
}

func (s *Subscription) wants(m *Message) bool { return s.filter.Load().wants(m) }

// wants reports whether a subscriber with filter f (nil: the default)
// receives m.
func (f *Filter) wants(m *Message) bool {
	if m.Kind == KindSnapshot || m.Kind == KindPending {
		return true
	}
	if f == nil {
		return m.Kind != KindLog
	}
	if m.Kind == KindLog && !f.Logs || m.Kind == KindEvent && f.NoEvents {
		return false
	}
	return f.Devices == nil || f.Devices[m.Device]
}

// Done is closed when the subscription ends.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err says why the subscription ended: ErrSlowConsumer, ErrShutdown, or nil
// after Close.
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close ends the subscription; safe to call more than once.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.hub.dropLocked(s, nil)
}

// Subscribers is the number of live subscriptions.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}
