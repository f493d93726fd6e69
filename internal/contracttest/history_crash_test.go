package contracttest

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/testgw"
)

// histRecorder is a /ws browser that keeps every frame it sees: the
// snapshot's seq and each event, until the connection ends.
type histRecorder struct {
	mu          sync.Mutex
	snapshotSeq int64
	snapshot    bool
	events      []histEvent
	done        chan struct{}
}

func histRecord(t testing.TB, g *testgw.Gateway) *histRecorder {
	t.Helper()
	c := g.Dial("/ws")
	r := &histRecorder{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			var e histEvent
			if json.Unmarshal(b, &e) != nil {
				continue
			}
			var s struct {
				Seq int64 `json:"seq"`
			}
			json.Unmarshal(b, &s)
			r.mu.Lock()
			switch e.Type {
			case "snapshot":
				r.snapshot, r.snapshotSeq = true, s.Seq
			case "event":
				r.events = append(r.events, e)
			}
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *histRecorder) seen() (bool, int64, []histEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshot, r.snapshotSeq, append([]histEvent(nil), r.events...)
}

// histStream plays a ws-listen board that sends {"cnt":i,"temp":x} every
// 10 ms until stop is closed or the link breaks.
func histStream(b *board, stop <-chan struct{}, rng *rand.Rand) <-chan struct{} {
	ended := make(chan struct{})
	temp := 20 + rng.Float64()*5
	go func() {
		defer close(ended)
		repeat(stop, 10*time.Millisecond, func(i int) bool {
			temp += (rng.Float64() - 0.5) * 0.2
			frame := fmt.Sprintf(`{"cnt":%d,"temp":%.2f}`, i, temp)
			b.wmu.Lock()
			b.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			err := b.c.WriteMessage(websocket.TextMessage, []byte(frame))
			b.wmu.Unlock()
			return err == nil
		})
	}()
	return ended
}

// TestHistoryCrashSafety kills the gateway with SIGKILL at random moments
// while a board streams, and checks after each kill that the database is
// intact, every reading older than commit_interval (plus slack) that a
// browser saw is in the history, the last values are at least as new as
// the history, and seq never goes back.
func TestHistoryCrashSafety(t *testing.T) {
	t.Parallel()
	const (
		commitInterval = time.Second
		slack          = time.Second // a loaded CI machine
		token          = "crash-token-0123456789"
	)
	cycles := 5
	if os.Getenv("CI") != "" {
		cycles = 20
	}
	g := testgw.Start(t, header("gwcrash", "")+`  - id: crash
    transport: ws-listen
    token: "`+token+`"
history:
  commit_interval: 1s
`)
	seed := time.Now().UnixNano()
	t.Logf("seed %d, %d kill cycles", seed, cycles)
	rng := rand.New(rand.NewSource(seed))
	dbPath := filepath.Join(g.Dir, "data", "history.db")
	var maxSeq int64 // the highest seq any browser saw before a kill
	start := time.Now()

	for cycle := 1; cycle <= cycles; cycle++ {
		rec := histRecord(t, g)
		b := dialBoard(t, g, "crash", token, true)
		stop := make(chan struct{})
		ended := histStream(b, stop, rand.New(rand.NewSource(rng.Int63())))

		// Streaming has started once the browser sees the board's first event.
		var first histEvent
		histPoll(t, 10*time.Second, func() string {
			_, _, evs := rec.seen()
			for _, e := range evs {
				if e.Device == "crash" {
					first = e
					return ""
				}
			}
			return "no event from the board reached the browser"
		})
		snap, snapSeq, _ := rec.seen()
		if !snap {
			t.Fatalf("cycle %d: events before a snapshot", cycle)
		}
		if snapSeq < maxSeq {
			t.Errorf("cycle %d: the snapshot after the restart has seq %d, before the kill a browser saw %d: seq went back", cycle, snapSeq, maxSeq)
		}
		if first.Seq <= maxSeq {
			t.Errorf("cycle %d: the first event after the restart has seq %d, before the kill a browser saw %d", cycle, first.Seq, maxSeq)
		}
		firstTS := histParseTS(t, first.TS)

		// The kill: a random moment up to a second (one commit_interval, so
		// any phase of the commits) after the stream holds readings the
		// contract covers (older than commit_interval + slack).
		<-time.After(commitInterval + slack + 100*time.Millisecond + time.Duration(rng.Int63n(int64(commitInterval))))
		killAt := time.Now()
		g.Kill()
		close(stop)
		<-ended
		select {
		case <-rec.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("cycle %d: the browser socket stayed open after SIGKILL", cycle)
		}
		_, _, evs := rec.seen()
		for _, e := range evs {
			maxSeq = max(maxSeq, e.Seq)
		}

		if _, err := os.Stat(dbPath); err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		if ic := histIntegrity(t, dbPath); ic != "ok" {
			t.Fatalf("cycle %d: PRAGMA integrity_check after SIGKILL: %q", cycle, ic)
		}

		g.Restart()

		// Before any board reconnects: the history and the last values.
		stored := map[string]bool{}
		newest := map[string]histRec{}
		atNewest := map[string]map[string]bool{} // values stored at each label's newest ts
		for _, r := range histExport(t, g, url.Values{"device": {"crash"}, "from": {histMs(firstTS)}}) {
			stored[r.Label+"|"+histMs(histParseTS(t, r.TS))+"|"+histCanon(r.Value)] = true
			n, ok := newest[r.Label]
			switch ts := histParseTS(t, r.TS); {
			case !ok || ts.After(histParseTS(t, n.TS)):
				newest[r.Label] = r
				atNewest[r.Label] = map[string]bool{histCanon(r.Value): true}
			case ts.Equal(histParseTS(t, n.TS)):
				// Readings that share the newest millisecond: any of
				// them may be the label's last value (the store keeps the
				// later arrival; export order within a millisecond is not
				// arrival order).
				atNewest[r.Label][histCanon(r.Value)] = true
			}
		}
		cutoff := killAt.Add(-commitInterval - slack)
		checked, seenDev := 0, 0
		var missing []string
		for _, e := range evs {
			if e.Device != "crash" {
				continue
			}
			seenDev++
			ts := histParseTS(t, e.TS)
			if !ts.Before(cutoff) {
				continue
			}
			checked++
			if !stored[e.Label+"|"+histMs(ts)+"|"+histCanon(e.Value)] {
				missing = append(missing, e.String())
			}
		}
		t.Logf("cycle %d: killed %v into the stream; browser saw %d readings, %d older than kill−%v−%v checked, %d stored since the stream began",
			cycle, killAt.Sub(firstTS).Round(time.Millisecond), seenDev, checked, commitInterval, slack, len(stored))
		if len(missing) > 0 {
			sort.Strings(missing)
			t.Errorf("cycle %d: %d of %d readings older than kill−%v−%v are missing from the history after the restart (killed at %s); first: %s",
				cycle, len(missing), checked, commitInterval, slack, killAt.UTC().Format(time.RFC3339Nano), strings.Join(missing[:min(5, len(missing))], ", "))
		}

		labels, _ := device(t, g, "crash")["labels"].(map[string]any)
		for label, n := range newest {
			l, _ := labels[label].(map[string]any)
			if l == nil {
				t.Errorf("cycle %d: label %s has no last value after the restart; the history's newest is %s=%s", cycle, label, n.TS, n.Value)
				continue
			}
			lts := histParseTS(t, str(l, "ts"))
			nts := histParseTS(t, n.TS)
			if lts.Before(nts) {
				t.Errorf("cycle %d: label %s last value %v@%s after the restart is older than the history's newest %s@%s", cycle, label, l["value"], str(l, "ts"), n.Value, n.TS)
			} else if lts.Equal(nts) {
				lv, _ := json.Marshal(l["value"])
				if !atNewest[label][histCanon(lv)] {
					t.Errorf("cycle %d: label %s last value %s is none of the history's readings at its newest ts %s (%v)", cycle, label, lv, n.TS, atNewest[label])
				}
			}
		}
	}

	// The seq after the last restart.
	rec := histRecord(t, g)
	b := dialBoard(t, g, "crash", token, true)
	b.send(t, `{"cnt":-1}`)
	var evs []histEvent
	histPoll(t, 10*time.Second, func() string {
		_, _, evs = rec.seen()
		if len(evs) == 0 {
			return "no event after the last restart"
		}
		return ""
	})
	if evs[0].Seq <= maxSeq {
		t.Errorf("the first event after the last restart has seq %d, before the kill a browser saw %d", evs[0].Seq, maxSeq)
	}
	t.Logf("%d kill cycles in %v", cycles, time.Since(start).Round(time.Millisecond))
}
