package testutil

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// pollInterval is how often Eventually and the leak check look again: short
// against the seconds their deadlines allow, long enough not to spin.
const pollInterval = 10 * time.Millisecond

// Eventually polls cond until it returns true, and fails the test (Fatal)
// when it has not within the given time; what names the condition in the
// failure.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(pollInterval)
	}
}

// leakWait bounds how long the leak check waits for goroutines to end after
// the test: they are told to stop by cleanups, and under -race on a busy
// machine an orderly exit can take a while.
const leakWait = 5 * time.Second

// CheckGoroutines fails the test when a goroutine started during the test
// (after this call) is still running once the test and all its cleanups are
// done. Call it first in the test: cleanups run last-in first-out, so the
// check runs after every cleanup registered later. opts add goleak filters
// (goleak.IgnoreTopFunction for a known, bounded background goroutine).
// Not for parallel tests: their goroutines would count as leaks.
func CheckGoroutines(t testing.TB, opts ...goleak.Option) {
	t.Helper()
	opts = append(opts, goleak.IgnoreCurrent())
	t.Cleanup(func() {
		t.Helper()
		deadline := time.Now().Add(leakWait)
		for {
			err := goleak.Find(opts...) // itself retries for a few hundred ms
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines still running %v after the test: %v", leakWait, err)
				return
			}
			time.Sleep(pollInterval)
		}
	})
}

// CheckMain runs a package's tests and then fails the run when any goroutine
// they started is still running (after the same grace period as
// CheckGoroutines); it returns the exit code for os.Exit:
//
//	func TestMain(m *testing.M) { os.Exit(testutil.CheckMain(m)) }
func CheckMain(m *testing.M, opts ...goleak.Option) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	deadline := time.Now().Add(leakWait)
	for {
		err := goleak.Find(opts...)
		if err == nil {
			return 0
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "goroutines still running %v after the tests: %v\n", leakWait, err)
			return 1
		}
		time.Sleep(pollInterval)
	}
}
