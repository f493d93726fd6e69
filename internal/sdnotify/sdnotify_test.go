package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// listen opens a real notify socket, as systemd does, and returns its
// NOTIFY_SOCKET value and a function that reads the next datagram.
func listen(t *testing.T, name string) (string, func() string) {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return name, func() string {
		t.Helper()
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no datagram: %v", err)
		}
		return string(buf[:n])
	}
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestSendsOneDatagramPerCall(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	abstract := fmt.Sprintf("@esp32gw-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	for _, tc := range []struct{ name, socket string }{
		{"path", path},
		{"abstract", abstract},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock, next := listen(t, tc.socket)
			n, err := New(env(map[string]string{"NOTIFY_SOCKET": sock}))
			if err != nil {
				t.Fatal(err)
			}
			if !n.Enabled() {
				t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
			}
			for _, step := range []struct {
				send func() error
				want string
			}{
				{n.Ready, "READY=1"},
				{func() error { return n.Status("3/3 boards online,\n2 browsers") }, "STATUS=3/3 boards online, 2 browsers"},
				{n.Watchdog, "WATCHDOG=1"},
				{n.Reloading, "RELOADING=1"},
				{n.Stopping, "STOPPING=1"},
			} {
				if err := step.send(); err != nil {
					t.Fatalf("send %q: %v", step.want, err)
				}
				if got := next(); got != step.want {
					t.Fatalf("datagram = %q, want %q", got, step.want)
				}
			}
		})
	}
}

func TestNoSocketIsNoOp(t *testing.T) {
	for _, n := range []*Notifier{nil, {}, mustNew(t, map[string]string{"WATCHDOG_USEC": "30000000"})} {
		if n.Enabled() {
			t.Error("Enabled() = true without NOTIFY_SOCKET")
		}
		for _, f := range []func() error{n.Ready, n.Stopping, n.Watchdog, func() error { return n.Status("x") }} {
			if err := f(); err != nil {
				t.Errorf("no-op returned %v", err)
			}
		}
		if d := n.WatchdogInterval(); d != 0 {
			t.Errorf("WatchdogInterval() = %v without NOTIFY_SOCKET, want 0", d)
		}
	}
}

func mustNew(t *testing.T, m map[string]string) *Notifier {
	t.Helper()
	n, err := New(env(m))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	sock := filepath.Join(t.TempDir(), "notify") // never written to here
	for _, tc := range []struct {
		name    string
		usec    string
		pid     string
		want    time.Duration
		wantErr bool
	}{
		{"unset", "", "", 0, false},
		{"30s half", "30000000", self, 15 * time.Second, false},
		{"no pid", "30000000", "", 15 * time.Second, false},
		{"another process", "30000000", "1", 0, false},
		{"garbage", "soon", self, 0, true},
		{"zero", "0", self, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(env(map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": tc.usec, "WATCHDOG_PID": tc.pid}))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got := n.WatchdogInterval(); got != tc.want {
				t.Fatalf("WatchdogInterval() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBadSocketIsReported(t *testing.T) {
	n, err := New(env(map[string]string{"NOTIFY_SOCKET": "vsock:2:1234"}))
	if err == nil {
		t.Fatal("no error for an unsupported NOTIFY_SOCKET")
	}
	if n.Enabled() {
		t.Fatal("an unusable socket must leave the Notifier off")
	}
	// A socket that is gone (systemd restarted, a stale variable) fails
	// fast with an error the caller can log; it never hangs.
	gone := mustNew(t, map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "gone")})
	start := time.Now()
	if err := gone.Ready(); err == nil {
		t.Fatal("Ready() to a missing socket returned nil")
	}
	if d := time.Since(start); d > sendTimeout {
		t.Fatalf("a failed send took %v", d)
	}
}

// A receiver that reads nothing fills its queue; a send then gives up
// after sendTimeout instead of blocking the caller.
func TestFullQueueDoesNotBlock(t *testing.T) {
	sock, _ := listen(t, filepath.Join(t.TempDir(), "notify"))
	n := mustNew(t, map[string]string{"NOTIFY_SOCKET": sock})
	deadline := time.Now().Add(10 * sendTimeout)
	for i := 0; ; i++ {
		start := time.Now()
		err := n.Watchdog()
		if d := time.Since(start); d > sendTimeout+time.Second {
			t.Fatalf("send %d took %v", i, d)
		}
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("send %d: %v, want a deadline error", i, err)
			}
			return // the queue is full and the send gave up: what we wanted
		}
		if time.Now().After(deadline) {
			t.Fatal("the queue never filled")
		}
	}
}
