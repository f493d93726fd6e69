package contracttest

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/testgw"
)

// notifySocket plays systemd's side of sd_notify: a unixgram socket the
// gateway finds in NOTIFY_SOCKET. Every datagram's lines arrive on msgs.
type notifySocket struct {
	path string
	msgs chan notifyMsg

	mu    sync.Mutex
	ready int // /healthz status at the moment READY=1 arrived; 0: not yet
}

type notifyMsg struct {
	at    time.Time
	state string // "READY=1", "STATUS=…"
}

// listenNotify opens the socket; onReadyAddr is probed with GET /healthz
// the moment READY=1 arrives, before anything else is read.
func listenNotify(t *testing.T, onReadyAddr string) *notifySocket {
	t.Helper()
	n := &notifySocket{path: filepath.Join(t.TempDir(), "notify.sock"), msgs: make(chan notifyMsg, 10000)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			at := time.Now()
			for _, line := range strings.Split(strings.TrimSpace(string(buf[:k])), "\n") {
				if line == "READY=1" {
					n.probeReady(onReadyAddr)
				}
				n.msgs <- notifyMsg{at: at, state: line}
			}
		}
	}()
	return n
}

func (n *notifySocket) probeReady(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ready != 0 {
		return // a later READY (after a reload)
	}
	n.ready = -1
	c := http.Client{Timeout: 2 * time.Second}
	if resp, err := c.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		n.ready = resp.StatusCode
	}
}

func (n *notifySocket) readyProbe() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ready
}

// wait reads messages until one satisfies pred, within d.
func (n *notifySocket) wait(t *testing.T, d time.Duration, what string, pred func(string) bool) notifyMsg {
	t.Helper()
	deadline := time.After(d)
	var seen []string
	for {
		select {
		case m := <-n.msgs:
			if pred(m.state) {
				return m
			}
			seen = append(seen, m.state)
		case <-deadline:
			t.Fatalf("no %s on NOTIFY_SOCKET within %v; got %q", what, d, seen[max(0, len(seen)-10):])
		}
	}
}

// count reads for d and counts the messages equal to state.
func (n *notifySocket) count(d time.Duration, state string) (int, []string) {
	end := time.After(d)
	k := 0
	var other []string
	for {
		select {
		case m := <-n.msgs:
			if m.state == state {
				k++
			} else {
				other = append(other, m.state)
			}
		case <-end:
			return k, other
		}
	}
}

func is(s string) func(string) bool { return func(x string) bool { return x == s } }

func notifyConfig(addr string) string {
	return fmt.Sprintf(`gateway_id: gw1
state_dir: data
http:
  listen: %q
devices:
  - id: demo
    transport: sim
    sim: {board: tutorial, interval: 200ms}
`, addr)
}

// TestSystemdNotify: READY once the port answers, WATCHDOG every half of
// WATCHDOG_USEC, STATUS with boards and browsers, STOPPING on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	n := listenNotify(t, addr)
	g := testgw.StartEnv(t, notifyConfig(addr), "NOTIFY_SOCKET="+n.path, "WATCHDOG_USEC=1000000")

	n.wait(t, 10*time.Second, "READY=1", is("READY=1"))
	if code := n.readyProbe(); code != 200 {
		t.Errorf("GET /healthz the moment READY=1 arrived: %d, want 200 (READY before the port answers?)", code)
	}
	n.wait(t, 10*time.Second, "STATUS with the board online", is("STATUS=1 board online, 0 browsers"))

	// WATCHDOG_USEC=1s: a ping every 500 ms, so about 8 in 4 s. Generous
	// bounds: the race-enabled binary shares two cores with other tests.
	pings, _ := n.count(4*time.Second, "WATCHDOG=1")
	t.Logf("%d WATCHDOG=1 in 4 s (want about 8)", pings)
	if pings < 4 || pings > 16 {
		t.Errorf("%d WATCHDOG=1 in 4 s with WATCHDOG_USEC=1000000, want about 8 (one every 500 ms)", pings)
	}

	_, r := browser(t, g, "/ws")
	r.NextMsg(t, 5*time.Second)
	n.wait(t, 10*time.Second, "STATUS counting the browser", is("STATUS=1 board online, 1 browser"))

	errc := make(chan error, 1)
	go func() { err, _ := g.Terminate(); errc <- err }()
	n.wait(t, 5*time.Second, "STOPPING=1", is("STOPPING=1"))
	if err := <-errc; err != nil {
		t.Errorf("SIGTERM: exit %v, want 0", err)
	}
}

// TestSystemdWatchdogStopsWhenHubStuck: with the hub holding its lock (the
// test hook), the WATCHDOG pings stop, so systemd would restart the gateway.
func TestSystemdWatchdogStopsWhenHubStuck(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	n := listenNotify(t, addr)
	g := testgw.StartEnv(t, notifyConfig(addr), "NOTIFY_SOCKET="+n.path, "WATCHDOG_USEC=1000000",
		"ESP32GW_TEST_STALL_HUB_AFTER=2s")

	n.wait(t, 10*time.Second, "READY=1", is("READY=1"))
	n.wait(t, 5*time.Second, "a first WATCHDOG=1", is("WATCHDOG=1"))

	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(g.Logs(), "hub is not answering") {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not log that its hub stopped answering:\n%s", g.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.count(200*time.Millisecond, "") // drop what was sent before the log line
	if pings, _ := n.count(3*time.Second, "WATCHDOG=1"); pings != 0 {
		t.Errorf("%d WATCHDOG=1 in 3 s with the hub stuck, want none", pings)
	}

	// A stuck hub is systemd's to kill; here the test hook releases the hub
	// when shutdown begins, so SIGTERM still ends the process cleanly.
	if err, _ := g.Terminate(); err != nil {
		t.Errorf("SIGTERM: exit %v, want 0", err)
	}
}
