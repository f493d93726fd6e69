package contracttest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/testgw"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// limitsFrame is a board frame of exactly n bytes: an array of 14 readings
// big0…big13 whose JSON values are exactly valueBytes long (strings), then
// one reading "over" whose value is longer than valueBytes.
func limitsFrame(n, valueBytes int) string {
	var parts []string
	for i := 0; i < 14; i++ {
		parts = append(parts, fmt.Sprintf(`{"label":"big%d","value":"%s"}`, i, strings.Repeat("x", valueBytes-2)))
	}
	head := "[" + strings.Join(parts, ",") + `,{"label":"over","value":"`
	tail := `"}]`
	return head + strings.Repeat("y", n-len(head)-len(tail)) + tail
}

// frameOfSize is a valid board frame {"label":"big","value":"xxx…"} of exactly n bytes.
func frameOfSize(n int) string {
	pre, post := `{"label":"big","value":"`, `"}`
	return pre + strings.Repeat("x", n-len(pre)-len(post)) + post
}

func TestLimits(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gw1", "")+`  - id: lim
    transport: ws-listen
    token: "lim-token-0123456789"
    commands: [toggle]
  - id: spam
    transport: ws-listen
    token: "spam-token-0123456789"
`)

	t.Run("board frame of 64 KiB accepted, over 64 KiB closed with 1009 and a reason", func(t *testing.T) {
		_, br := browser(t, g, "/ws")
		br.NextMsg(t, 5*time.Second)
		b := dialBoard(t, g, "lim", "lim-token-0123456789", true)
		waitOnline(t, g, "lim", true, 5*time.Second)
		// A frame of exactly 64 KiB: readings whose values fit
		// limits.value_bytes (4096) arrive; one over it is dropped and
		// counted, and the link stays up.
		frame := limitsFrame(64*1024, 4096)
		b.send(t, frame)
		for i := 0; i < 14; i++ {
			label := fmt.Sprintf("big%d", i)
			ev := br.WaitFor(t, 5*time.Second, "the event of "+label, func(m msg) bool { return isEvent(m) && str(m, "device") == "lim" && str(m, "label") == label })
			if got := len(str(ev, "value")); got != 4096-2 {
				t.Errorf("%s: value of %d bytes, want %d", label, got, 4096-2)
			}
		}
		if code, body := g.Get("/metrics"); code != 200 || !strings.Contains(string(body), "esp32gw_dropped_readings_total 1\n") {
			t.Errorf("the reading over value_bytes is not counted as dropped once: %d %s", code, body)
		}
		b.send(t, frameOfSize(64*1024+1))
		err, ok := b.r.Closed(5 * time.Second)
		if !ok {
			t.Fatalf("a board frame of 64 KiB + 1 did not close the link")
		}
		code, reason := closeCode(err)
		if code != websocket.CloseMessageTooBig || reason == "" {
			t.Errorf("over-limit board frame: close %d %q (%v), want 1009 with a reason", code, reason, err)
		}
		st := br.WaitFor(t, 5*time.Second, "status lim offline", func(m msg) bool {
			return str(m, "type") == "status" && str(m, "device") == "lim" && m["online"] == false
		})
		if str(st, "reason") == "" {
			t.Errorf("no reason in %v", st)
		}
	})

	t.Run("binary and malformed board frames ignored, the link stays", func(t *testing.T) {
		_, br := browser(t, g, "/ws")
		br.NextMsg(t, 5*time.Second)
		b := dialBoard(t, g, "lim", "lim-token-0123456789", true)
		br.WaitFor(t, 5*time.Second, "status lim online", func(m msg) bool {
			return str(m, "type") == "status" && str(m, "device") == "lim" && m["online"] == true
		})
		b.wmu.Lock()
		b.c.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2, 3})
		b.wmu.Unlock()
		for _, f := range []string{`not json`, `{"label":`, `42`, `"str"`, `[1,2]`} {
			b.send(t, f)
		}
		b.send(t, `{"label":"ok","value":1}`)
		m := br.WaitFor(t, 5*time.Second, "an event or status of lim", func(m msg) bool {
			return str(m, "device") == "lim"
		})
		if !isEvent(m) || str(m, "label") != "ok" {
			t.Errorf("after binary/malformed frames the next lim frame is %v, want the event ok (link must stay up, nothing else emitted)", m)
		}
		if on, _ := device(t, g, "lim")["online"].(bool); !on {
			t.Errorf("lim offline after malformed frames")
		}
		b.c.Close()
		waitOnline(t, g, "lim", false, 5*time.Second)
	})

	t.Run("browser message of 16 KiB is read, over 16 KiB closed with 1009", func(t *testing.T) {
		c, r := browser(t, g, "/ws")
		r.NextMsg(t, 5*time.Second)
		pre := `{"type":"command","id":"big","device":"nosuch","label":"`
		post := `","value":"x"}`
		ok16 := pre + strings.Repeat("l", 16*1024-len(pre)-len(post)) + post
		c.WriteMessage(websocket.TextMessage, []byte(ok16))
		if a := r.WaitFor(t, 2*time.Second, "answer big", func(m msg) bool { return str(m, "id") == "big" }); str(a, "type") != "error" {
			t.Errorf("16 KiB command: %v", a)
		}
		c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat(" ", 16*1024+1)))
		err, closed := r.Closed(5 * time.Second)
		if !closed {
			t.Fatal("browser message of 16 KiB + 1 did not close the socket")
		}
		if code, reason := closeCode(err); code != websocket.CloseMessageTooBig || reason == "" {
			t.Errorf("over-limit browser message: close %d %q (%v), want 1009 with a reason", code, reason, err)
		}
	})

	t.Run("a browser that never reads is closed with 1008/1013; others unaffected", func(t *testing.T) {
		// The slow browser: a tiny receive buffer, and nobody reads it.
		d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				c.(*net.TCPConn).SetReadBuffer(4096)
			}
			return c, err
		}, ReadBufferSize: 1024}
		slow, resp, err := d.Dial(g.WSURL("/ws"), g.Header())
		if err != nil {
			t.Fatalf("slow browser: %v (HTTP %d)", err, status(resp))
		}
		defer slow.Close()
		_, fast := browser(t, g, "/ws")
		snap := fast.NextMsg(t, 5*time.Second)
		start := seqOf(snap)

		b := dialBoard(t, g, "spam", "spam-token-0123456789", true)
		waitOnline(t, g, "spam", true, 5*time.Second)
		// Each value just under limits.value_bytes (4096): 5.6 MB in all,
		// far more than a browser's socket buffers and queue hold.
		const frames, per = 200, 7
		val := strings.Repeat("v", 4000)
		done := make(chan error, 1)
		go func() {
			for i := 0; i < frames; i++ {
				var parts []string
				for j := 0; j < per; j++ {
					parts = append(parts, fmt.Sprintf(`{"label":"l%d","value":"%s"}`, j, val))
				}
				b.wmu.Lock()
				b.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				err := b.c.WriteMessage(websocket.TextMessage, []byte("["+strings.Join(parts, ",")+"]"))
				b.wmu.Unlock()
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		// Read the slow browser as soon as the gateway gives up on it: what
		// was buffered for it, then its close frame (the gateway waits
		// slowCloseWait for that, which must not run out while this test
		// is still checking the fast browser on a loaded machine).
		type slowEnd struct {
			n      int
			err    error
			ended  bool
			gaveUp bool
		}
		slowDone := make(chan slowEnd, 1)
		go func() {
			for deadline := time.Now().Add(30 * time.Second); !strings.Contains(g.Logs(), "browser too slow"); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					slowDone <- slowEnd{}
					return
				}
			}
			n, err, ended := testutil.NewWSReader(slow).Drain(15 * time.Second)
			slowDone <- slowEnd{n, err, ended, true}
		}()
		// The fast browser gets every event, in order, and stays open.
		s := start
		for s < start+frames*per {
			m := fast.WaitFor(t, 20*time.Second, "event", isEvent)
			if seqOf(m) != s+1 {
				t.Fatalf("fast browser: seq %d after %d", seqOf(m), s)
			}
			s = seqOf(m)
		}
		if err := <-done; err != nil {
			t.Fatalf("the board was slowed or cut off: %v", err)
		}
		// The slow one: after what was buffered, a close 1008/1013.
		se := <-slowDone
		if !se.gaveUp {
			t.Fatalf("the gateway never gave up on the browser that does not read (%d events sent)", frames*per)
		}
		n, srErr := se.n, se.err
		if !se.ended {
			var rel []string
			for _, l := range strings.Split(g.Logs(), "\n") {
				if strings.Contains(l, "browser") || strings.Contains(l, "slow") || strings.Contains(l, "1013") || strings.Contains(l, "1008") {
					rel = append(rel, l)
				}
			}
			t.Fatalf("the slow browser was neither closed nor served within 15 s of reading again (%d frames read; %d events sent); gateway log lines about browsers:\n%s", n, frames*per, strings.Join(rel, "\n"))
		}
		code, _ := closeCode(srErr)
		if code != websocket.ClosePolicyViolation && code != websocket.CloseTryAgainLater {
			t.Errorf("slow browser ended with %v after %d frames, want a close frame 1008 or 1013", srErr, n)
		}
		if n > frames*per {
			t.Errorf("slow browser got %d frames", n)
		}
		t.Logf("slow browser read %d frames before the close (%v)", n, srErr)
	})
}
