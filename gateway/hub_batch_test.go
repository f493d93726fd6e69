package gateway

import (
	"encoding/json"
	"fmt"
	"testing"
)

// A board frame with many readings (a flushed buffer of samples) must not
// get a browser that keeps up disconnected as "too slow".
func TestBigFrameDoesNotDropFastSubscriber(t *testing.T) {
	h := NewHub(Options{GatewayID: "t"})
	if err := h.AddDevice(DeviceInfo{ID: "b"}); err != nil {
		t.Fatal(err)
	}
	l, err := h.Attach("b", nopSend)
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := h.Subscribe(-1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs := make([]Reading, MaxReadingsPerFrame)
	for i := range rs {
		rs[i] = Reading{Label: fmt.Sprintf("s%d", i%100), Value: json.RawMessage(fmt.Sprint(i))}
	}
	l.Publish(rs...)
	if err := s.Err(); err != nil {
		t.Fatalf("a subscriber with an empty queue was dropped by one frame of %d readings: %v", len(rs), err)
	}
	if got := len(s.C); got != len(rs) {
		t.Fatalf("queued %d readings, want %d", got, len(rs))
	}
	// Now it is behind: the next message drops it.
	l.Publish(Reading{Label: "x", Value: json.RawMessage("1")})
	if err := s.Err(); err != ErrSlowConsumer {
		t.Fatalf("a subscriber with %d messages waiting was not dropped: %v", len(s.C), err)
	}
}

// Re-announcing an unchanged device says nothing; a change sends a snapshot
// and makes resumes from before it get a snapshot instead of a replay.
func TestDeviceChangesInvalidateResume(t *testing.T) {
	h := NewHub(Options{GatewayID: "t"})
	info := DeviceInfo{ID: "r", Gateway: "other", Remote: true, Commands: []string{"toggle"}}
	h.AddDevice(info)
	l, _ := h.Attach("r", nopSend)
	l.Publish(Reading{Label: "v", Value: json.RawMessage("1")})
	before := h.Seq()
	s, _, _ := h.Subscribe(-1, 0)
	defer s.Close()
	if err := h.AddDevice(info); err != nil {
		t.Fatal(err)
	}
	if len(s.C) != 0 {
		t.Fatalf("an unchanged re-announce sent %d messages", len(s.C))
	}
	if _, first, _ := h.Subscribe(int64(before), 0); len(first) != 0 {
		t.Fatalf("resume with nothing new: got %d messages, want none", len(first))
	}
	info.Commands = []string{"toggle", "on"}
	h.AddDevice(info)
	if m := <-s.C; m.Kind != KindSnapshot {
		t.Fatalf("a changed device sent %v, want a snapshot", m.Kind)
	}
	if _, first, _ := h.Subscribe(int64(before), 0); len(first) != 1 || first[0].Kind != KindSnapshot {
		t.Fatalf("resume from before a device change: got %d messages, want one snapshot", len(first))
	}
	h.RemoveDevice("r")
	if m := <-s.C; m.Kind != KindSnapshot {
		t.Fatalf("removing a device sent %v, want a snapshot", m.Kind)
	}
}
