package contracttest

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/ptyboard"
	"github.com/esp32gw/esp32gw/internal/testgw"
)

// TestSerial plays a board on a pty: JSON lines are events, other lines
// console log frames (only for browsers that asked), commands arrive as lines.
func TestSerial(t *testing.T) {
	t.Parallel()
	master, slave, err := ptyboard.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	t.Cleanup(func() { master.Close(); slave.Close() })
	g := testgw.Start(t, header("gw1", "")+`  - id: bench
    transport: serial
    port: "`+slave.Name()+`"
    baud: 115200
    commands: [toggle]
`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if on, _ := device(t, g, "bench")["online"].(bool); on {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the serial board on %s did not come online:\n%s", slave.Name(), g.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(master)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	write := func(s string) {
		t.Helper()
		if _, err := master.WriteString(s + "\n"); err != nil {
			t.Fatal(err)
		}
	}

	cLogs, rLogs := browser(t, g, "/ws")
	rLogs.NextMsg(t, 5*time.Second)
	_, rPlain := browser(t, g, "/ws")
	rPlain.NextMsg(t, 5*time.Second)
	sendJSON(t, cLogs, map[string]any{"type": "subscribe", "logs": true})
	sendJSON(t, cLogs, map[string]any{"type": "command", "id": "bar", "device": "nosuch", "value": "x"})
	rLogs.WaitFor(t, 2*time.Second, "answer bar", func(m msg) bool { return str(m, "id") == "bar" })

	t.Run("JSON line → event; other line → log only to browsers that asked", func(t *testing.T) {
		write("ets Jun  8 2016 00:22:57 rst:0x1 (POWERON_RESET)")
		write(`{"label":"temp","value":21.5}`)
		lg := rLogs.WaitFor(t, 5*time.Second, "log frame", func(m msg) bool { return str(m, "type") == "log" })
		if str(lg, "device") != "bench" || str(lg, "line") != "ets Jun  8 2016 00:22:57 rst:0x1 (POWERON_RESET)" {
			t.Errorf("log frame %v", lg)
		}
		ev := rLogs.WaitFor(t, 5*time.Second, "event", isEvent)
		if str(ev, "label") != "temp" || ev["value"] != 21.5 {
			t.Errorf("event %v, want temp 21.5 (the log line must not be an event)", ev)
		}
		// The other browser: the event, and no log frame before it.
		m := rPlain.WaitFor(t, 5*time.Second, "log or event", func(m msg) bool { return str(m, "type") == "log" || isEvent(m) })
		if !isEvent(m) || str(m, "label") != "temp" {
			t.Errorf("a browser that did not subscribe to logs got %v", m)
		}
	})

	t.Run("command arrives as a line", func(t *testing.T) {
		code, body := g.Do("POST", "/api/devices/bench/command", []byte(`{"label":"led","value":"toggle"}`))
		if code != 200 {
			t.Fatalf("command: %d %s", code, body)
		}
		select {
		case l := <-lines:
			if strings.TrimRight(l, "\r") != "toggle" {
				t.Errorf("serial board received %q, want the line toggle", l)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("the serial board received no line")
		}
	})

	t.Run("a line over 4 KiB is dropped, the link stays", func(t *testing.T) {
		write(`{"label":"huge","value":"` + strings.Repeat("h", 5000) + `"}`)
		write(`{"label":"after","value":1}`)
		ev := rPlain.WaitFor(t, 5*time.Second, "event", func(m msg) bool { return isEvent(m) && str(m, "device") == "bench" })
		if str(ev, "label") != "after" {
			t.Errorf("after a 5000-byte line, the next event is %v, want after", ev)
		}
		if on, _ := device(t, g, "bench")["online"].(bool); !on {
			t.Errorf("bench offline after an over-long line")
		}
	})

	t.Run("unplug → status online:false with a reason", func(t *testing.T) {
		master.Close()
		slave.Close()
		defer func() {
			if t.Failed() {
				t.Logf("gateway log:\n%s", g.Logs())
			}
		}()
		st := rPlain.WaitFor(t, 5*time.Second, "status bench offline", func(m msg) bool {
			return str(m, "type") == "status" && str(m, "device") == "bench" && m["online"] == false
		})
		if str(st, "reason") == "" {
			t.Errorf("no reason: %v", st)
		}
	})
}
