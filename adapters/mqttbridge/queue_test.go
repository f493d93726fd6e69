package mqttbridge

import (
	"strconv"
	"strings"
	"testing"
)

func TestOutbox(t *testing.T) {
	val := func(i int) *outMsg { return &outMsg{topic: "p/d/count", payload: []byte(strconv.Itoa(i))} }
	t.Run("drops oldest readings first", func(t *testing.T) {
		o := newOutbox(10, 1<<20)
		o.push(&outMsg{topic: "p/d/status", payload: []byte("online"), state: true})
		for i := range 20 {
			o.push(val(i))
		}
		if n, _ := o.len(); n != 10 {
			t.Fatalf("len %d, want 10", n)
		}
		if d := o.dropped.Load(); d != 11 {
			t.Errorf("dropped %d, want 11", d)
		}
		m, _ := o.pop()
		if m.topic != "p/d/status" {
			t.Errorf("the state message was dropped before older readings")
		}
		m, _ = o.pop()
		if string(m.payload) != "11" {
			t.Errorf("oldest kept reading = %s, want 11", m.payload)
		}
	})
	t.Run("byte bound", func(t *testing.T) {
		o := newOutbox(1000, 100)
		for i := range 50 {
			o.push(val(i))
		}
		if _, b := o.len(); b > 100 {
			t.Errorf("bytes %d > 100", b)
		}
	})
	t.Run("states coalesce per topic", func(t *testing.T) {
		o := newOutbox(100, 1<<20)
		o.push(&outMsg{topic: "p/d/status", payload: []byte("online"), state: true})
		o.push(val(1))
		o.push(&outMsg{topic: "p/d/status", payload: []byte("offline"), state: true})
		if n, _ := o.len(); n != 2 {
			t.Fatalf("len %d, want 2", n)
		}
		o.pop()
		if m, _ := o.pop(); string(m.payload) != "offline" {
			t.Errorf("kept %s, want the newest state", m.payload)
		}
	})
}

// kv is a test value: keyed when key is not empty.
type kv struct{ key, v string }

func kvQueue(o queueOptions[string, kv]) *queue[string, kv] {
	o.key = func(x kv) (string, bool) { return x.key, x.key != "" }
	o.size = func(x kv) int { return len(x.v) }
	return newQueue(o)
}

func drainKV(q *queue[string, kv]) string {
	var got []string
	for {
		x, ok := q.pop()
		if !ok {
			return strings.Join(got, ",")
		}
		got = append(got, x.v)
	}
}

func TestQueueEvict(t *testing.T) {
	t.Run("unkeyed first, then the oldest keyed", func(t *testing.T) {
		q := kvQueue(queueOptions[string, kv]{maxLen: 3, overflow: overflowEvict})
		q.push(kv{"s1", "A"})
		q.push(kv{"", "r1"})
		q.push(kv{"s2", "B"})
		q.push(kv{"", "r2"}) // evicts r1
		if got := drainKV(q); got != "A,B,r2" {
			t.Errorf("got %s, want A,B,r2", got)
		}
		q.push(kv{"s1", "A"})
		q.push(kv{"s2", "B"})
		q.push(kv{"s3", "C"})
		q.push(kv{"s4", "D"}) // only keyed values: the oldest goes
		if got := drainKV(q); got != "B,C,D" {
			t.Errorf("got %s, want B,C,D", got)
		}
		if d := q.dropped.Load(); d != 2 {
			t.Errorf("dropped %d, want 2", d)
		}
	})
	t.Run("never the value just pushed", func(t *testing.T) {
		q := kvQueue(queueOptions[string, kv]{maxLen: 10, maxBytes: 4, overflow: overflowEvict})
		q.push(kv{"", "ab"})
		q.push(kv{"", "0123456789"}) // alone over the byte bound: kept
		if n, b := q.len(); n != 1 || b != 10 {
			t.Errorf("len %d bytes %d, want 1 and 10", n, b)
		}
		if got := drainKV(q); got != "0123456789" {
			t.Errorf("got %s", got)
		}
	})
	t.Run("a replaced state goes where pushed", func(t *testing.T) {
		q := kvQueue(queueOptions[string, kv]{maxLen: 10, overflow: overflowEvict})
		q.push(kv{"s", "old"})
		q.push(kv{"", "r"})
		q.pushFront(kv{"s", "new"})
		if got := drainKV(q); got != "new,r" {
			t.Errorf("got %s, want new,r", got)
		}
		if _, b := q.len(); b != 0 {
			t.Errorf("bytes %d after draining, want 0", b)
		}
	})
}

func TestQueueRefuse(t *testing.T) {
	q := kvQueue(queueOptions[string, kv]{maxLen: 2, overflow: overflowRefuse, inPlace: true})
	if !q.push(kv{"a", "a1"}) || !q.push(kv{"b", "b1"}) {
		t.Fatal("refused below the bound")
	}
	if q.push(kv{"c", "c1"}) {
		t.Error("took a new key beyond the bound")
	}
	if !q.push(kv{"a", "a2"}) {
		t.Error("refused the newer state of a queued key")
	}
	if got := drainKV(q); got != "a2,b1" { // replaced in place
		t.Errorf("got %s, want a2,b1", got)
	}
	if d := q.dropped.Load(); d != 1 {
		t.Errorf("dropped %d, want 1", d)
	}
}

func TestQueueBarrier(t *testing.T) {
	q := kvQueue(queueOptions[string, kv]{maxLen: 1, overflow: overflowRefuse, inPlace: true})
	q.push(kv{"a", "a1"})
	q.pushBarrier(kv{v: "|"}) // taken beyond the bound
	q.push(kv{"a", "a2"})     // refused: the bound still holds for new entries
	if got := drainKV(q); got != "a1,|" {
		t.Errorf("got %s, want a1,|", got)
	}
	q.push(kv{"a", "a1"})
	q.pushBarrier(kv{v: "|"})
	x, _ := q.pop()
	q.pop()
	q.push(kv{"a", "a2"})
	if x.v != "a1" {
		t.Errorf("popped %s first", x.v)
	}
	if got := drainKV(q); got != "a2" {
		t.Errorf("got %s", got)
	}
}

func TestQueueNotify(t *testing.T) {
	q := kvQueue(queueOptions[string, kv]{maxLen: 1, overflow: overflowRefuse})
	q.push(kv{"a", "1"})
	q.push(kv{"b", "2"}) // refused: no second wake-up needed, none pending twice
	select {
	case <-q.notify:
	default:
		t.Fatal("no notification after a push")
	}
	select {
	case <-q.notify:
		t.Fatal("a refused push notified")
	default:
	}
}
