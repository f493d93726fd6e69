package serialport

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.bug.st/serial/enumerator"
	"golang.org/x/sys/unix"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// ptyBoard is a fake board: the master side of a real pty. The adapter
// opens the slave side by path, as it opens /dev/ttyUSB0.
type ptyBoard struct {
	t       *testing.T
	master  *os.File
	slaveFD *os.File
	slave   string        // /dev/pts/N
	lines   chan string   // lines the gateway wrote to the board
	done    chan struct{} // closed when the line reader has exited
}

func newBoard(t *testing.T) *ptyBoard {
	t.Helper()
	return openBoard(t, true)
}

// newBoardNoReader is a board that never reads what the gateway writes.
func newBoardNoReader(t *testing.T) *ptyBoard {
	t.Helper()
	return openBoard(t, false)
}

func openBoard(t *testing.T, read bool) *ptyBoard {
	t.Helper()
	ptmx, s, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	// creack/pty hands out a blocking master, whose Read Close cannot wake;
	// a non-blocking duplicate goes through the runtime poller instead.
	// Close-on-exec: a gateway process started by the test must not
	// inherit the master, or closing it here would not hang up the tty.
	fd, err := unix.FcntlInt(ptmx.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	ptmx.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	m := os.NewFile(uintptr(fd), "/dev/ptmx")
	b := &ptyBoard{t: t, master: m, slaveFD: s, slave: s.Name(), lines: make(chan string, 64), done: make(chan struct{})}
	// The slave stays open here too (the adapter opens it again by path):
	// reading a master whose slave has no open descriptor fails with EIO.
	if !read {
		close(b.done)
		t.Cleanup(b.unplug)
		return b
	}
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

// write sends bytes from the board to the gateway.
func (b *ptyBoard) write(s string) {
	b.t.Helper()
	if _, err := b.master.Write([]byte(s)); err != nil {
		b.t.Fatalf("board write: %v", err)
	}
}

// unplug closes the master, as pulling the USB cable hangs up the tty.
func (b *ptyBoard) unplug() {
	b.master.Close() // idempotent: a second Close just errors
	b.slaveFD.Close()
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

// gw is a real hub with the serial adapter running against it and one
// subscriber that asked for logs.
type gw struct {
	t      *testing.T
	hub    *gateway.Hub
	sub    *gateway.Subscription
	port   *Port
	logs   *testutil.SyncBuffer
	cancel context.CancelFunc
	done   chan error
	seen   []*gateway.Message
}

func serialConfig(port string) gateway.DeviceConfig {
	return gateway.DeviceConfig{ID: "bench", Transport: gateway.TransportSerial, Port: port,
		Baud: 115200, Commands: []string{"toggle", "on"}, CommandFormat: gateway.FormatText}
}

// startGW runs the adapter for cfg; prepare may adjust the Port before Run.
func startGW(t *testing.T, cfg gateway.DeviceConfig, prepare func(*Port)) *gw {
	t.Helper()
	checkLeaks(t)
	hub := gateway.NewHub(gateway.Options{GatewayID: "test"})
	if err := hub.AddDevice(gateway.DeviceInfo{ID: cfg.ID, Transport: cfg.Transport, Commands: cfg.Commands}); err != nil {
		t.Fatal(err)
	}
	sub, _, err := hub.Subscribe(-1, 8192)
	if err != nil {
		t.Fatal(err)
	}
	sub.SetFilter(nil, true)
	logs := &testutil.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := New(cfg, log)
	if prepare != nil {
		prepare(p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &gw{t: t, hub: hub, sub: sub, port: p, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { g.done <- p.Run(ctx, hub) }()
	t.Cleanup(g.stop)
	return g
}

// stop cancels Run and waits for it: Run must return promptly.
func (g *gw) stop() {
	g.cancel()
	select {
	case err := <-g.done:
		if err != nil {
			g.t.Errorf("Run: %v", err)
		}
		g.done <- nil // later stops return at once
	case <-time.After(3 * time.Second):
		g.t.Fatalf("Run did not return within 3 s of cancel\n%s", g.logs.String())
	}
	g.sub.Close()
	g.hub.Close()
}

// waitFor returns the first message (after those already seen) for which
// match is true, failing the test after timeout.
func (g *gw) waitFor(what string, timeout time.Duration, match func(m *gateway.Message) bool) *gateway.Message {
	g.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case m := <-g.sub.C:
			g.seen = append(g.seen, m)
			if match(m) {
				return m
			}
		case <-g.sub.Done():
			g.t.Fatalf("subscription ended: %v", g.sub.Err())
		case <-deadline.C:
			var seen []string
			for _, m := range g.seen {
				seen = append(seen, string(m.Data))
			}
			g.t.Fatalf("no %s within %v; seen:\n%s\nlogs:\n%s", what, timeout, strings.Join(seen, "\n"), g.logs.String())
		}
	}
}

func (g *gw) waitStatus(online bool, timeout time.Duration) *gateway.Message {
	g.t.Helper()
	return g.waitFor(fmt.Sprintf("status online=%v", online), timeout, func(m *gateway.Message) bool {
		return m.Kind == gateway.KindStatus && m.Online == online
	})
}

func (g *gw) waitEvent(label, value string, timeout time.Duration) *gateway.Message {
	g.t.Helper()
	return g.waitFor("event "+label+"="+value, timeout, func(m *gateway.Message) bool {
		return m.Kind == gateway.KindEvent && m.Label == label && string(m.Value) == value
	})
}

// kinds returns the seen messages of one kind.
func (g *gw) kinds(k gateway.MessageKind) []*gateway.Message {
	var out []*gateway.Message
	for _, m := range g.seen {
		if m.Kind == k {
			out = append(out, m)
		}
	}
	return out
}

// checkLeaks fails the test when goroutines or open descriptors outlive it.
// It registers first so it runs after every other cleanup.
func checkLeaks(t *testing.T) {
	t.Helper()
	testutil.CheckGoroutines(t)
	fds := countFDs()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for {
			f := countFDs()
			if f <= fds {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("leak: open descriptors %d -> %d", fds, f)
				return
			}
			time.Sleep(10 * time.Millisecond) // polling for teardown, bounded by the deadline
		}
	})
}

func countFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(entries)
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

func TestBootNoiseThenJSON(t *testing.T) {
	b := newBoard(t)
	g := startGW(t, serialConfig(b.slave), nil)
	g.waitStatus(true, 5*time.Second)

	b.write(esp32Boot)
	b.write("{\"label\":\"temp\",\"value\":21.5}\r\n")
	b.write("{\"hum\":40,\"ok\":true}\r\n")
	b.write("[{\"label\":\"led\",\"value\":\"on\"},{\"label\":\"relay1\",\"value\":\"off\"}]\r\n")
	b.write("{\"label\":\"done\",\"value\":1}\r\n")
	g.waitEvent("done", "1", 5*time.Second)

	var got []string
	for _, m := range g.kinds(gateway.KindEvent) {
		got = append(got, m.Label+"="+string(m.Value))
	}
	want := []string{"temp=21.5", "hum=40", "ok=true", "led=\"on\"", "relay1=\"off\"", "done=1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("events = %v, want exactly the JSON readings %v", got, want)
	}
	var logs []string
	for _, m := range g.kinds(gateway.KindLog) {
		logs = append(logs, m.Line)
	}
	all := strings.Join(logs, "\n")
	for _, want := range []string{
		"ets Jun  8 2016 00:22:57",
		"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
		"I (27) boot: ESP-IDF v5.1 2nd stage bootloader", // ANSI colour stripped
		"[   1234][E][WiFiGeneric.cpp:1583] _eventCallback(): Reason: 2 - AUTH_EXPIRE",
		"bad utf-8: \uFFFD( \uFFFD end",
		"# debug: sensor warming up",
	} {
		if !containsLine(logs, want) {
			t.Errorf("console lacks %q; got:\n%s", want, all)
		}
	}
	for _, l := range logs {
		if l == "" || strings.ContainsAny(l, "\x00\x1b\r") {
			t.Errorf("console line %q is empty or holds control bytes", l)
		}
		if !json.Valid([]byte(fmt.Sprintf("%q", l))) {
			t.Errorf("console line %q is not valid text", l)
		}
	}
	if st, _ := g.hub.DeviceState("bench"); !st.Online || st.Events != 6 {
		t.Errorf("device state online=%v events=%d, want online with 6 events", st.Online, st.Events)
	}
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func TestFramingSurvivesJunk(t *testing.T) {
	b := newBoard(t)
	g := startGW(t, serialConfig(b.slave), nil)
	g.waitStatus(true, 5*time.Second)

	// A board stuck printing 100 KiB without a newline, then a valid line.
	b.write(strings.Repeat("A", 100<<10))
	b.write("\n{\"label\":\"after_long\",\"value\":1}\n")
	g.waitEvent("after_long", "1", 5*time.Second)
	// Binary junk (no newline inside), then \r\n endings.
	junk := make([]byte, 512)
	for i := range junk {
		junk[i] = byte(i*7+3) | 0x80
	}
	b.write(string(junk) + "\r\n{\"label\":\"crlf\",\"value\":2}\r\n")
	g.waitEvent("crlf", "2", 5*time.Second)
	// One line written byte by byte: the reader sees it split across reads.
	line := "{\"label\":\"split\",\"value\":\"a b\"}\r\n"
	for i := range len(line) {
		b.write(line[i : i+1])
	}
	g.waitEvent("split", `"a b"`, 5*time.Second)
	// A line of exactly 4 KiB plus \r\n is kept; one byte more is dropped.
	pad := func(n int) string {
		head := `{"label":"exact","value":"`
		return head + strings.Repeat("x", n-len(head)-2) + `"}`
	}
	b.write(pad(MaxLineLen+1) + "\r\n" + pad(MaxLineLen) + "\r\n{\"label\":\"end\",\"value\":3}\n")
	g.waitEvent("end", "3", 5*time.Second)

	var exact int
	for _, m := range g.kinds(gateway.KindEvent) {
		if m.Label == "exact" {
			exact++
		}
	}
	if exact != 1 {
		t.Errorf("got %d events from the 4 KiB lines, want 1 (the 4097-byte line dropped)", exact)
	}
	st, _ := g.hub.DeviceState("bench")
	if st.Malformed != 2 {
		t.Errorf("malformed = %d, want 2 (the 100 KiB line and the 4097-byte line)", st.Malformed)
	}
	if !st.Online {
		t.Error("device went offline on junk")
	}
}

func TestCommandArrivesAsOneLine(t *testing.T) {
	for _, tc := range []struct {
		format string
		cmd    gateway.Command
		want   string
	}{
		{gateway.FormatText, gateway.Command{Label: "led", Value: json.RawMessage(`"toggle"`)}, "toggle"},
		{gateway.FormatJSON, gateway.Command{Label: "led", Value: json.RawMessage(`"toggle"`)}, `{"label":"led","value":"toggle"}`},
	} {
		t.Run(tc.format, func(t *testing.T) {
			b := newBoard(t)
			cfg := serialConfig(b.slave)
			cfg.CommandFormat = tc.format
			g := startGW(t, cfg, nil)
			g.waitStatus(true, 5*time.Second)
			for i := range 3 {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				err := g.hub.Command(ctx, "bench", tc.cmd)
				cancel()
				if err != nil {
					t.Fatalf("command %d: %v", i, err)
				}
				// The ack means written: the line is already on the wire.
				line, ok := b.nextLine(2 * time.Second)
				if !ok || line != tc.want {
					t.Fatalf("board got %q (ok=%v), want %q", line, ok, tc.want)
				}
			}
			// A board that is unplugged gets no command: the answer is offline.
			b.unplug()
			g.waitStatus(false, time.Second)
			err := g.hub.Command(context.Background(), "bench", tc.cmd)
			if !errors.Is(err, gateway.ErrOffline) {
				t.Errorf("command after unplug: %v, want ErrOffline", err)
			}
		})
	}
}

func TestBoardNotReadingTimesOut(t *testing.T) {
	b := newBoardNoReader(t) // a sketch that never reads Serial
	cfg := serialConfig(b.slave)
	long := strings.Repeat("x", 1000)
	cfg.Commands = []string{long}
	g := startGW(t, cfg, nil)
	g.waitStatus(true, 5*time.Second)
	cmd := gateway.Command{Value: json.RawMessage(`"` + long + `"`)}
	var err error
	written := 0
	for range 40 { // within the hub's burst; a pty buffers about 18 KiB
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = g.hub.Command(ctx, "bench", cmd)
		cancel()
		if err != nil {
			took := time.Since(start)
			t.Logf("after %d KiB the write timed out in %v: %v", written, took.Round(time.Millisecond), err)
			if took > 2*time.Second {
				t.Errorf("the answer took %v; the contract promises one within 2 s", took)
			}
			break
		}
		written++
	}
	if !errors.Is(err, gateway.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout once the board stops reading", err)
	}
	// The link stays up: the board still talks.
	b.write("{\"label\":\"alive\",\"value\":1}\n")
	g.waitEvent("alive", "1", 2*time.Second)
	// Run must still return promptly (checked by stop) with a full buffer.
}

func TestUnplugReplugBehindSymlink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "usb-Silicon_Labs_CP2102-if00-port0") // as in /dev/serial/by-id
	b := newBoard(t)
	if err := os.Symlink(b.slave, link); err != nil {
		t.Fatal(err)
	}
	g := startGW(t, serialConfig(link), nil)
	g.waitStatus(true, 5*time.Second)
	b.write("{\"label\":\"n\",\"value\":0}\n")
	g.waitEvent("n", "0", 5*time.Second)

	var offline, reopen []time.Duration
	for round := 1; round <= 3; round++ {
		start := time.Now()
		b.unplug()
		st := g.waitStatus(false, time.Second) // contract: offline within 1 s
		offline = append(offline, time.Since(start))
		if !strings.Contains(st.Reason, "lost") {
			t.Errorf("offline reason %q does not say the port was lost", st.Reason)
		}

		// A new pty behind the same stable name, as udev re-creates the
		// by-id link when the board comes back.
		b = newBoard(t)
		tmp := link + ".new"
		if err := os.Symlink(b.slave, tmp); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
		g.waitStatus(true, 2*time.Second)
		reopen = append(reopen, time.Since(start))
		v := fmt.Sprint(round)
		b.write("{\"label\":\"n\",\"value\":" + v + "}\n")
		g.waitEvent("n", v, 5*time.Second)
	}
	t.Logf("offline detection after unplug: %v; re-open after replug: %v", offline, reopen)
	if n := strings.Count(g.logs.String(), "no modem control lines"); n != 1 {
		t.Errorf("modem-lines warning logged %d times over 4 opens, want once", n)
	}
	if st, _ := g.hub.DeviceState("bench"); st.Reconnects != 3 {
		t.Errorf("reconnects = %d, want 3", st.Reconnects)
	}
}

func TestMissingPortWaitsAndReportsOnce(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "ttyBOARD")
	g := startGW(t, serialConfig(link), nil)
	g.waitFor("offline reason", 3*time.Second, func(m *gateway.Message) bool {
		return m.Kind == gateway.KindStatus && !m.Online && strings.Contains(m.Reason, "not found")
	})
	b := newBoard(t)
	start := time.Now()
	if err := os.Symlink(b.slave, link); err != nil {
		t.Fatal(err)
	}
	g.waitStatus(true, 2*time.Second)
	t.Logf("board found %v after its port appeared", time.Since(start))
	if n := strings.Count(g.logs.String(), "serial port not found"); n != 1 {
		t.Errorf("not-found logged %d times at warn level, want once:\n%s", n, g.logs.String())
	}
}

func TestSilenceTimeout(t *testing.T) {
	b := newBoard(t)
	cfg := serialConfig(b.slave)
	cfg.SilenceTimeout = gateway.Duration(300 * time.Millisecond)
	g := startGW(t, cfg, nil)
	g.waitStatus(true, 5*time.Second)
	st := g.waitStatus(false, 2*time.Second)
	if !strings.Contains(st.Reason, "silence_timeout") {
		t.Errorf("reason %q does not name silence_timeout", st.Reason)
	}
	if err := g.hub.Command(context.Background(), "bench", gateway.Command{Value: json.RawMessage(`"on"`)}); !errors.Is(err, gateway.ErrOffline) {
		t.Errorf("command to a silent board: %v, want ErrOffline", err)
	}
	b.write("{\"label\":\"back\",\"value\":true}\n")
	g.waitStatus(true, 2*time.Second)
	g.waitEvent("back", "true", 2*time.Second)
}

func TestMatchReResolvedOnReopen(t *testing.T) {
	var mu sync.Mutex
	var current *ptyBoard // the board the fake enumerator reports
	list := func() ([]*enumerator.PortDetails, error) {
		mu.Lock()
		defer mu.Unlock()
		out := []*enumerator.PortDetails{{Name: "/dev/ttyS0"}}
		if current != nil {
			out = append(out,
				&enumerator.PortDetails{Name: "/dev/ttyACM9", IsUSB: true, VID: "303A", PID: "1001", SerialNumber: "other"},
				&enumerator.PortDetails{Name: current.slave, IsUSB: true, VID: "10C4", PID: "EA60", SerialNumber: "0001"})
		}
		return out, nil
	}
	setBoard := func(b *ptyBoard) {
		mu.Lock()
		current = b
		mu.Unlock()
	}
	setBoard(newBoard(t))
	cfg := serialConfig("")
	cfg.Match = &gateway.SerialMatch{VID: "10c4", PID: "ea60", Serial: "0001"}
	g := startGW(t, cfg, func(p *Port) { p.list = list })
	g.waitStatus(true, 5*time.Second)

	// Unplug; the board comes back under another name (ttyUSB0 → ttyUSB1).
	old := current
	setBoard(nil)
	old.unplug()
	g.waitStatus(false, time.Second)
	nb := newBoard(t)
	setBoard(nb)
	g.waitStatus(true, 3*time.Second) // first retry within 1 s
	nb.write("{\"label\":\"t\",\"value\":1}\n")
	g.waitEvent("t", "1", 2*time.Second)
	if !strings.Contains(g.logs.String(), nb.slave) {
		t.Errorf("log does not name the new port %s", nb.slave)
	}
}

func TestBackoffBounds(t *testing.T) {
	for n := range 12 {
		d := min(firstRetry<<min(n, 6), maxRetry)
		for range 50 {
			got := retry.Delay(n)
			if got < d/2 || got > d {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, got, d/2, d)
			}
		}
	}
	for range 200 {
		// Contract: first retry within 1 s, with room to see the loss.
		if got := retry.Delay(0); got < 250*time.Millisecond || got > 600*time.Millisecond {
			t.Fatalf("first retry after %v, want within [250ms, 600ms]", got)
		}
	}
	if retry.Delay(100) > maxRetry {
		t.Error("backoff above the 30 s cap")
	}
}
