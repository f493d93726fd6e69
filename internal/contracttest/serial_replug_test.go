package contracttest

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/ptyboard"
	"github.com/esp32gw/esp32gw/internal/testgw"
)

// TestSerialUnplugReplug runs the gateway with a serial device behind a
// by-id style symlink to a pty, and a browser on /ws: boot noise, a command,
// unplug, and a new board plugged in behind the same name.
func TestSerialUnplugReplug(t *testing.T) {
	t.Parallel()
	link := filepath.Join(t.TempDir(), "usb-Espressif_USB_JTAG_serial_debug_unit_F4:12:FA-if00")
	board := ptyboard.New(t)
	board.LinkAs(link)
	g := testgw.Start(t, fmt.Sprintf(`
http:
  listen: "127.0.0.1:0"
devices:
  - id: bench
    name: "Bench board"
    transport: serial
    port: %q
    commands: [toggle]
`, link))
	c, r := browser(t, g, "/ws")
	var seen []msg // every frame read, for the console check
	until := func(what string, within time.Duration, pred func(msg) bool) msg {
		t.Helper()
		return r.WaitFor(t, within, what, func(m msg) bool { seen = append(seen, m); return pred(m) })
	}
	snap := until("snapshot", 10*time.Second, func(m msg) bool { return str(m, "type") == "snapshot" })
	devs, _ := snap["devices"].([]any)
	bench := findDevice(devs, "bench")
	if len(devs) != 1 || bench == nil {
		t.Fatalf("snapshot devices %v", devs)
	}
	if on, _ := bench["online"].(bool); !on {
		until("bench online", 10*time.Second, statusIs("bench", true))
	}
	sendJSON(t, c, map[string]any{"type": "subscribe", "id": "s1", "devices": []string{"bench"}, "logs": true})
	until("subscribe ack", 5*time.Second, func(m msg) bool { return str(m, "type") == "ack" && str(m, "id") == "s1" })

	// Boot noise, then a reading: the console gets the banner, the event stream the reading.
	board.Write(ptyboard.ESP32Boot + "{\"label\":\"temp\",\"value\":21.5}\r\n")
	ev := until("temp event", 5*time.Second, func(m msg) bool { return isEvent(m) && str(m, "label") == "temp" })
	if ev["value"] != 21.5 || str(ev, "device") != "bench" {
		t.Errorf("event %v", ev)
	}
	var logs []string
	for _, m := range seen {
		switch str(m, "type") {
		case "log":
			logs = append(logs, str(m, "line"))
		case "event":
			if str(m, "label") != "temp" {
				t.Errorf("boot noise became an event: %v", m)
			}
		}
	}
	if !slices.Contains(logs, "ets Jun  8 2016 00:22:57") || !slices.Contains(logs, "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)") {
		t.Errorf("console lines %q lack the ROM banner", logs)
	}

	// A browser command reaches the board as one line, and is acked.
	sendJSON(t, c, map[string]any{"type": "command", "id": "c1", "device": "bench", "label": "led", "value": "toggle"})
	if ack := until("command answer", 5*time.Second, answerTo("c1")); str(ack, "type") != "ack" {
		t.Fatalf("command answered %v", ack)
	}
	if line, ok := board.NextLine(2 * time.Second); !ok || line != "toggle" {
		t.Fatalf("board got %q (ok=%v), want toggle", line, ok)
	}

	// Unplug: offline within 1 s, with a reason.
	start := time.Now()
	board.Unplug()
	defer func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.Logs())
		}
	}()
	st := until("offline", 2*time.Second, statusIs("bench", false))
	offline := time.Since(start)
	if offline > time.Second || str(st, "reason") == "" {
		t.Errorf("offline after %v with reason %q; want within 1 s with a reason", offline, str(st, "reason"))
	}
	sendJSON(t, c, map[string]any{"type": "command", "id": "c2", "device": "bench", "value": "toggle"})
	if f := until("offline command answer", 5*time.Second, answerTo("c2")); str(f, "type") != "error" {
		t.Errorf("command to an unplugged board answered %v, want an error", f)
	}

	// Replug behind the same name: back online, readings flow again.
	board = ptyboard.New(t)
	start = time.Now()
	board.LinkAs(link)
	until("online again", 3*time.Second, statusIs("bench", true))
	reopen := time.Since(start)
	board.Write("{\"label\":\"temp\",\"value\":22}\n")
	until("event after replug", 5*time.Second, eventIs("bench", "temp", "22"))
	t.Logf("binary: offline %v after unplug, online %v after replug", offline.Round(time.Millisecond), reopen.Round(time.Millisecond))

	err, took := g.Stop()
	if err != nil || took > 5*time.Second {
		t.Errorf("SIGINT: exit %v after %v, want exit 0 within 5 s", err, took)
	}
	if logs := g.Logs(); !strings.Contains(logs, "serial port open") {
		t.Errorf("gateway log lacks the serial open line:\n%s", logs)
	}
}
