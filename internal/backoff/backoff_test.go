package backoff

import (
	"testing"
	"time"
)

func TestDelayBounds(t *testing.T) {
	p := Policy{Base: 600 * time.Millisecond, Cap: 30 * time.Second}
	tests := []struct {
		n        int
		min, max time.Duration
	}{
		{0, 300 * time.Millisecond, 600 * time.Millisecond},
		{1, 600 * time.Millisecond, 1200 * time.Millisecond},
		{5, 9600 * time.Millisecond, 19200 * time.Millisecond},
		{6, 15 * time.Second, 30 * time.Second},
		{1000, 15 * time.Second, 30 * time.Second},
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := p.Delay(tt.n)
			if d < tt.min || d > tt.max {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", tt.n, d, tt.min, tt.max)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("Delay(%d) took only %d distinct values in 200 draws: no jitter", tt.n, len(seen))
		}
	}
}
