package gateway

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 23, 10, 0, 0, 123_000_000, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTestHub returns a hub with the given devices registered.
func newTestHub(t testing.TB, o Options, devs ...DeviceInfo) *Hub {
	t.Helper()
	if o.GatewayID == "" {
		o.GatewayID = "gw1"
	}
	h := NewHub(o)
	for _, d := range devs {
		if err := h.AddDevice(d); err != nil {
			t.Fatalf("AddDevice(%q): %v", d.ID, err)
		}
	}
	return h
}

// nopSend accepts every command at once.
func nopSend(context.Context, Command) error { return nil }

func mustAttach(t testing.TB, h *Hub, id string, send SendFunc) Link {
	t.Helper()
	if send == nil {
		send = nopSend
	}
	l, err := h.Attach(id, send)
	if err != nil {
		t.Fatalf("Attach(%q): %v", id, err)
	}
	return l
}

func mustSubscribe(t testing.TB, h *Hub, since int64, queueLen int) (*Subscription, []*Message) {
	t.Helper()
	s, first, err := h.Subscribe(since, queueLen)
	if err != nil {
		t.Fatalf("Subscribe(%d): %v", since, err)
	}
	t.Cleanup(s.Close)
	return s, first
}

// drain returns every message already queued for s. The hub delivers
// synchronously inside Publish/Attach/Detach, so nothing is in flight.
func drain(s *Subscription) []*Message {
	var out []*Message
	for {
		select {
		case m := <-s.C:
			out = append(out, m)
		default:
			return out
		}
	}
}

func kinds(ms []*Message, k MessageKind) []*Message {
	var out []*Message
	for _, m := range ms {
		if m.Kind == k {
			out = append(out, m)
		}
	}
	return out
}

func r(label, value string) Reading { return Reading{Label: label, Value: json.RawMessage(value)} }

// snapshotFrame is the /ws snapshot frame as a browser decodes it.
type snapshotFrame struct {
	Type    string `json:"type"`
	Seq     uint64 `json:"seq"`
	Gateway string `json:"gateway"`
	Devices []struct {
		ID         string   `json:"id"`
		Name       string   `json:"name"`
		Gateway    string   `json:"gateway"`
		Transport  string   `json:"transport"`
		Online     bool     `json:"online"`
		LastSeen   *string  `json:"last_seen"`
		Reconnects int      `json:"reconnects"`
		Commands   []string `json:"commands"`
		Labels     map[string]struct {
			Value json.RawMessage `json:"value"`
			TS    string          `json:"ts"`
			Seq   uint64          `json:"seq"`
		} `json:"labels"`
	} `json:"devices"`
}

func decodeSnapshot(t testing.TB, m *Message) snapshotFrame {
	t.Helper()
	if m.Kind != KindSnapshot {
		t.Fatalf("message kind %d, want snapshot: %s", m.Kind, m.Data)
	}
	var f snapshotFrame
	if err := json.Unmarshal(m.Data, &f); err != nil {
		t.Fatalf("snapshot frame is not JSON: %v\n%s", err, m.Data)
	}
	if f.Type != "snapshot" {
		t.Fatalf("snapshot type %q", f.Type)
	}
	return f
}
