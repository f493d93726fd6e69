package contracttest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/testgw"
)

// TestHistory: a ws-listen board sends 3000 events quickly and stops; the
// history must still hold the last 1000, and an older since gets a snapshot.
func TestHistory(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gw1", "")+`  - id: spam
    transport: ws-listen
    token: "spam-token-0123456789"
`)
	b := dialBoard(t, g, "spam", "spam-token-0123456789", true)
	waitOnline(t, g, "spam", true, 5*time.Second)
	base := apiSeq(t, g)
	const total = 3000
	for i := 0; i < total/100; i++ {
		var parts []string
		for j := 0; j < 100; j++ {
			parts = append(parts, fmt.Sprintf(`{"label":"n","value":%d}`, i*100+j))
		}
		b.send(t, "["+strings.Join(parts, ",")+"]")
	}
	deadline := time.Now().Add(20 * time.Second)
	var n int64
	for {
		n = apiSeq(t, g)
		if n >= base+total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("seq reached %d, want %d after %d array elements (each is an event)", n, base+total, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n != base+total {
		t.Errorf("seq %d after %d events from seq %d: want exactly %d", n, total, base, base+total)
	}

	t.Run("since exactly 1000 back replays the last 1000 in order", func(t *testing.T) {
		since := n - 1000
		_, r := browser(t, g, fmt.Sprintf("/ws?since=%d", since))
		first := r.NextMsg(t, 10*time.Second)
		if str(first, "type") != "event" {
			t.Fatalf("?since=%d (1000 back): first frame %v, want the event %d; the history must hold at least 1000", since, first, since+1)
		}
		m := first
		for s := since + 1; ; s++ {
			if str(m, "type") != "event" || seqOf(m) != s {
				t.Fatalf("replay: got %v, want the event with seq %d", m, s)
			}
			if v, _ := num(m, "value"); int64(v) != s-base-1 {
				t.Fatalf("replay seq %d has value %v, want %d", s, m["value"], s-base-1)
			}
			if s == n {
				break
			}
			m = r.NextMsg(t, 10*time.Second)
		}
	})

	t.Run("since older than the history gets a snapshot that says where it stands", func(t *testing.T) {
		_, r := browser(t, g, "/ws?since=1")
		first := r.NextMsg(t, 10*time.Second)
		if str(first, "type") == "event" && seqOf(first) == 2 {
			t.Skip("the history still holds all 3000 events; 'too old' cannot be provoked")
		}
		if str(first, "type") != "snapshot" {
			t.Fatalf("?since=1 after %d events: first frame %v, want a snapshot", total, first)
		}
		if seqOf(first) != n {
			t.Errorf("snapshot seq %d, want the current seq %d", seqOf(first), n)
		}
		devs, _ := first["devices"].([]any)
		d := findDevice(devs, "spam")
		labels, _ := d["labels"].(map[string]any)
		if l, _ := labels["n"].(map[string]any); l == nil || int64(l["value"].(float64)) != total-1 || seqOf(l) != n {
			t.Errorf("snapshot label n = %v, want value %d seq %d", labels["n"], total-1, n)
		}
	})

	t.Run("api history for charts", func(t *testing.T) {
		code, body := g.Get("/api/devices/spam/history?label=n")
		if code != 200 {
			t.Fatalf("history: %d %s", code, body)
		}
		var m msg
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("history not JSON: %s", body)
		}
		if !strings.Contains(string(body), fmt.Sprint(total-1)) {
			t.Errorf("history lacks the latest value %d: %.300s", total-1, body)
		}
	})
}
