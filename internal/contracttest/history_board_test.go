package contracttest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/testgw"
)

// histRFC is t as RFC 3339 with milliseconds, as a board might send it.
func histRFC(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// histWaitEvent waits until the recorder holds an event for device/label
// (from index from on) and returns it with its index.
func histWaitEvent(t testing.TB, rec *histRecorder, from int, device, label string) (histEvent, int) {
	t.Helper()
	var got histEvent
	idx := -1
	histPoll(t, 10*time.Second, func() string {
		_, _, evs := rec.seen()
		for i := from; i < len(evs); i++ {
			if evs[i].Device == device && evs[i].Label == label {
				got, idx = evs[i], i
				return ""
			}
		}
		return fmt.Sprintf("no event %s/%s reached the browser", device, label)
	})
	return got, idx
}

// TestHistoryBoardTimeAndBackfill: a board's older readings (seed and flat
// forms, unix ms and RFC 3339) are stored in time order but never broadcast
// and leave the last value alone; a ts 10 minutes ahead is replaced by the
// gateway's time and counted; a ts that is not a time still delivers the
// reading and keeps the link.
func TestHistoryBoardTimeAndBackfill(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gwbf", "")+`  - id: bf
    transport: ws-listen
    token: "bf-token-0123456789"
`)
	rec := histRecord(t, g)
	b := dialBoard(t, g, "bf", "bf-token-0123456789", true)
	waitOnline(t, g, "bf", true, 10*time.Second)

	b.send(t, `{"label":"t","value":10}`)
	b.send(t, `{"t":11}`)
	live, liveIdx := histWaitEvent(t, rec, 0, "bf", "t")
	if string(live.Value) != "10" {
		t.Fatalf("first live event %s, want t=10", live)
	}
	live, liveIdx = histWaitEvent(t, rec, liveIdx+1, "bf", "t")
	if string(live.Value) != "11" {
		t.Fatalf("second live event %s, want t=11", live)
	}
	liveTS := histParseTS(t, live.TS)

	now := time.Now()
	back := []struct {
		value int
		ts    time.Time
	}{{1, now.Add(-10 * time.Minute)}, {2, now.Add(-9 * time.Minute)}, {3, now.Add(-8 * time.Minute)}, {4, now.Add(-7 * time.Minute)}, {5, now.Add(-6 * time.Minute)}}
	// Sent out of order on purpose: the history keeps time order.
	b.send(t, fmt.Sprintf(`{"t":4,"ts":"%s"}`, histRFC(back[3].ts)))
	b.send(t, fmt.Sprintf(`{"label":"t","value":1,"ts":%d}`, back[0].ts.UnixMilli()))
	b.send(t, fmt.Sprintf(`[{"label":"t","value":2,"ts":%d},{"label":"t","value":3,"ts":"%s"}]`, back[1].ts.UnixMilli(), histRFC(back[2].ts)))
	b.send(t, fmt.Sprintf(`{"t":5,"ts":%d}`, back[4].ts.UnixMilli()))
	// A later live reading on another label: once the browser has it, the
	// backfill frames (sent before, on the same link) have been handled.
	b.send(t, `{"label":"mark","value":1}`)
	_, markIdx := histWaitEvent(t, rec, liveIdx+1, "bf", "mark")
	_, _, evs := rec.seen()
	for _, e := range evs[liveIdx+1 : markIdx] {
		t.Errorf("the browser received %s from the backfill: a backfill is stored, not broadcast", e)
	}

	t.Run("last value unchanged", func(t *testing.T) {
		l, _ := device(t, g, "bf")["labels"].(map[string]any)
		tl, _ := l["t"].(map[string]any)
		if tl == nil || tl["value"] != float64(11) || !histParseTS(t, str(tl, "ts")).Equal(liveTS) {
			t.Errorf("label t after the backfill: %v, want the live value 11 at %s", tl, live.TS)
		}
	})

	t.Run("ranged history holds the backfill in time order", func(t *testing.T) {
		want := []string{"1", "2", "3", "4", "5", "10", "11"}
		histPoll(t, 10*time.Second, func() string {
			h := histQuery(t, g, "bf", url.Values{"label": {"t"}, "from": {"-15m"}})
			var got []string
			for _, p := range h.Points {
				got = append(got, histCompact(p.Value))
			}
			if h.Resolution != "raw" || strings.Join(got, ",") != strings.Join(want, ",") {
				return fmt.Sprintf("history of t (resolution %s): %v, want %v", h.Resolution, got, want)
			}
			for i, bk := range back {
				if ts := histParseTS(t, h.Points[i].TS); ts.UnixMilli() != bk.ts.UnixMilli() {
					return fmt.Sprintf("backfill %d stored at %s, the board sent %s", bk.value, h.Points[i].TS, histRFC(bk.ts))
				}
			}
			return ""
		})
		histPoll(t, 5*time.Second, func() string {
			if n := histMetric(t, g, "esp32gw_backfilled_readings_total"); n != float64(len(back)) {
				return fmt.Sprintf("esp32gw_backfilled_readings_total %v, want %d", n, len(back))
			}
			return ""
		})
	})

	t.Run("ts 10 minutes ahead is stamped with the gateway's time and counted", func(t *testing.T) {
		from := len(evs)
		future := time.Now().Add(10 * time.Minute)
		b.send(t, fmt.Sprintf(`{"label":"f","value":7,"ts":%d}`, future.UnixMilli()))
		e, i := histWaitEvent(t, rec, from, "bf", "f")
		if ts := histParseTS(t, e.TS); time.Since(ts).Abs() > 5*time.Second {
			t.Errorf("event %s for a ts 10 min ahead: want the gateway's time (now)", e)
		}
		b.send(t, fmt.Sprintf(`{"f":8,"ts":"%s"}`, histRFC(future)))
		e, _ = histWaitEvent(t, rec, i+1, "bf", "f")
		if ts := histParseTS(t, e.TS); time.Since(ts).Abs() > 5*time.Second {
			t.Errorf("event %s for a flat ts 10 min ahead (RFC 3339): want the gateway's time (now)", e)
		}
		histPoll(t, 5*time.Second, func() string {
			if n := histMetric(t, g, "esp32gw_future_ts_total"); n != 2 {
				return fmt.Sprintf("esp32gw_future_ts_total %v after 2 readings 10 min ahead, want 2", n)
			}
			return ""
		})
		// Stored at the gateway's time too: inside a range that ends now.
		histPoll(t, 5*time.Second, func() string {
			h := histQuery(t, g, "bf", url.Values{"label": {"f"}, "from": {"-1m"}})
			if len(h.Points) != 2 {
				return fmt.Sprintf("history of f over the last minute: %d points, want 2 (stamped on arrival)", len(h.Points))
			}
			return ""
		})
	})

	t.Run("ts that is not a time: stamped now, link stays up", func(t *testing.T) {
		_, _, evs := rec.seen()
		from := len(evs)
		b.send(t, `{"label":"y","value":3,"ts":"yesterday"}`)
		e, i := histWaitEvent(t, rec, from, "bf", "y")
		if ts := histParseTS(t, e.TS); time.Since(ts).Abs() > 5*time.Second || string(e.Value) != "3" {
			t.Errorf("event %s for ts \"yesterday\": want value 3 stamped now", e)
		}
		b.send(t, `{"label":"after","value":1}`)
		histWaitEvent(t, rec, i+1, "bf", "after")
		if err, ended := b.r.Closed(0); ended {
			t.Errorf("the board link closed after a ts that is not a time: %v", err)
		}
		waitOnline(t, g, "bf", true, time.Second)
	})
}

// TestHistoryAvailabilityBoardRestart: a board connects, disconnects and
// reconnects; /availability shows online → offline (with a reason) →
// online (open).
func TestHistoryAvailabilityBoardRestart(t *testing.T) {
	t.Parallel()
	const token = "av-token-0123456789"
	g := testgw.Start(t, header("gwav", "")+`  - id: av
    transport: ws-listen
    token: "`+token+`"
`)
	b := dialBoard(t, g, "av", token, true)
	waitOnline(t, g, "av", true, 10*time.Second)
	b.send(t, `{"label":"x","value":1}`)
	b.wmu.Lock()
	b.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "board restarting"), time.Now().Add(time.Second))
	b.wmu.Unlock()
	b.c.Close()
	waitOnline(t, g, "av", false, 10*time.Second)
	b = dialBoard(t, g, "av", token, true)
	waitOnline(t, g, "av", true, 10*time.Second)

	type interval struct {
		From   string  `json:"from"`
		To     *string `json:"to"`
		Online bool    `json:"online"`
		Reason string  `json:"reason"`
	}
	var got struct {
		Device    string     `json:"device"`
		Intervals []interval `json:"intervals"`
	}
	var body []byte
	histPoll(t, 10*time.Second, func() string {
		var code int
		code, body = g.Get("/api/devices/av/availability?from=-1h")
		if code != 200 {
			return fmt.Sprintf("availability: %d %s", code, body)
		}
		got.Intervals = nil
		if err := json.Unmarshal(body, &got); err != nil {
			return fmt.Sprintf("availability not JSON: %v %s", err, body)
		}
		iv := got.Intervals
		if len(iv) < 3 {
			return fmt.Sprintf("availability %s: want at least online, offline, online", body)
		}
		iv = iv[len(iv)-3:]
		if !iv[0].Online || iv[0].To == nil || iv[1].Online || iv[1].To == nil || iv[1].Reason == "" || !iv[2].Online || iv[2].To != nil {
			return fmt.Sprintf("availability %s: want it to end online (closed), offline with a reason (closed), online (to null)", body)
		}
		return ""
	})
	t.Logf("availability: %s", body)
	if got.Device != "av" {
		t.Errorf("device %q, want av", got.Device)
	}
	iv := got.Intervals
	for i := range iv {
		if i > 0 && (iv[i-1].To == nil || *iv[i-1].To != iv[i].From) {
			t.Errorf("interval %d ends at %v, the next starts at %s: want them to meet", i-1, iv[i-1].To, iv[i].From)
		}
		if i > 0 && iv[i-1].Online == iv[i].Online {
			t.Errorf("intervals %d and %d are both online=%v: equal statuses are merged", i-1, i, iv[i].Online)
		}
		from := histParseTS(t, iv[i].From)
		if iv[i].To != nil && histParseTS(t, *iv[i].To).Before(from) {
			t.Errorf("interval %d ends before it starts: %+v", i, iv[i])
		}
	}
	if first := histParseTS(t, iv[0].From); time.Since(first) > time.Hour+time.Minute {
		t.Errorf("first interval starts at %s, before from=-1h", iv[0].From)
	}
	_ = b
}

// TestHistoryBackupWhileRunning: `esp32gw backup` copies the database while
// a board streams; the copy is intact and holds the readings; an existing
// target file is refused.
func TestHistoryBackupWhileRunning(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gwbak", "")+`  - id: climate
    transport: sim
    sim: {board: climate, interval: 20ms}
history:
  commit_interval: 1s
`)
	// Readings on disk (committed), while the board goes on streaming.
	histPoll(t, 20*time.Second, func() string {
		if n := histMetric(t, g, "esp32gw_history_readings_stored_total"); n < 100 {
			return fmt.Sprintf("esp32gw_history_readings_stored_total %v, want >= 100", n)
		}
		return ""
	})
	out := filepath.Join(t.TempDir(), "copy.db")
	cmd := exec.Command(testgw.Binary(t), "backup", "-config", g.Config, out)
	cmd.Dir = t.TempDir()
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("esp32gw backup while running: %v\n%s", err, msg)
	}
	t.Logf("backup: %s", strings.TrimSpace(string(msg)))
	if ic := histIntegrity(t, out); ic != "ok" {
		t.Fatalf("the backup's integrity_check: %q", ic)
	}

	// The copy is a history database a gateway can serve: start one on it.
	g2 := testgw.Start(t, header("gwbak2", "")+`  - id: climate
    transport: ws-listen
    token: "climate-token-0123456789"
`)
	g2.Kill()
	state := filepath.Join(g2.Dir, "data")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(state, "history.db"+suffix))
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "history.db"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	g2.Restart()
	copied := histExport(t, g2, url.Values{"device": {"climate"}})
	if len(copied) < 100 {
		t.Errorf("the backup holds %d readings of climate; at least 100 were stored before it", len(copied))
	}
	orig := map[string]bool{}
	for _, r := range histExport(t, g, url.Values{"device": {"climate"}}) {
		orig[r.Label+"|"+r.TS+"|"+histCompact(r.Value)] = true
	}
	for _, r := range copied {
		if !orig[r.Label+"|"+r.TS+"|"+histCompact(r.Value)] {
			t.Errorf("the backup holds %s %s=%s, which the running gateway's history does not", r.TS, r.Label, r.Value)
			break
		}
	}
	t.Logf("the backup holds %d readings", len(copied))

	t.Run("an existing file is refused", func(t *testing.T) {
		before, _ := os.ReadFile(out)
		cmd := exec.Command(testgw.Binary(t), "backup", "-config", g.Config, out)
		msg, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("backup onto an existing file exited 0: %s", msg)
		}
		s := strings.ToLower(string(msg))
		if !strings.Contains(s, "exist") || !strings.Contains(string(msg), filepath.Base(out)) {
			t.Errorf("backup onto an existing file: %q; want a message naming the file and saying it exists", msg)
		}
		if after, _ := os.ReadFile(out); string(after) != string(before) {
			t.Errorf("the refused backup changed the existing file")
		}
	})
}
