package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakePendingLink records what the registry asked of an enrolled board's link.
type fakePendingLink struct {
	mu     sync.Mutex
	closed []string
}

func (l *fakePendingLink) Adopt(context.Context, string, string) error { return nil }
func (l *fakePendingLink) Close(code int, reason string) {
	l.mu.Lock()
	l.closed = append(l.closed, fmt.Sprintf("%d %s", code, reason))
	l.mu.Unlock()
}
func (l *fakePendingLink) closes() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.closed...)
}

func pattr(name, value string) Reading {
	return Reading{Label: name, Value: json.RawMessage(value), Attr: true}
}

func TestPendingEnrollAttrsLeave(t *testing.T) {
	p := NewPending(PendingOptions{MaxAttrs: 3, AttrBytes: 16})
	defer p.Close()
	link := &fakePendingLink{}
	e := p.Enroll("newboard", "10.0.0.7:5000", link)
	p.Attrs(e, []Reading{
		{Label: "temp", Value: json.RawMessage(`21.5`)}, // a reading: never kept
		pattr("fw", `"1.0.0"`), pattr("chip", `"esp32"`),
		pattr("big", `"`+strings.Repeat("x", 20)+`"`), // over AttrBytes
		pattr("mac", `"aa"`), pattr("rssi", `-60`),    // the 4th name: over MaxAttrs
	})
	l := p.List()
	if len(l) != 1 {
		t.Fatalf("list: %+v", l)
	}
	b := l[0]
	if b.ID != "newboard" || b.Transport != TransportWSListen || b.Addr != "10.0.0.7:5000" || b.FirstSeen.IsZero() {
		t.Errorf("entry: %+v", b)
	}
	if len(b.Info) != 3 || string(b.Info["fw"]) != `"1.0.0"` || b.Info["temp"] != nil || b.Info["big"] != nil || b.Info["rssi"] != nil {
		t.Errorf("info: %s", b.Info)
	}
	// Changing a kept attribute is allowed at the bound.
	p.Attrs(e, []Reading{pattr("fw", `"1.0.1"`)})
	if got, _, _, _ := p.Get("newboard"); string(got.Info["fw"]) != `"1.0.1"` {
		t.Errorf("fw after update: %s", got.Info["fw"])
	}
	js, _ := json.Marshal(p.List())
	for _, k := range []string{`"id":"newboard"`, `"transport":"ws-listen"`, `"addr":"10.0.0.7:5000"`, `"url":""`, `"info":{`, `"first_seen":"`} {
		if !strings.Contains(string(js), k) {
			t.Errorf("JSON %s lacks %s", js, k)
		}
	}

	// A new connection under the same id replaces the entry; the old one's
	// leaving does not remove the new one.
	link2 := &fakePendingLink{}
	e2 := p.Enroll("newboard", "10.0.0.7:5001", link2)
	if c := link.closes(); len(c) != 1 || !strings.HasPrefix(c[0], "1000 replaced") {
		t.Errorf("replaced link closes: %v", c)
	}
	p.Leave(e)
	p.Attrs(e, []Reading{pattr("fw", `"9"`)})
	if got, _, _, ok := p.Get("newboard"); !ok || got.Addr != "10.0.0.7:5001" || len(got.Info) != 0 {
		t.Errorf("after the old link left: %+v %v", got, ok)
	}
	p.Leave(e2)
	if p.Len() != 0 {
		t.Errorf("after leaving: %d pending", p.Len())
	}
}

func TestPendingEviction(t *testing.T) {
	p := NewPending(PendingOptions{})
	defer p.Close()
	links := make([]*fakePendingLink, MaxPending+1)
	for i := range links {
		links[i] = &fakePendingLink{}
		p.Enroll(fmt.Sprintf("b%02d", i), "addr", links[i])
	}
	if p.Len() != MaxPending {
		t.Fatalf("%d pending, want %d", p.Len(), MaxPending)
	}
	if _, _, _, ok := p.Get("b00"); ok {
		t.Error("the oldest board was not evicted")
	}
	if c := links[0].closes(); len(c) != 1 || !strings.HasPrefix(c[0], "1013 evicted") {
		t.Errorf("evicted link closes: %v", c)
	}
	for _, l := range links[1:] {
		if c := l.closes(); len(c) != 0 {
			t.Errorf("a kept link was closed: %v", c)
		}
	}
	if l := p.List(); l[0].ID != "b01" || l[len(l)-1].ID != fmt.Sprintf("b%02d", MaxPending) {
		t.Errorf("order: first %s, last %s", l[0].ID, l[len(l)-1].ID)
	}
}

func TestPendingDiscovered(t *testing.T) {
	clock := newFakeClock()
	taken := map[string]bool{"kitchen": true, "ws://10.0.0.9/ws": true}
	p := NewPending(PendingOptions{Taken: func(id, url string) bool { return taken[id] || taken[url] }})
	p.now = clock.Now
	defer p.Close()

	p.AddDiscovered("kitchen", "ws://10.0.0.8/ws", "10.0.0.8", nil)  // id taken
	p.AddDiscovered("other", "ws://10.0.0.9/ws", "10.0.0.9", nil)    // url taken
	p.AddDiscovered("Bad Id", "ws://10.0.0.10/ws", "10.0.0.10", nil) // not an id
	p.AddDiscovered("porch", "", "10.0.0.11", nil)                   // no URL
	if p.Len() != 0 {
		t.Fatalf("ignored boards listed: %+v", p.List())
	}
	p.AddDiscovered("porch", "ws://10.0.0.11/ws", "10.0.0.11", map[string]string{"fw": "1.2.0"})
	b, _, link, ok := p.Get("porch")
	if !ok || link != nil || b.Transport != TransportWSDial || b.URL != "ws://10.0.0.11/ws" || string(b.Info["fw"]) != `"1.2.0"` {
		t.Fatalf("discovered: %+v %v", b, ok)
	}
	// Seen again within the TTL: kept, first_seen unchanged.
	clock.Add(DiscoveredTTL - time.Second)
	p.AddDiscovered("porch", "ws://10.0.0.11/ws", "10.0.0.11", map[string]string{"fw": "1.2.0"})
	clock.Add(DiscoveredTTL - time.Second)
	if l := p.List(); len(l) != 1 || !l[0].FirstSeen.Equal(b.FirstSeen) {
		t.Fatalf("after re-seen: %+v", l)
	}
	// Not seen for longer than the TTL: gone.
	clock.Add(2 * time.Second)
	if l := p.List(); len(l) != 0 {
		t.Fatalf("expired board still listed: %+v", l)
	}
	// An enrolled board under an id wins over a discovered one.
	p.AddDiscovered("porch", "ws://10.0.0.11/ws", "10.0.0.11", nil)
	p.Enroll("porch", "10.0.0.11:4000", &fakePendingLink{})
	p.AddDiscovered("porch", "ws://10.0.0.11/ws", "10.0.0.11", nil)
	if b, _, link, _ := p.Get("porch"); link == nil || b.Transport != TransportWSListen {
		t.Errorf("enrolled board replaced by a discovered one: %+v", b)
	}
}

func TestPendingChangedCoalesced(t *testing.T) {
	got := make(chan int, 100)
	p := NewPending(PendingOptions{Changed: func(n int) { got <- n }})
	defer p.Close()
	e := p.Enroll("a", "x", &fakePendingLink{})
	select {
	case n := <-got:
		if n != 1 {
			t.Errorf("first notice: %d", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notice after the first change")
	}
	for i := 0; i < 50; i++ {
		p.Attrs(e, []Reading{pattr("rssi", fmt.Sprint(-i))})
	}
	p.Enroll("b", "y", &fakePendingLink{})
	select {
	case n := <-got:
		if n != 2 {
			t.Errorf("coalesced notice: %d, want 2", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no coalesced notice")
	}
	select {
	case n := <-got:
		t.Errorf("a burst gave more than one more notice (%d)", n)
	case <-time.After(PendingNotifyEvery + 200*time.Millisecond):
	}
}

func TestHubPendingMessage(t *testing.T) {
	h := newTestHub(t, Options{}, DeviceInfo{ID: "a"})
	s, _, err := h.Subscribe(-1, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetFilter([]string{"a"}, false) // a device filter still gets pending notices
	h.PendingChanged(3)
	select {
	case m := <-s.C:
		if m.Kind != KindPending || string(m.Data) != `{"type":"pending","count":3}` {
			t.Errorf("message: %v %s", m.Kind, m.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pending message")
	}
}

// A discovered board whose id or URL has become a device (a reload, an
// adoption) leaves the list: when it is seen again, and at once on Prune;
// an enrolled board under an id now configured is closed with a reason.
func TestPendingTakenLater(t *testing.T) {
	var mu sync.Mutex
	taken := map[string]bool{}
	p := NewPending(PendingOptions{Taken: func(id, url string) bool {
		mu.Lock()
		defer mu.Unlock()
		return taken[id] || taken[url]
	}})
	defer p.Close()
	take := func(k string) { mu.Lock(); taken[k] = true; mu.Unlock() }

	p.AddDiscovered("porch", "ws://10.0.0.11/ws", "10.0.0.11", nil)
	take("porch")
	p.AddDiscovered("porch", "ws://10.0.0.11/ws", "10.0.0.11", nil)
	if _, _, _, ok := p.Get("porch"); ok {
		t.Fatal("porch is a device now, but still listed after it was seen again")
	}

	p.AddDiscovered("shed", "ws://10.0.0.12/ws", "10.0.0.12", nil)
	p.AddDiscovered("roof", "ws://10.0.0.13/ws", "10.0.0.13", nil)
	garage, other := &fakePendingLink{}, &fakePendingLink{}
	p.Enroll("garage", "10.0.0.14:5000", garage)
	p.Enroll("other", "10.0.0.15:5000", other)
	take("ws://10.0.0.12/ws") // shed's URL is a device's
	take("garage")            // garage is configured
	p.Prune()
	var ids []string
	for _, b := range p.List() {
		ids = append(ids, b.ID)
	}
	if fmt.Sprint(ids) != "[roof other]" {
		t.Errorf("after Prune: %v, want [roof other]", ids)
	}
	if c := garage.closes(); len(c) != 1 || !strings.HasPrefix(c[0], "1008 device garage is configured") {
		t.Errorf("garage's link: %v, want one close 1008 with a reason", c)
	}
	if c := other.closes(); len(c) != 0 {
		t.Errorf("other's link closed: %v", c)
	}
}

// Discovered boards are evicted before enrolled ones, and a discovered
// board never evicts an enrolled board waiting on its connection.
func TestPendingEvictionDiscoveredFirst(t *testing.T) {
	p := NewPending(PendingOptions{})
	defer p.Close()
	links := map[string]*fakePendingLink{}
	enroll := func(id string) {
		links[id] = &fakePendingLink{}
		p.Enroll(id, "addr", links[id])
	}
	discover := func(id string) {
		p.AddDiscovered(id, "ws://"+id+"/ws", id, nil)
	}
	has := func(id string) bool { _, _, _, ok := p.Get(id); return ok }

	enroll("e00") // the oldest of all
	discover("d01")
	for i := 2; i < MaxPending-1; i++ {
		enroll(fmt.Sprintf("e%02d", i))
	}
	discover("d31")
	if p.Len() != MaxPending {
		t.Fatalf("%d pending, want %d", p.Len(), MaxPending)
	}
	discover("d32") // evicts d01, the oldest discovered, not e00
	if !has("e00") || has("d01") || !has("d32") || len(links["e00"].closes()) != 0 {
		t.Fatalf("a discovered board evicted an enrolled one (e00 %v, d01 %v, d32 %v, e00 closes %v)",
			has("e00"), has("d01"), has("d32"), links["e00"].closes())
	}
	enroll("e33") // evicts d31
	enroll("e34") // evicts d32
	if !has("e00") || has("d31") || has("d32") || p.Len() != MaxPending {
		t.Fatalf("enrolled boards evicted before discovered ones: e00 %v d31 %v d32 %v, %d pending", has("e00"), has("d31"), has("d32"), p.Len())
	}
	enroll("e35") // only enrolled boards: the oldest goes
	if has("e00") {
		t.Fatal("e00 not evicted")
	}
	if c := links["e00"].closes(); len(c) != 1 || !strings.HasPrefix(c[0], "1013 evicted") {
		t.Errorf("evicted link closes: %v", c)
	}
	discover("d36") // all enrolled: the discovered board is not listed
	if has("d36") || p.Len() != MaxPending {
		t.Errorf("d36 listed: %v, %d pending", has("d36"), p.Len())
	}
	for id, l := range links {
		if id != "e00" && len(l.closes()) != 0 {
			t.Errorf("%s closed: %v", id, l.closes())
		}
	}
}

// A discovered board that is not seen again expires on its own, and the
// new count is announced, without anyone listing.
func TestPendingExpiryAnnounced(t *testing.T) {
	got := make(chan int, 100)
	p := NewPending(PendingOptions{TTL: 300 * time.Millisecond, Changed: func(n int) { got <- n }})
	defer p.Close()
	p.AddDiscovered("porch", "ws://10.0.0.11/ws", "10.0.0.11", nil)
	deadline := time.After(5 * time.Second)
	for seen1 := false; ; {
		select {
		case n := <-got:
			if n == 1 {
				seen1 = true
			}
			if n == 0 && seen1 {
				if l := p.Len(); l != 0 {
					t.Errorf("announced 0 with %d pending", l)
				}
				return
			}
		case <-deadline:
			t.Fatalf("no notice with count 0 after the board expired (%d pending)", p.Len())
		}
	}
}
