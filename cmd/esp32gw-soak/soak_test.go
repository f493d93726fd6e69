package main

import (
	"context"
	"io"
	"os"
	"testing"
	"time"
)

// TestSoak runs the soak against the real binary: 60 s of faults when CI
// is set, 10 s otherwise.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	d := "10s"
	if os.Getenv("CI") != "" {
		d = "60s"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stderr io.Writer = io.Discard
	if testing.Verbose() {
		stderr = os.Stderr
	}
	sum, err := run(ctx, []string{"-duration", d, "-warmup", "10s", "-settle", "10s", "-fault-every", "1s", "-timeout", "4m"}, stderr)
	if sum == nil {
		t.Fatalf("no summary: %v", err)
	}
	for _, c := range sum.Checks {
		t.Logf("%-18s ok=%v %s", c.Name, c.OK, c.Detail)
	}
	t.Logf("faults %v", sum.Faults)
	if err != nil || !sum.Passed {
		t.Fatalf("soak failed: %v (error %q)", err, sum.Error)
	}
}
