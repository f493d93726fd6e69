package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/testutil"
)

func TestSeqRisesByOnePerAcceptedReading(t *testing.T) {
	h := newTestHub(t, Options{}, DeviceInfo{ID: "a"}, DeviceInfo{ID: "b"})
	s, _ := mustSubscribe(t, h, -1, 1000)
	la := mustAttach(t, h, "a", nil)
	lb := mustAttach(t, h, "b", nil)

	la.Publish(r("temp", "21.5"), r("hum", "40"))
	lb.Publish(r("count", "1"))
	lb.Publish(r("", "1"), r("bad/label", "2")) // dropped: no seq
	la.Publish(r("temp", "21.6"))
	lb.Publish(r("count", "2"), r("x", "not json"), r("count", "3"))

	events := kinds(drain(s), KindEvent)
	want := []string{"a/temp", "a/hum", "b/count", "a/temp", "b/count", "b/count"}
	if len(events) != len(want) {
		t.Fatalf("got %d events, want %d", len(events), len(want))
	}
	for i, m := range events {
		if m.Seq != uint64(i+1) {
			t.Errorf("event %d: seq %d, want %d", i, m.Seq, i+1)
		}
		if got := m.Device + "/" + m.Label; got != want[i] {
			t.Errorf("event %d: %s, want %s", i, got, want[i])
		}
	}
	if got := h.Seq(); got != uint64(len(want)) {
		t.Errorf("Seq() = %d, want %d", got, len(want))
	}
	if got := h.Counters().EventsIn.Load(); got != uint64(len(want)) {
		t.Errorf("EventsIn = %d, want %d", got, len(want))
	}
	if got := h.Counters().DroppedReadings.Load(); got != 3 {
		t.Errorf("DroppedReadings = %d, want 3", got)
	}
}

func TestEventFrame(t *testing.T) {
	clock := newFakeClock()
	h := newTestHub(t, Options{Now: clock.Now}, DeviceInfo{ID: "kitchen"})
	s, _ := mustSubscribe(t, h, -1, 0)
	l := mustAttach(t, h, "kitchen", nil)
	l.Publish(r("temp", "21.50"), r("big", "12345678901234567890123"), r("obj", `{ "a" : [1, 2] }`))
	events := kinds(drain(s), KindEvent)
	if len(events) != 3 {
		t.Fatalf("got %d events, want 3", len(events))
	}
	tests := []struct {
		name string
		want string
	}{
		{"number kept as sent", `{"type":"event","device":"kitchen","label":"temp","value":21.50,"ts":"2026-11-23T10:00:00.123Z","seq":1}`},
		{"big integer kept", `{"type":"event","device":"kitchen","label":"big","value":12345678901234567890123,"ts":"2026-11-23T10:00:00.123Z","seq":2}`},
		{"object compacted", `{"type":"event","device":"kitchen","label":"obj","value":{"a":[1,2]},"ts":"2026-11-23T10:00:00.123Z","seq":3}`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(events[i].Data); got != tt.want {
				t.Errorf("frame\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestSnapshot(t *testing.T) {
	clock := newFakeClock()
	h := newTestHub(t, Options{GatewayID: "pi-garage", Now: clock.Now},
		DeviceInfo{ID: "kitchen", Name: "Kitchen", Transport: "ws-dial", Commands: []string{"toggle"}},
		DeviceInfo{ID: "bench", Transport: "serial"},
		DeviceInfo{ID: "never", Transport: "sim"},
	)
	lk := mustAttach(t, h, "kitchen", nil)
	lk.Publish(r("temp", "21.5"), r("led", `"LED ON"`))
	clock.Add(time.Second)
	lk.Publish(r("temp", "21.75"))
	lk.Detach("ping timeout")
	clock.Add(time.Second)
	lk = mustAttach(t, h, "kitchen", nil) // reconnect 1
	clock.Add(time.Second)
	mustAttach(t, h, "kitchen", nil) // replaces the live link: reconnect 2
	lb := mustAttach(t, h, "bench", nil)
	lb.Publish(r("count", "7"))
	lb.Detach("unplugged")
	lk.Publish(r("temp", "99")) // replaced link: ignored

	s, first := mustSubscribe(t, h, -1, 0)
	defer s.Close()
	if len(first) != 1 {
		t.Fatalf("Subscribe(-1) gave %d messages, want one snapshot", len(first))
	}
	f := decodeSnapshot(t, first[0])
	if f.Seq != 4 || f.Gateway != "pi-garage" {
		t.Errorf("snapshot seq %d gateway %q, want 4 pi-garage", f.Seq, f.Gateway)
	}
	if len(f.Devices) != 3 {
		t.Fatalf("snapshot has %d devices, want 3: %s", len(f.Devices), first[0].Data)
	}
	k, b, n := f.Devices[0], f.Devices[1], f.Devices[2]
	t.Run("kitchen", func(t *testing.T) {
		if k.ID != "kitchen" || k.Name != "Kitchen" || k.Gateway != "pi-garage" || k.Transport != "ws-dial" {
			t.Errorf("description: %+v", k)
		}
		if !k.Online || k.Reconnects != 2 {
			t.Errorf("online %v reconnects %d, want true 2", k.Online, k.Reconnects)
		}
		if k.LastSeen == nil || *k.LastSeen != "2026-11-23T10:00:03.123Z" {
			t.Errorf("last_seen %v, want the last attach 10:00:03.123Z", k.LastSeen)
		}
		if strings.Join(k.Commands, ",") != "toggle" {
			t.Errorf("commands %v", k.Commands)
		}
		temp := k.Labels["temp"]
		if string(temp.Value) != "21.75" || temp.Seq != 3 || temp.TS != "2026-11-23T10:00:01.123Z" {
			t.Errorf("labels.temp = %s seq %d ts %s, want 21.75 seq 3 at 10:00:01.123Z", temp.Value, temp.Seq, temp.TS)
		}
		if led := k.Labels["led"]; string(led.Value) != `"LED ON"` || led.Seq != 2 {
			t.Errorf("labels.led = %s seq %d", led.Value, led.Seq)
		}
	})
	t.Run("bench offline", func(t *testing.T) {
		if b.Online || b.Reconnects != 0 || b.Name != "bench" {
			t.Errorf("bench: %+v", b)
		}
		if string(b.Labels["count"].Value) != "7" {
			t.Errorf("offline device lost its last value: %+v", b.Labels)
		}
		st, err := h.DeviceState("bench")
		if err != nil || st.Reason != "unplugged" {
			t.Errorf("DeviceState(bench) reason %q err %v, want unplugged", st.Reason, err)
		}
	})
	t.Run("never attached", func(t *testing.T) {
		if n.Online || n.LastSeen != nil || n.Commands == nil || n.Labels == nil {
			t.Errorf("never: %+v (commands and labels must be [] and {}, last_seen null)", n)
		}
		if !strings.Contains(string(first[0].Data), `"commands":[]`) {
			t.Errorf("empty allow-list must encode as []: %s", first[0].Data)
		}
	})
	t.Run("Snapshot matches", func(t *testing.T) {
		seq, devs := h.Snapshot()
		if seq != 4 || len(devs) != 3 || devs[0].Reconnects != 2 || devs[0].Events != 3 {
			t.Errorf("Snapshot() = %d %+v", seq, devs)
		}
	})
	t.Run("unknown device", func(t *testing.T) {
		if _, err := h.DeviceState("nope"); !errors.Is(err, ErrUnknownDevice) {
			t.Errorf("DeviceState(nope) err %v, want ErrUnknownDevice", err)
		}
	})
}

// TestSubscribeSince checks resume against the ground truth: a subscriber
// that saw everything from the start. Whenever the hub replays instead of
// sending a snapshot, the replay must be exactly the events (and status
// changes) that followed event since.
func TestSubscribeSince(t *testing.T) {
	type step func(h *Hub, links map[string]Link)
	pub := func(dev string, n int) step {
		return func(h *Hub, links map[string]Link) {
			for i := 0; i < n; i++ {
				links[dev].Publish(r("v", fmt.Sprint(i)))
			}
		}
	}
	flap := func(dev string) step {
		return func(h *Hub, links map[string]Link) {
			links[dev].Detach("flap")
			links[dev], _ = h.Attach(dev, nopSend)
		}
	}
	repeat := func(n int, steps ...step) step {
		return func(h *Hub, links map[string]Link) {
			for i := 0; i < n; i++ {
				for _, s := range steps {
					s(h, links)
				}
			}
		}
	}
	tests := []struct {
		name string
		run  step
		// minReplay: every since >= Seq()-minReplay must replay (not
		// snapshot); -1: no since must.
		minReplay int
	}{
		{"few events", pub("a", 5), 5},
		{"status after the newest event", repeat(1, pub("a", 3), flap("b")), 3},
		{"status only", flap("b"), 0},
		{"event flood", pub("a", 5000), DefaultHistoryLen},
		{"flood of events and occasional flaps", repeat(300, pub("a", 9), flap("b")), DefaultHistoryLen},
		{"flapping board", repeat(3000, flap("b")), -1},
		{"flapping board then events", repeat(1, repeat(3000, flap("b")), pub("a", 10)), 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHub(t, Options{}, DeviceInfo{ID: "a"}, DeviceInfo{ID: "b"})
			truth, _ := mustSubscribe(t, h, -1, 1<<20)
			links := map[string]Link{"a": mustAttach(t, h, "a", nil), "b": mustAttach(t, h, "b", nil)}
			tt.run(h, links)
			var log []*Message // events and statuses in the order subscribers saw them
			for _, m := range drain(truth) {
				if m.Kind == KindEvent || m.Kind == KindStatus {
					log = append(log, m)
				}
			}
			seq := h.Seq()
			if truth.Err() != nil {
				t.Fatalf("ground-truth subscriber dropped: %v", truth.Err())
			}
			replays := 0
			for since := int64(-1); since <= int64(seq)+2; since++ {
				s, first, err := h.Subscribe(since, 0)
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				isSnap := len(first) == 1 && first[0].Kind == KindSnapshot
				mustReplay := tt.minReplay >= 0 && since >= 0 && since <= int64(seq) && since >= int64(seq)-int64(tt.minReplay)
				switch {
				case since < 0 || since > int64(seq):
					if !isSnap {
						t.Fatalf("since=%d (seq %d): want a snapshot, got %d messages", since, seq, len(first))
					}
					continue
				case isSnap && mustReplay:
					t.Fatalf("since=%d (seq %d): got a snapshot, want a replay (history must hold %d events)", since, seq, tt.minReplay)
				case isSnap:
					continue
				}
				replays++
				if f := decodeSnapshotSeq(first); f >= 0 {
					t.Fatalf("since=%d: replay holds a snapshot", since)
				}
				// Expected: everything after the event numbered since.
				start := 0
				if since > 0 {
					start = -1
					for i, m := range log {
						if m.Kind == KindEvent && m.Seq == uint64(since) {
							start = i + 1
						}
					}
					if start < 0 {
						t.Fatalf("since=%d: ground truth lacks that event", since)
					}
				}
				want := log[start:]
				if len(first) != len(want) {
					t.Fatalf("since=%d (seq %d): replay has %d messages, want %d (%d events, %d statuses)",
						since, seq, len(first), len(want), len(kinds(want, KindEvent)), len(kinds(want, KindStatus)))
				}
				for i := range want {
					if first[i] != want[i] {
						t.Fatalf("since=%d: replay[%d] = %s, want %s", since, i, first[i].Data, want[i].Data)
					}
				}
			}
			if tt.minReplay > 0 && replays == 0 {
				t.Fatal("no since value replayed")
			}
		})
	}
}

func decodeSnapshotSeq(ms []*Message) int64 {
	for _, m := range ms {
		if m.Kind == KindSnapshot {
			return int64(m.Seq)
		}
	}
	return -1
}

func TestSubscribeReplayThenLive(t *testing.T) {
	h := newTestHub(t, Options{}, DeviceInfo{ID: "a"})
	l := mustAttach(t, h, "a", nil)
	for i := 1; i <= 10; i++ {
		l.Publish(r("n", fmt.Sprint(i)))
	}
	s, first := mustSubscribe(t, h, 7, 0)
	l.Publish(r("n", "11"))
	got := append(first, drain(s)...)
	var seqs []uint64
	for _, m := range got {
		if m.Kind != KindEvent {
			t.Fatalf("unexpected %s", m.Data)
		}
		seqs = append(seqs, m.Seq)
	}
	if fmt.Sprint(seqs) != "[8 9 10 11]" {
		t.Errorf("since=7 then live: seqs %v, want [8 9 10 11]", seqs)
	}
}

func TestSubscriberFilter(t *testing.T) {
	tests := []struct {
		name    string
		devices []string
		logs    bool
		noSet   bool
		want    []string // device:kind of what arrives
	}{
		{"default: all devices, no logs", nil, false, true, []string{"a:event", "b:event", "a:status", "b:status"}},
		{"one device", []string{"a"}, false, false, []string{"a:event", "a:status"}},
		{"one device with logs", []string{"b"}, true, false, []string{"b:event", "b:log", "b:status"}},
		{"all devices with logs", nil, true, false, []string{"a:event", "b:event", "a:log", "b:log", "a:status", "b:status"}},
		{"unknown device only", []string{"zz"}, true, false, nil},
	}
	name := map[MessageKind]string{KindEvent: "event", KindStatus: "status", KindLog: "log", KindSnapshot: "snapshot"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHub(t, Options{}, DeviceInfo{ID: "a"}, DeviceInfo{ID: "b"})
			la, lb := mustAttach(t, h, "a", nil), mustAttach(t, h, "b", nil)
			s, _ := mustSubscribe(t, h, -1, 0)
			if !tt.noSet {
				s.SetFilter(tt.devices, tt.logs)
			}
			la.Publish(r("x", "1"))
			lb.Publish(r("x", "2"))
			la.Log("boot a")
			lb.Log("boot b")
			la.Detach("")
			lb.Detach("")
			var got []string
			for _, m := range drain(s) {
				got = append(got, m.Device+":"+name[m.Kind])
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			// Snapshots always pass a filter.
			if err := h.AddDevice(DeviceInfo{ID: "c"}); err != nil {
				t.Fatal(err)
			}
			if ms := drain(s); len(ms) != 1 || ms[0].Kind != KindSnapshot {
				t.Errorf("after AddDevice got %d messages, want one snapshot", len(ms))
			}
		})
	}
}

func TestLogLine(t *testing.T) {
	h := newTestHub(t, Options{}, DeviceInfo{ID: "a"})
	l := mustAttach(t, h, "a", nil)
	s, _ := mustSubscribe(t, h, -1, 0)
	s.SetFilter(nil, true)
	l.Log("bad \xff byte")
	l.Log(strings.Repeat("é", 3000)) // 6000 bytes
	ms := drain(s)
	if len(ms) != 2 {
		t.Fatalf("got %d messages", len(ms))
	}
	for _, m := range ms {
		var f struct{ Type, Device, Line string }
		if err := json.Unmarshal(m.Data, &f); err != nil || f.Type != "log" || f.Device != "a" {
			t.Errorf("log frame %s: %v", m.Data, err)
		}
		if m.Seq != 0 {
			t.Errorf("a log line took seq %d", m.Seq)
		}
	}
	if ms[0].Line != "bad \uFFFD byte" {
		t.Errorf("invalid UTF-8 line = %q", ms[0].Line)
	}
	if n := len(ms[1].Line); n > 4096 || n < 4090 {
		t.Errorf("long line kept %d bytes, want at most 4096", n)
	}
	if h.Seq() != 0 {
		t.Errorf("log lines moved seq to %d", h.Seq())
	}
}

func TestSlowConsumerIsDropped(t *testing.T) {
	h := newTestHub(t, Options{}, DeviceInfo{ID: "a"})
	l := mustAttach(t, h, "a", nil)
	slow, _ := mustSubscribe(t, h, -1, 8)
	fast, _ := mustSubscribe(t, h, -1, 16)

	const n = 5000
	var got []uint64
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case m := <-fast.C:
				got = append(got, m.Seq)
			case <-fast.Done():
				return
			}
		}
	}()
	// The publisher must never block on the slow subscriber. The fast one
	// has a small queue too, so pace the publisher on it (as a browser's
	// writer goroutine would keep up), never on the slow one.
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 1; i <= n; i++ {
			l.Publish(r("n", fmt.Sprint(i)))
			for len(fast.C) > 8 {
				runtime.Gosched()
			}
		}
	}()
	select {
	case <-published:
	case <-time.After(10 * time.Second):
		t.Fatal("publishing blocked")
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("a subscriber that never reads was not dropped")
	}
	if !errors.Is(slow.Err(), ErrSlowConsumer) {
		t.Errorf("slow.Err() = %v, want ErrSlowConsumer", slow.Err())
	}
	if got := len(slow.C); got != 8 {
		t.Errorf("slow queue holds %d, want its bound 8", got)
	}
	if c := h.Counters().SlowConsumers.Load(); c != 1 {
		t.Errorf("SlowConsumers = %d, want 1", c)
	}
	// The fast subscriber gets every event, in order.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if len(fast.C) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fast subscriber did not catch up")
		}
		runtime.Gosched()
	}
	fast.Close()
	<-readerDone
	if fast.Err() != nil {
		t.Errorf("fast subscriber ended with %v", fast.Err())
	}
	if len(got) != n {
		t.Fatalf("fast subscriber got %d events, want %d", len(got), n)
	}
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, s)
		}
	}
	if h.Subscribers() != 0 {
		t.Errorf("Subscribers() = %d after both ended", h.Subscribers())
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	testutil.CheckGoroutines(t)
	h := newTestHub(t, Options{}, DeviceInfo{ID: "a"})
	l := mustAttach(t, h, "a", nil)
	var wg sync.WaitGroup
	subs := make([]*Subscription, 5)
	for i := range subs {
		subs[i], _ = mustSubscribe(t, h, -1, 0)
		wg.Go(func() {
			for {
				select {
				case <-subs[i].C:
				case <-subs[i].Done():
					return
				}
			}
		})
	}
	l.Publish(r("x", "1"))
	h.Close()
	wg.Wait()
	for i, s := range subs {
		if !errors.Is(s.Err(), ErrShutdown) {
			t.Errorf("sub %d: Err() = %v, want ErrShutdown", i, s.Err())
		}
		s.Close() // safe after the hub closed it
	}
	if _, _, err := h.Subscribe(-1, 0); !errors.Is(err, ErrShutdown) {
		t.Errorf("Subscribe after Close: %v, want ErrShutdown", err)
	}
	if _, err := h.Attach("a", nopSend); !errors.Is(err, ErrShutdown) {
		t.Errorf("Attach after Close: %v, want ErrShutdown", err)
	}
	if h.Subscribers() != 0 {
		t.Errorf("Subscribers() = %d after Close", h.Subscribers())
	}
	l.Publish(r("x", "2")) // must not panic or block
}

func TestLabelValidation(t *testing.T) {
	tests := []struct {
		name  string
		label string
		value string
		ok    bool
	}{
		{"plain", "temp", "1", true},
		{"unicode", "température", "1", true},
		{"max length", strings.Repeat("a", MaxLabelLen), "1", true},
		{"spaces and dots", "Living room.temp", "1", true},
		{"empty", "", "1", false},
		{"too long", strings.Repeat("a", MaxLabelLen+1), "1", false},
		{"slash", "a/b", "1", false},
		{"plus", "a+b", "1", false},
		{"hash", "a#", "1", false},
		{"NUL", "a\x00b", "1", false},
		{"newline", "a\nb", "1", false},
		{"DEL", "a\x7f", "1", false},
		{"C1 control", "a\u0085b", "1", false},
		{"invalid UTF-8", "a\xffb", "1", false},
		{"truncated UTF-8", "caf\xc3", "1", false},
		{"value not JSON", "temp", "21,5", false},
		{"value empty", "temp", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHub(t, Options{}, DeviceInfo{ID: "a"})
			l := mustAttach(t, h, "a", nil)
			s, _ := mustSubscribe(t, h, -1, 0)
			l.Publish(r(tt.label, tt.value))
			events := kinds(drain(s), KindEvent)
			labels := h.Labels("a")
			dropped := h.Counters().DroppedReadings.Load()
			if tt.ok {
				if len(events) != 1 || len(labels) != 1 || dropped != 0 {
					t.Errorf("valid reading: %d events, labels %q, dropped %d", len(events), labels, dropped)
				}
				return
			}
			if len(events) != 0 || len(labels) != 0 || h.Seq() != 0 {
				t.Errorf("bad reading accepted: %d events, labels %q, seq %d", len(events), labels, h.Seq())
			}
			if dropped != 1 {
				t.Errorf("DroppedReadings = %d, want 1", dropped)
			}
		})
	}
}

func TestMaxLabelsPerDevice(t *testing.T) {
	h := newTestHub(t, Options{}, DeviceInfo{ID: "a"}, DeviceInfo{ID: "b"})
	la, lb := mustAttach(t, h, "a", nil), mustAttach(t, h, "b", nil)
	for i := 0; i < MaxLabelsPerDevice+44; i++ {
		la.Publish(r(fmt.Sprintf("k%d", i), "1"))
	}
	if n := len(h.Labels("a")); n != MaxLabelsPerDevice {
		t.Errorf("%d labels, want %d", n, MaxLabelsPerDevice)
	}
	if d := h.Counters().DroppedReadings.Load(); d != 44 {
		t.Errorf("DroppedReadings = %d, want 44", d)
	}
	seq := h.Seq()
	la.Publish(r("k0", "2"))  // a known label still updates
	lb.Publish(r("new", "1")) // another device is not affected
	if h.Seq() != seq+2 {
		t.Errorf("seq %d, want %d: known labels and other devices must still be accepted", h.Seq(), seq+2)
	}
	st, _ := h.DeviceState("a")
	if string(st.Labels["k0"].Value) != "2" {
		t.Errorf("k0 = %s, want 2", st.Labels["k0"].Value)
	}
}

func TestLinkAfterDetachOrReplacement(t *testing.T) {
	clock := newFakeClock()
	h := newTestHub(t, Options{Now: clock.Now}, DeviceInfo{ID: "a", Commands: []string{"toggle"}})
	s, _ := mustSubscribe(t, h, -1, 0)
	s.SetFilter(nil, true)

	t.Run("detached", func(t *testing.T) {
		l := mustAttach(t, h, "a", nil)
		l.Detach("bye")
		drain(s)
		seen := *mustState(t, h, "a").LastSeen
		clock.Add(time.Minute)
		l.Publish(r("x", "1"))
		l.Log("late")
		l.Seen()
		l.Detach("again")
		if ms := drain(s); len(ms) != 0 {
			t.Errorf("dead link produced %d messages: %s", len(ms), ms[0].Data)
		}
		st := mustState(t, h, "a")
		if *st.LastSeen != seen || st.Reason != "bye" || st.Online {
			t.Errorf("dead link changed state: last_seen %s reason %q online %v", *st.LastSeen, st.Reason, st.Online)
		}
	})
	t.Run("replaced", func(t *testing.T) {
		old := mustAttach(t, h, "a", nil)
		var got []string
		var mu sync.Mutex
		cur := mustAttach(t, h, "a", func(_ context.Context, c Command) error {
			mu.Lock()
			got = append(got, string(c.Value))
			mu.Unlock()
			return nil
		})
		drain(s)
		old.Publish(r("x", "1"))
		old.Log("late")
		old.Detach("old link closed") // must not take the device offline
		if ms := drain(s); len(ms) != 0 {
			t.Errorf("replaced link produced %d messages: %s", len(ms), ms[0].Data)
		}
		if !mustState(t, h, "a").Online {
			t.Fatal("detaching a replaced link took the device offline")
		}
		if err := h.Command(context.Background(), "a", Command{Value: json.RawMessage(`"toggle"`)}); err != nil {
			t.Fatalf("command after replacement: %v", err)
		}
		if fmt.Sprint(got) != `["toggle"]` {
			t.Errorf("new link's send got %v", got)
		}
		cur.Publish(r("x", "2"))
		if ev := kinds(drain(s), KindEvent); len(ev) != 1 || string(ev[0].Value) != "2" {
			t.Errorf("current link's reading not published")
		}
		cur.Detach("")
	})
	t.Run("removed device", func(t *testing.T) {
		l := mustAttach(t, h, "a", nil)
		h.RemoveDevice("a")
		drain(s)
		l.Publish(r("x", "3"))
		l.Detach("")
		if ms := drain(s); len(ms) != 0 {
			t.Errorf("link of a removed device produced %s", ms[0].Data)
		}
		if _, err := h.Attach("a", nopSend); !errors.Is(err, ErrUnknownDevice) {
			t.Errorf("Attach(removed) err %v", err)
		}
	})
}

func mustState(t *testing.T, h *Hub, id string) DeviceState {
	t.Helper()
	st, err := h.DeviceState(id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStatusMessages(t *testing.T) {
	h := newTestHub(t, Options{}, DeviceInfo{ID: "a"})
	s, _ := mustSubscribe(t, h, -1, 0)
	l := mustAttach(t, h, "a", nil)
	l.Detach("")
	ms := drain(s)
	want := []string{
		`{"type":"status","device":"a","online":true,"ts":"`,
		`{"type":"status","device":"a","online":false,"reason":"link closed","ts":"`,
	}
	if len(ms) != len(want) {
		t.Fatalf("got %d messages, want %d", len(ms), len(want))
	}
	for i, m := range ms {
		if !strings.HasPrefix(string(m.Data), want[i]) {
			t.Errorf("status %d = %s, want prefix %s", i, m.Data, want[i])
		}
	}
}

func TestAddDevice(t *testing.T) {
	tests := []struct {
		name    string
		infos   []DeviceInfo
		wantErr string
	}{
		{"valid", []DeviceInfo{{ID: "a-1_b"}}, ""},
		{"bad id", []DeviceInfo{{ID: "Kitchen"}}, "id must match"},
		{"empty id", []DeviceInfo{{ID: ""}}, "id must match"},
		{"local over remote", []DeviceInfo{{ID: "a", Remote: true}, {ID: "a"}}, "remote device with that id exists"},
		{"re-announce remote", []DeviceInfo{{ID: "a", Remote: true}, {ID: "a", Remote: true, Name: "New"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHub(Options{GatewayID: "gw"})
			var err error
			for _, d := range tt.infos {
				if err = h.AddDevice(d); err != nil {
					break
				}
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("err %v", err)
				}
				last := tt.infos[len(tt.infos)-1]
				info, ok := h.Device(last.ID)
				if !ok || info.Gateway != "gw" || (last.Name != "" && info.Name != last.Name) || (last.Name == "" && info.Name != last.ID) {
					t.Errorf("Device(%q) = %+v", last.ID, info)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestLinkSeenAndMalformed(t *testing.T) {
	clock := newFakeClock()
	h := newTestHub(t, Options{Now: clock.Now}, DeviceInfo{ID: "a"})
	l := mustAttach(t, h, "a", nil)
	clock.Add(5 * time.Second)
	l.Seen()
	if got := *mustState(t, h, "a").LastSeen; got != "2026-11-23T10:00:05.123Z" {
		t.Errorf("last_seen after a pong = %s", got)
	}
	tests := []struct {
		advance time.Duration
		want    bool
	}{{0, true}, {0, false}, {500 * time.Millisecond, false}, {500 * time.Millisecond, true}, {10 * time.Millisecond, false}}
	for i, tt := range tests {
		clock.Add(tt.advance)
		if got := l.Malformed(); got != tt.want {
			t.Errorf("Malformed() #%d = %v, want %v (log at most once a second)", i, got, tt.want)
		}
	}
	if n := h.Counters().Malformed.Load(); n != uint64(len(tests)) {
		t.Errorf("Malformed counter %d, want %d", n, len(tests))
	}
	if st := mustState(t, h, "a"); st.Malformed != uint64(len(tests)) {
		t.Errorf("device malformed count %d", st.Malformed)
	}
}

func TestMessagePreparedOnce(t *testing.T) {
	m := &Message{Data: []byte(`{"type":"event"}`)}
	var calls int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Go(func() {
			m.Prepared(func(b []byte) any {
				mu.Lock()
				calls++
				mu.Unlock()
				return string(b)
			})
		})
	}
	wg.Wait()
	if calls != 1 {
		t.Errorf("prepared %d times for 20 subscribers, want once", calls)
	}
	if got := m.Prepared(nil); got != `{"type":"event"}` {
		t.Errorf("Prepared = %v", got)
	}
}
