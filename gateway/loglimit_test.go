package gateway

import (
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	var l LogLimiter
	t0 := time.Unix(1000, 0)
	if n, ok := l.Allow(t0); !ok || n != 0 {
		t.Fatalf("first: %d %v", n, ok)
	}
	for i := 1; i <= 5; i++ {
		if _, ok := l.Allow(t0.Add(time.Duration(i) * time.Second)); ok {
			t.Fatalf("line %d within LogEvery let through", i)
		}
	}
	if n, ok := l.Allow(t0.Add(LogEvery)); !ok || n != 5 {
		t.Fatalf("after LogEvery: suppressed %d ok %v, want 5 true", n, ok)
	}
	if n, ok := l.Allow(t0.Add(3 * LogEvery)); !ok || n != 0 {
		t.Fatalf("later: suppressed %d ok %v, want 0 true", n, ok)
	}
}
