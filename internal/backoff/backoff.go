// Package backoff is the one reconnect delay policy of every link (boards,
// serial ports, the MQTT broker): jittered exponential backoff (contract:
// "first retry within 1 s, jittered exponential backoff, cap 30 s, never
// gives up"). It holds no state and starts no goroutines.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy is jittered exponential backoff: retry n (0-based) waits a uniform
// random time in [d/2, d], where d = min(Base·2ⁿ, Cap). Jitter keeps many
// links that failed together from retrying together.
type Policy struct {
	Base time.Duration // d for the first retry
	Cap  time.Duration // bound on every d
}

// Delay is the wait before retry n (0-based).
func (p Policy) Delay(n int) time.Duration {
	d := p.Base
	for i := 0; i < n && d < p.Cap; i++ {
		d *= 2
	}
	d = min(d, p.Cap)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}
