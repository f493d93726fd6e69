package gateway

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestAlive(t *testing.T) {
	h := newTestHub(t, Options{}, DeviceInfo{ID: "a"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := h.Alive(ctx); err != nil {
		t.Fatalf("Alive on an idle hub: %v", err)
	}

	// A hub whose lock is held (Stall) does not answer within the deadline,
	// and answers again once it is released.
	stalled := make(chan struct{})
	stall, release := context.WithCancel(context.Background())
	go func() { defer close(stalled); h.Stall(stall) }()
	for h.mu.TryLock() { // wait until Stall holds the lock
		h.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if err := h.Alive(short); err == nil {
		t.Fatal("Alive on a stalled hub: nil, want an error")
	}
	release()
	<-stalled
	if err := h.Alive(ctx); err != nil {
		t.Fatalf("Alive after the stall: %v", err)
	}
}

func TestBoards(t *testing.T) {
	h := newTestHub(t, Options{}, DeviceInfo{ID: "a"}, DeviceInfo{ID: "b"}, DeviceInfo{ID: "r", Remote: true})
	mustAttach(t, h, "a", nil)
	mustAttach(t, h, "r", nil)
	if on, total := h.Boards(); on != 1 || total != 2 {
		t.Errorf("Boards() = %d, %d; want 1 online of 2 (remote devices are not counted)", on, total)
	}
}

func TestApplyDevices(t *testing.T) {
	h := newTestHub(t, Options{}, DeviceInfo{ID: "keep"}, DeviceInfo{ID: "gone"}, DeviceInfo{ID: "ren", Name: "Old"})
	gone := mustAttach(t, h, "gone", nil)
	sub, _ := mustSubscribe(t, h, -1, 0)

	err := h.ApplyDevices([]string{"gone"}, []DeviceInfo{{ID: "keep"}, {ID: "ren", Name: "New"}, {ID: "new"}})
	if err != nil {
		t.Fatal(err)
	}
	got := drain(sub)
	if len(got) != 1 {
		t.Fatalf("%d messages after one ApplyDevices, want one snapshot", len(got))
	}
	f := decodeSnapshot(t, got[0])
	var ids, names []string
	for _, d := range f.Devices {
		ids = append(ids, d.ID)
		names = append(names, d.Name)
	}
	if want := "keep ren new"; strings.Join(ids, " ") != want || strings.Join(names, " ") != "keep New new" {
		t.Errorf("snapshot devices %v named %v, want %q named keep New new", ids, names, want)
	}
	gone.Publish(r("x", "1")) // a removed device's link is dead
	if m := drain(sub); len(m) != 0 {
		t.Errorf("a removed device's link still publishes: %d messages", len(m))
	}

	// Nothing changed: no snapshot.
	if err := h.ApplyDevices([]string{"gone"}, []DeviceInfo{{ID: "keep"}}); err != nil {
		t.Fatal(err)
	}
	if m := drain(sub); len(m) != 0 {
		t.Errorf("ApplyDevices without a change sent %d messages, want none", len(m))
	}
	if err := h.ApplyDevices(nil, []DeviceInfo{{ID: "Bad"}}); err == nil {
		t.Error("ApplyDevices with a bad id: nil error")
	}
}
