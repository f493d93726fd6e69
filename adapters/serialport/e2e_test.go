package serialport

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/testgw"
)

// frame is a /ws server frame, as much as this test reads.
type frame struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Device  string          `json:"device"`
	Label   string          `json:"label"`
	Value   json.RawMessage `json:"value"`
	Line    string          `json:"line"`
	Online  bool            `json:"online"`
	Reason  string          `json:"reason"`
	Error   string          `json:"error"`
	Devices []struct {
		ID     string `json:"id"`
		Online bool   `json:"online"`
	} `json:"devices"`
}

// browser reads /ws frames until one matches, failing after timeout.
type browser struct {
	t    *testing.T
	c    *websocket.Conn
	seen []frame
}

func (b *browser) until(what string, timeout time.Duration, match func(f frame) bool) frame {
	b.t.Helper()
	b.c.SetReadDeadline(time.Now().Add(timeout))
	for {
		_, data, err := b.c.ReadMessage()
		if err != nil {
			b.t.Fatalf("waiting for %s: %v; seen %+v", what, err, b.seen)
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			b.t.Fatalf("bad frame %s: %v", data, err)
		}
		b.seen = append(b.seen, f)
		if match(f) {
			return f
		}
	}
}

func (b *browser) send(v any) {
	b.t.Helper()
	if err := b.c.WriteJSON(v); err != nil {
		b.t.Fatal(err)
	}
}

// TestBinaryPtyBoardToBrowser runs the real esp32gw binary with a serial
// device behind a by-id style symlink to a pty, and a browser on /ws.
func TestBinaryPtyBoardToBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	link := filepath.Join(t.TempDir(), "usb-Espressif_USB_JTAG_serial_debug_unit_F4:12:FA-if00")
	board := newBoard(t)
	if err := os.Symlink(board.slave, link); err != nil {
		t.Fatal(err)
	}
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
	ws := &browser{t: t, c: g.Dial("/ws")}
	snap := ws.until("snapshot", 10*time.Second, func(f frame) bool { return f.Type == "snapshot" })
	if len(snap.Devices) != 1 || snap.Devices[0].ID != "bench" {
		t.Fatalf("snapshot devices %+v", snap.Devices)
	}
	if !snap.Devices[0].Online {
		ws.until("bench online", 10*time.Second, func(f frame) bool { return f.Type == "status" && f.Device == "bench" && f.Online })
	}
	ws.send(map[string]any{"type": "subscribe", "id": "s1", "devices": []string{"bench"}, "logs": true})
	ws.until("subscribe ack", 5*time.Second, func(f frame) bool { return f.Type == "ack" && f.ID == "s1" })

	// Boot noise, then a reading: the console gets the banner, the event stream the reading.
	board.write(esp32Boot + "{\"label\":\"temp\",\"value\":21.5}\r\n")
	ev := ws.until("temp event", 5*time.Second, func(f frame) bool { return f.Type == "event" && f.Label == "temp" })
	if string(ev.Value) != "21.5" || ev.Device != "bench" {
		t.Errorf("event %+v", ev)
	}
	var logs []string
	for _, f := range ws.seen {
		switch f.Type {
		case "log":
			logs = append(logs, f.Line)
		case "event":
			if f.Label != "temp" {
				t.Errorf("boot noise became an event: %+v", f)
			}
		}
	}
	if !containsLine(logs, "ets Jun  8 2016 00:22:57") || !containsLine(logs, "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)") {
		t.Errorf("console lines %q lack the ROM banner", logs)
	}

	// A browser command reaches the board as one line, and is acked.
	ws.send(map[string]any{"type": "command", "id": "c1", "device": "bench", "label": "led", "value": "toggle"})
	ack := ws.until("command answer", 5*time.Second, func(f frame) bool { return f.ID == "c1" })
	if ack.Type != "ack" {
		t.Fatalf("command answered %+v", ack)
	}
	if line, ok := board.nextLine(2 * time.Second); !ok || line != "toggle" {
		t.Fatalf("board got %q (ok=%v), want toggle", line, ok)
	}

	// Unplug: offline within 1 s, with a reason.
	start := time.Now()
	board.unplug()
	defer func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.Logs())
		}
	}()
	st := ws.until("offline", 2*time.Second, func(f frame) bool { return f.Type == "status" && f.Device == "bench" && !f.Online })
	offline := time.Since(start)
	if offline > time.Second || st.Reason == "" {
		t.Errorf("offline after %v with reason %q; want within 1 s with a reason", offline, st.Reason)
	}
	ws.send(map[string]any{"type": "command", "id": "c2", "device": "bench", "value": "toggle"})
	if f := ws.until("offline command answer", 5*time.Second, func(f frame) bool { return f.ID == "c2" }); f.Type != "error" {
		t.Errorf("command to an unplugged board answered %+v, want an error", f)
	}

	// Replug behind the same name: back online, readings flow again.
	board = newBoard(t)
	tmp := link + ".new"
	if err := os.Symlink(board.slave, tmp); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	ws.until("online again", 3*time.Second, func(f frame) bool { return f.Type == "status" && f.Device == "bench" && f.Online })
	reopen := time.Since(start)
	board.write("{\"label\":\"temp\",\"value\":22}\n")
	ws.until("event after replug", 5*time.Second, func(f frame) bool {
		return f.Type == "event" && f.Label == "temp" && string(f.Value) == "22"
	})
	t.Logf("binary: offline %v after unplug, online %v after replug", offline.Round(time.Millisecond), reopen.Round(time.Millisecond))

	err, took := g.Stop()
	if err != nil || took > 5*time.Second {
		t.Errorf("SIGINT: exit %v after %v, want exit 0 within 5 s", err, took)
	}
	if logs := g.Logs(); !strings.Contains(logs, "serial port open") {
		t.Errorf("gateway log lacks the serial open line:\n%s", logs)
	}
}
