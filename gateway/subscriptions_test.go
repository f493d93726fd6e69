package gateway

import (
	"fmt"
	"testing"
)

// A queue subscription gets what a channel subscription gets, in order,
// through a ring that wraps and grows; it is woken once per batch that
// lands in an empty queue and when it ends; it is dropped by the same
// policy.
func TestQueueSubscription(t *testing.T) {
	h := newTestHub(t, Options{}, DeviceInfo{ID: "a"}, DeviceInfo{ID: "b"})
	la := mustAttach(t, h, "a", nil)
	lb := mustAttach(t, h, "b", nil)
	wakes := 0
	s, first, err := h.SubscribeQueue(-1, 20, func() { wakes++ }) // wake runs under the hub's lock
	if err != nil || len(first) != 1 || first[0].Kind != KindSnapshot {
		t.Fatalf("first %v, %v", first, err)
	}
	if s.C != nil {
		t.Fatal("a queue subscription has a channel")
	}
	s.SetFilter([]string{"a"}, false)
	var got []*Message
	next := uint64(0)
	for round := 0; round < 30; round++ {
		w := wakes
		for i := 0; i < 7; i++ {
			la.Publish(r(fmt.Sprintf("x%d", i), fmt.Sprint(round)))
			lb.Publish(r("y", "1")) // filtered out
		}
		if wakes != w+1 {
			t.Fatalf("round %d: %d wakes for one batch into an empty queue", round, wakes-w)
		}
		if q := s.Queued(); q != 7 {
			t.Fatalf("queued %d, want 7", q)
		}
		got = s.Take(got[:0], 3) // a partial take leaves the rest, in order
		got = s.Take(got, 100)
		if len(got) != 7 {
			t.Fatalf("took %d, want 7", len(got))
		}
		for _, m := range got {
			if m.Device != "a" || m.Seq <= next {
				t.Fatalf("got %s %d after seq %d", m.Device, m.Seq, next)
			}
			next = m.Seq
		}
	}
	// Behind by its queue length: dropped, woken, Err says why.
	w := wakes
	for i := 0; i < 21; i++ {
		la.Publish(r("x", "1"))
	}
	la.Publish(r("x", "2"))
	if s.Err() != ErrSlowConsumer || wakes != w+2 || h.Subscribers() != 0 {
		t.Fatalf("err %v, %d wakes, %d subscribers; want dropped as slow", s.Err(), wakes-w, h.Subscribers())
	}
}

// A ring grown by a burst gives its memory back once drained.
func TestMsgRingRelease(t *testing.T) {
	var q msgRing
	m := &Message{}
	for i := 0; i < 1000; i++ {
		if !q.push(m, 1000) {
			t.Fatal("push refused under the limit")
		}
	}
	if q.push(m, 1000) {
		t.Fatal("push over the limit")
	}
	out := q.pop(nil, 999)
	if len(out) != 999 || q.buf == nil {
		t.Fatalf("popped %d", len(out))
	}
	q.pop(out[:0], 5)
	if q.n != 0 || q.buf != nil {
		t.Fatalf("drained ring holds %d slots", len(q.buf))
	}
}

// A subscriber that skips events gets device state (status, info) and no
// reading, so a flood of readings can never make it fall behind.
func TestSkipEvents(t *testing.T) {
	h := newTestHub(t, Options{}, DeviceInfo{ID: "a"})
	s, _ := mustSubscribe(t, h, -1, 4)
	s.SkipEvents()
	drain(s)
	l := mustAttach(t, h, "a", nil)
	for i := range 100 { // 25 times its queue
		l.Publish(r("count", fmt.Sprint(i)))
	}
	l.Publish(attr("fw", `"1.0"`))
	l.Detach("gone")
	ms := drain(s)
	var kinds []MessageKind
	for _, m := range ms {
		kinds = append(kinds, m.Kind)
	}
	if len(ms) != 3 || ms[0].Kind != KindStatus || ms[1].Kind != KindInfo || ms[2].Kind != KindStatus {
		t.Fatalf("messages %v, want status, info, status and no event", kinds)
	}
	select {
	case <-s.Done():
		t.Fatal("dropped as a slow consumer by readings it does not take")
	default:
	}
}
