// Package netnstest makes network namespaces for tests of what crosses a
// network (mDNS between two hosts): each test builds its own namespaces,
// joined by veth pairs, so no traffic reaches the machine's real network.
// It needs root and iproute2's ip.
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
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
