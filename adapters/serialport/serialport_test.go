package serialport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.bug.st/serial/enumerator"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/ptyboard"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

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

func TestBootNoiseThenJSON(t *testing.T) {
	b := ptyboard.New(t)
	g := startGW(t, serialConfig(b.Path), nil)
	g.waitStatus(true, 5*time.Second)

	b.Write(ptyboard.ESP32Boot)
	b.Write("{\"label\":\"temp\",\"value\":21.5}\r\n")
	b.Write("{\"hum\":40,\"ok\":true}\r\n")
	b.Write("[{\"label\":\"led\",\"value\":\"on\"},{\"label\":\"relay1\",\"value\":\"off\"}]\r\n")
	b.Write("{\"label\":\"done\",\"value\":1}\r\n")
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
	b := ptyboard.New(t)
	g := startGW(t, serialConfig(b.Path), nil)
	g.waitStatus(true, 5*time.Second)

	// A board stuck printing 100 KiB without a newline, then a valid line.
	b.Write(strings.Repeat("A", 100<<10))
	b.Write("\n{\"label\":\"after_long\",\"value\":1}\n")
	g.waitEvent("after_long", "1", 5*time.Second)
	// Binary junk (no newline inside), then \r\n endings.
	junk := make([]byte, 512)
	for i := range junk {
		junk[i] = byte(i*7+3) | 0x80
	}
	b.Write(string(junk) + "\r\n{\"label\":\"crlf\",\"value\":2}\r\n")
	g.waitEvent("crlf", "2", 5*time.Second)
	// One line written byte by byte: the reader sees it split across reads.
	line := "{\"label\":\"split\",\"value\":\"a b\"}\r\n"
	for i := range len(line) {
		b.Write(line[i : i+1])
	}
	g.waitEvent("split", `"a b"`, 5*time.Second)
	// A line of exactly 4 KiB plus \r\n is kept; one byte more is dropped.
	pad := func(n int) string {
		head := `{"label":"exact","value":"`
		return head + strings.Repeat("x", n-len(head)-2) + `"}`
	}
	b.Write(pad(MaxLineLen+1) + "\r\n" + pad(MaxLineLen) + "\r\n{\"label\":\"end\",\"value\":3}\n")
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
			b := ptyboard.New(t)
			cfg := serialConfig(b.Path)
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
				line, ok := b.NextLine(2 * time.Second)
				if !ok || line != tc.want {
					t.Fatalf("board got %q (ok=%v), want %q", line, ok, tc.want)
				}
			}
			// A board that is unplugged gets no command: the answer is offline.
			b.Unplug()
			g.waitStatus(false, time.Second)
			err := g.hub.Command(context.Background(), "bench", tc.cmd)
			if !errors.Is(err, gateway.ErrOffline) {
				t.Errorf("command after unplug: %v, want ErrOffline", err)
			}
		})
	}
}

func TestBoardNotReadingTimesOut(t *testing.T) {
	b := ptyboard.NewNoReader(t) // a sketch that never reads Serial
	cfg := serialConfig(b.Path)
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
	b.Write("{\"label\":\"alive\",\"value\":1}\n")
	g.waitEvent("alive", "1", 2*time.Second)
	// Run must still return promptly (checked by stop) with a full buffer.
}

func TestUnplugReplugBehindSymlink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "usb-Silicon_Labs_CP2102-if00-port0") // as in /dev/serial/by-id
	b := ptyboard.New(t)
	b.LinkAs(link)
	g := startGW(t, serialConfig(link), nil)
	g.waitStatus(true, 5*time.Second)
	b.Write("{\"label\":\"n\",\"value\":0}\n")
	g.waitEvent("n", "0", 5*time.Second)

	var offline, reopen []time.Duration
	for round := 1; round <= 3; round++ {
		start := time.Now()
		b.Unplug()
		st := g.waitStatus(false, time.Second) // contract: offline within 1 s
		offline = append(offline, time.Since(start))
		if !strings.Contains(st.Reason, "lost") {
			t.Errorf("offline reason %q does not say the port was lost", st.Reason)
		}

		// A new pty behind the same stable name, as udev re-creates the
		// by-id link when the board comes back.
		b = ptyboard.New(t)
		start = time.Now()
		b.LinkAs(link)
		g.waitStatus(true, 2*time.Second)
		reopen = append(reopen, time.Since(start))
		v := fmt.Sprint(round)
		b.Write("{\"label\":\"n\",\"value\":" + v + "}\n")
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
	b := ptyboard.New(t)
	start := time.Now()
	b.LinkAs(link)
	g.waitStatus(true, 2*time.Second)
	t.Logf("board found %v after its port appeared", time.Since(start))
	if n := strings.Count(g.logs.String(), "serial port not found"); n != 1 {
		t.Errorf("not-found logged %d times at warn level, want once:\n%s", n, g.logs.String())
	}
}

func TestSilenceTimeout(t *testing.T) {
	b := ptyboard.New(t)
	cfg := serialConfig(b.Path)
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
	b.Write("{\"label\":\"back\",\"value\":true}\n")
	g.waitStatus(true, 2*time.Second)
	g.waitEvent("back", "true", 2*time.Second)
}

func TestMatchReResolvedOnReopen(t *testing.T) {
	var mu sync.Mutex
	var current *ptyboard.Board // the board the fake enumerator reports
	list := func() ([]*enumerator.PortDetails, error) {
		mu.Lock()
		defer mu.Unlock()
		out := []*enumerator.PortDetails{{Name: "/dev/ttyS0"}}
		if current != nil {
			out = append(out,
				&enumerator.PortDetails{Name: "/dev/ttyACM9", IsUSB: true, VID: "303A", PID: "1001", SerialNumber: "other"},
				&enumerator.PortDetails{Name: current.Path, IsUSB: true, VID: "10C4", PID: "EA60", SerialNumber: "0001"})
		}
		return out, nil
	}
	setBoard := func(b *ptyboard.Board) {
		mu.Lock()
		current = b
		mu.Unlock()
	}
	setBoard(ptyboard.New(t))
	cfg := serialConfig("")
	cfg.Match = &gateway.SerialMatch{VID: "10c4", PID: "ea60", Serial: "0001"}
	g := startGW(t, cfg, func(p *Port) { p.list = list })
	g.waitStatus(true, 5*time.Second)

	// Unplug; the board comes back under another name (ttyUSB0 → ttyUSB1).
	old := current
	setBoard(nil)
	old.Unplug()
	g.waitStatus(false, time.Second)
	nb := ptyboard.New(t)
	setBoard(nb)
	g.waitStatus(true, 3*time.Second) // first retry within 1 s
	nb.Write("{\"label\":\"t\",\"value\":1}\n")
	g.waitEvent("t", "1", 2*time.Second)
	if !strings.Contains(g.logs.String(), nb.Path) {
		t.Errorf("log does not name the new port %s", nb.Path)
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
