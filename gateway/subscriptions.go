package gateway

import "sync/atomic"

// broadcastLocked hands msgs (one board frame's readings, or a single
// message) to every subscriber that wants them, never blocking. A subscriber
// that already has its queue length waiting has fallen behind and
// is dropped with ErrSlowConsumer; otherwise the whole batch fits, because
// the channel has room for a full frame beyond the queue length. So one board
// frame with many readings never costs a browser that keeps up its stream.
func (h *Hub) broadcastLocked(msgs ...*Message) {
	for s := range h.subs {
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

func (h *Hub) dropLocked(s *Subscription, err error) {
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	s.err = err
	close(s.done)
}

// Subscribe registers a subscriber. With since >= 0 and the history still
// holding every event after since, first holds exactly those events (and the
// status changes among them); otherwise first holds one snapshot. queueLen
// <= 0 means DefaultQueueLen. The subscription ends when Close is called, when
// the hub shuts down, or when its queue overflows (Err says which).
func (h *Hub) Subscribe(since int64, queueLen int) (s *Subscription, first []*Message, err error) {
	if queueLen <= 0 {
		queueLen = DefaultQueueLen
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, nil, ErrShutdown
	}
	s = &Subscription{hub: h, limit: queueLen, ch: make(chan *Message, queueLen+MaxReadingsPerFrame), done: make(chan struct{})}
	s.C = s.ch
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

// Subscription is one subscriber's bounded queue. Read C until Done is
// closed; then Err says why it ended.
type Subscription struct {
	C     <-chan *Message
	hub   *Hub
	limit int // messages waiting beyond this: the subscriber has fallen behind
	ch    chan *Message
	done  chan struct{}
	err   error // set before done is closed

	filter atomic.Pointer[Filter]
}

// Filter narrows what a subscriber receives. Snapshots always pass.
type Filter struct {
	Devices map[string]bool // nil: every device
	Logs    bool
}

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

func (s *Subscription) wants(m *Message) bool {
	f := s.filter.Load()
	if m.Kind == KindSnapshot {
		return true
	}
	if f == nil {
		return m.Kind != KindLog
	}
	if m.Kind == KindLog && !f.Logs {
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
