package contracttest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/testgw"
)

// ptyBoard is a board on USB: the master side of a pty whose slave the
// gateway opens by path. unplug hangs the tty up, as pulling the cable does.
type ptyBoard struct {
	t      *testing.T
	master *os.File
	slave  *os.File
	lines  chan string   // lines the gateway wrote to the board
	done   chan struct{} // closed when the line reader has exited
}

func newPtyBoard(t *testing.T) *ptyBoard {
	t.Helper()
	m, s, err := openPty()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	// The slave stays open here too (the gateway opens it again by path):
	// reading a master whose slave has no open descriptor fails with EIO.
	b := &ptyBoard{t: t, master: m, slave: s, lines: make(chan string, 64), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		sc := bufio.NewScanner(m)
		for sc.Scan() { // ends with EIO when the master closes
			b.lines <- sc.Text()
		}
	}()
	t.Cleanup(b.unplug)
	return b
}

func (b *ptyBoard) write(s string) {
	b.t.Helper()
	if _, err := b.master.WriteString(s); err != nil {
		b.t.Fatalf("board write: %v", err)
	}
}

func (b *ptyBoard) unplug() {
	b.master.Close() // a second Close only errors
	b.slave.Close()
	<-b.done
}

// nextLine waits for the next line the gateway wrote to the board.
func (b *ptyBoard) nextLine(timeout time.Duration) (string, bool) {
	select {
	case l := <-b.lines:
		return l, true
	case <-time.After(timeout):
		return "", false
	}
}

// esp32Boot is what a classic ESP32 prints on power-on before the sketch's
// first line: ROM banner, 2nd-stage bootloader with ANSI colour, an Arduino
// core log line, and line noise.
var esp32Boot = strings.Join([]string{
	"\x00\xff\x00\xfe",
	"ets Jun  8 2016 00:22:57",
	"",
	"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
	"configsip: 0, SPIWP:0xee",
	"mode:DIO, clock div:1",
	"load:0x3fff0030,len:1184",
	"entry 0x400805e4",
	"\x1b[0;32mI (27) boot: ESP-IDF v5.1 2nd stage bootloader\x1b[0m",
	"[   1234][E][WiFiGeneric.cpp:1583] _eventCallback(): Reason: 2 - AUTH_EXPIRE",
	"bad utf-8: \xc3\x28 \xff end",
	"# debug: sensor warming up",
	"",
}, "\r\n")

// TestSerialUnplugReplug runs the gateway with a serial device behind a
// by-id style symlink to a pty, and a browser on /ws: boot noise, a command,
// unplug, and a new board plugged in behind the same name.
func TestSerialUnplugReplug(t *testing.T) {
	t.Parallel()
	link := filepath.Join(t.TempDir(), "usb-Espressif_USB_JTAG_serial_debug_unit_F4:12:FA-if00")
	board := newPtyBoard(t)
	if err := os.Symlink(board.slave.Name(), link); err != nil {
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
	board.write(esp32Boot + "{\"label\":\"temp\",\"value\":21.5}\r\n")
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
	board = newPtyBoard(t)
	tmp := link + ".new"
	if err := os.Symlink(board.slave.Name(), tmp); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	until("online again", 3*time.Second, statusIs("bench", true))
	reopen := time.Since(start)
	board.write("{\"label\":\"temp\",\"value\":22}\n")
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
