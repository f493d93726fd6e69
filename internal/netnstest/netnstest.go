// Package netnstest makes network namespaces for tests of what crosses a
// network (mDNS between two hosts): each test builds its own namespaces,
// joined by veth pairs, so no traffic reaches the machine's real network.
// It needs root and iproute2's ip.
package netnstest

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/testutil"
)

// Require skips the test when it cannot make namespaces (not root, no ip
// command), and fails it instead under CI, where a skip would hide that the
// test never ran.
func Require(t testing.TB) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "not root"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "no ip command (iproute2)"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("network namespace test cannot run in CI: %s", why)
	}
	t.Skipf("network namespace test needs root and iproute2: %s", why)
}

// IP runs the ip command, failing the test with its output on error.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// New creates the namespace PREFIX-ROLE-PID with lo up, deleted when the
// test ends.
func New(t testing.TB, prefix, role string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%s-%d", prefix, role, os.Getpid())
	IP(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	IP(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// Link joins namespaces a and b with a veth pair, DEV+"a"+PID in a and
// DEV+"b"+PID in b (a dev of at most 3 bytes keeps the names within 15),
// gives the ends addrA and addrB (with their prefix length, "10.1.2.1/24"),
// sets them up and routes multicast through them: a namespace has no
// default route, and multicast needs one. It returns the ends' names.
func Link(t testing.TB, a, b, dev, addrA, addrB string) (devA, devB string) {
	t.Helper()
	pid := fmt.Sprint(os.Getpid())
	devA, devB = dev+"a"+pid, dev+"b"+pid
	IP(t, "link", "add", devA, "netns", a, "type", "veth", "peer", "name", devB, "netns", b)
	for _, side := range []struct{ ns, dev, addr string }{{a, devA, addrA}, {b, devB, addrB}} {
		IP(t, "-n", side.ns, "addr", "add", side.addr, "dev", side.dev)
		IP(t, "-n", side.ns, "link", "set", side.dev, "up")
		IP(t, "-n", side.ns, "route", "add", "224.0.0.0/4", "dev", side.dev)
	}
	return devA, devB
}

// Child is the running test binary run again inside a namespace (ip netns
// exec) for one test, its role chosen by environment variables; closing
// Stdin tells it to stop.
type Child struct {
	Cmd   *exec.Cmd
	Stdin io.WriteCloser
	Out   testutil.SyncBuffer // its stdout and stderr
	done  chan error
}

// StartChild runs the test binary in ns with -test.run=^TEST$, -test.v,
// -test.timeout=TIMEOUT and env added to the environment. When the test
// ends its stdin is closed; a child that has not exited 10 s later fails
// the test and is killed.
func StartChild(t testing.TB, ns, test string, timeout time.Duration, env ...string) *Child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &Child{done: make(chan error, 1)}
	c.Cmd = exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^"+test+"$", "-test.v", "-test.timeout="+timeout.String())
	c.Cmd.Env = append(os.Environ(), env...)
	c.Cmd.Stdout, c.Cmd.Stderr = &c.Out, &c.Out
	if c.Stdin, err = c.Cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.Cmd.Wait() }()
	t.Cleanup(func() {
		c.Stdin.Close()
		select {
		case err := <-c.done:
			c.done <- err
		case <-time.After(10 * time.Second):
			t.Errorf("namespace child %s in %s did not stop; killing it:\n%s", test, ns, c.Out.String())
			c.Cmd.Process.Kill()
			select {
			case <-c.done:
			case <-time.After(5 * time.Second):
			}
		}
	})
	return c
}

// Wait waits up to within for the child to exit and fails the test unless
// it exited 0 and its test passed; what names it in the failure.
func (c *Child) Wait(t testing.TB, within time.Duration, what string) {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err // for the cleanup
		if err != nil || !strings.Contains(c.Out.String(), "\nPASS") {
			t.Fatalf("%s failed (%v):\n%s", what, err, c.Out.String())
		}
	case <-time.After(within):
		t.Fatalf("%s did not finish within %v:\n%s", what, within, c.Out.String())
	}
}
