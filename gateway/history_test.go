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

// historyRecorder is a History that keeps what the hub records.
type historyRecorder struct {
	mu       sync.Mutex
	records  []Record
	statuses []string
}

func (r *historyRecorder) Append(rs ...Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rs...)
}
func (r *historyRecorder) AppendStatus(device string, _ time.Time, online bool, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, fmt.Sprintf("%s %v %s", device, online, reason))
}
func (r *historyRecorder) Query(context.Context, HistoryQuery) (HistoryResult, error) {
	return HistoryResult{}, nil
}
func (r *historyRecorder) Recent(context.Context, string, string, int) ([]HistoryPoint, error) {
	return nil, nil
}
func (r *historyRecorder) Availability(context.Context, string, time.Time, time.Time) ([]Interval, error) {
	return nil, nil
}
func (r *historyRecorder) Export(context.Context, ExportFilter, func(Record) error) error { return nil }

func (r *historyRecorder) get() ([]Record, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.records...), append([]string(nil), r.statuses...)
}

func TestHistoryRecordsEveryReading(t *testing.T) {
	rec := &historyRecorder{}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	h := newTestHub(t, Options{History: rec, Now: func() time.Time { return now }}, DeviceInfo{ID: "a"})
	sub, _, err := h.Subscribe(-1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	l := mustAttach(t, h, "a", nil)
	board := now.Add(-time.Hour)
	l.Publish(
		Reading{Label: "temp", Value: json.RawMessage(`21.5`)},                              // stamped on arrival
		Reading{Label: "hum", Value: json.RawMessage(`40`), TS: board},                      // the board's own time
		Reading{Label: "temp", Value: json.RawMessage(`20`), TS: now.Add(-time.Minute)},     // older than temp's newest: backfill
		Reading{Label: "temp", Value: json.RawMessage(`22`), TS: now.Add(10 * time.Minute)}, // too far ahead: stamped now
	)
	l.Detach("gone")
	recs, sts := rec.get()
	want := []struct {
		label, value string
		ts           time.Time
		live         bool
	}{
		{"temp", "21.5", now, true},
		{"hum", "40", board, true},
		{"temp", "20", now.Add(-time.Minute), false},
		{"temp", "22", now, true},
	}
	if len(recs) != len(want) {
		t.Fatalf("recorded %d readings, want %d: %+v", len(recs), len(want), recs)
	}
	for i, w := range want {
		r := recs[i]
		if r.Device != "a" || r.Label != w.label || string(r.Value) != w.value || !r.TS.Equal(w.ts) || (r.Seq != 0) != w.live {
			t.Errorf("record %d = %+v, want %s=%s at %v (live %v)", i, r, w.label, w.value, w.ts, w.live)
		}
	}
	if got := fmt.Sprint(sts); got != "[a true  a false gone]" {
		t.Errorf("statuses %s", got)
	}
	if h.Counters().Backfilled.Load() != 1 || h.Counters().FutureTS.Load() != 1 {
		t.Errorf("backfilled %d, future %d; want 1 and 1", h.Counters().Backfilled.Load(), h.Counters().FutureTS.Load())
	}
	// Live: three events, never the backfill; the last value is the newest.
	var events []string
	for len(events) < 3 {
		select {
		case m := <-sub.C:
			if m.Kind == KindEvent {
				events = append(events, string(m.Data))
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("events so far %v", events)
		}
	}
	st, _ := h.DeviceState("a")
	if v := st.Labels["temp"]; string(v.Value) != "22" || v.TS != FormatTime(now) {
		t.Errorf("last temp %+v, want 22 at now", v)
	}
	if v := st.Labels["hum"]; v.TS != FormatTime(board) {
		t.Errorf("hum ts %s, want the board's %s", v.TS, FormatTime(board))
	}
}

func TestRestoreLast(t *testing.T) {
	h := newTestHub(t, Options{}, DeviceInfo{ID: "a"}, DeviceInfo{ID: "b"})
	ts := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	h.RestoreLast(map[string]map[string]Record{
		"a":    {"temp": {Device: "a", Label: "temp", TS: ts, Value: json.RawMessage(`21`), Seq: 40}, "led": {Device: "a", Label: "led", TS: ts, Value: json.RawMessage(`"on"`), Seq: 41}},
		"gone": {"x": {Device: "gone", Label: "x", TS: ts, Value: json.RawMessage(`1`), Seq: 99}},
	}, 10)
	if h.Seq() != 99 {
		t.Errorf("seq %d after restore, want the highest stored (99)", h.Seq())
	}
	st, _ := h.DeviceState("a")
	if v := st.Labels["temp"]; string(v.Value) != "21" || v.Seq != 40 || !v.Restored || v.Kind != KindNumber {
		t.Errorf("restored temp %+v", v)
	}
	if v := st.Labels["led"]; v.Kind != KindOnOff || !v.Restored {
		t.Errorf("restored led %+v", v)
	}
	if st.LastSeen == nil || *st.LastSeen != FormatTime(ts) {
		t.Errorf("last_seen %v", st.LastSeen)
	}
	// A live value replaces the restored one and is no longer marked.
	l := mustAttach(t, h, "a", nil)
	l.Publish(Reading{Label: "temp", Value: json.RawMessage(`22`)})
	st, _ = h.DeviceState("a")
	if v := st.Labels["temp"]; string(v.Value) != "22" || v.Restored || v.Seq != 100 {
		t.Errorf("live temp %+v, want 22, seq 100, not restored", v)
	}
	// A resume from before the restart gets a snapshot.
	_, first, err := h.Subscribe(50, 0)
	if err != nil || len(first) == 0 || first[0].Kind != KindSnapshot {
		t.Errorf("resume from before the restart: %v %v", first, err)
	}
}

func TestLimitsPerDevice(t *testing.T) {
	h := newTestHub(t, Options{LabelsPerDevice: 2, ValueBytes: 8}, DeviceInfo{ID: "a"})
	l := mustAttach(t, h, "a", nil)
	l.Publish(
		Reading{Label: "one", Value: json.RawMessage(`1`)},
		Reading{Label: "long", Value: json.RawMessage(`"123456789"`)}, // 11 bytes > 8
		Reading{Label: "two", Value: json.RawMessage(`2`)},
		Reading{Label: "three", Value: json.RawMessage(`3`)},       // a third label
		Reading{Label: "one", Value: json.RawMessage(`"1234567"`)}, // 9 bytes > 8
		Reading{Label: "one", Value: json.RawMessage(`"123456"`)},  // 8 bytes: fits
	)
	st, _ := h.DeviceState("a")
	if len(st.Labels) != 2 || string(st.Labels["one"].Value) != `"123456"` || st.Labels["two"].Value == nil {
		t.Errorf("labels %v", st.Labels)
	}
	if n := h.Counters().DroppedReadings.Load(); n != 3 {
		t.Errorf("dropped %d, want 3", n)
	}
}

func TestLastValuesBoundedInTotal(t *testing.T) {
	h := newTestHub(t, Options{LastValuesBytes: 100}, DeviceInfo{ID: "a"}, DeviceInfo{ID: "b"})
	la, lb := mustAttach(t, h, "a", nil), mustAttach(t, h, "b", nil)
	v := json.RawMessage(`"` + strings.Repeat("x", 38) + `"`) // 40 bytes
	la.Publish(Reading{Label: "one", Value: v}, Reading{Label: "two", Value: v})
	lb.Publish(Reading{Label: "three", Value: v}) // 120 > 100: dropped
	lb.Publish(Reading{Label: "small", Value: json.RawMessage(`1`)})
	la.Publish(Reading{Label: "one", Value: json.RawMessage(`2`)}) // shrinks: always taken
	lb.Publish(Reading{Label: "three", Value: v})                  // fits now
	sa, _ := h.DeviceState("a")
	sb, _ := h.DeviceState("b")
	if len(sa.Labels) != 2 || string(sa.Labels["one"].Value) != "2" || len(sb.Labels) != 2 || sb.Labels["three"].Value == nil {
		t.Errorf("a %v, b %v", sa.Labels, sb.Labels)
	}
	if n := h.Counters().DroppedReadings.Load(); n != 1 {
		t.Errorf("dropped %d, want 1", n)
	}
	// 82 bytes held: another 40 do not fit until b's 41 are freed.
	la.Publish(Reading{Label: "big", Value: v})
	if sa, _ = h.DeviceState("a"); len(sa.Labels) != 2 {
		t.Fatalf("a holds %v past the bound", sa.Labels)
	}
	h.RemoveDevice("b")
	la.Publish(Reading{Label: "big", Value: v})
	if sa, _ = h.DeviceState("a"); len(sa.Labels) != 3 {
		t.Errorf("after removing b, a holds %v; its bytes should be free again", sa.Labels)
	}
}
