package gateway

import (
	"sync"
	"time"
)

// LogEvery is how often a LogLimiter lets one line of its kind through:
// events a stranger can trigger at will (a wrong-token login, a refused
// board dial-in, a foreign Host) log at most one Warn per LogEvery, with the
// number suppressed since the last one, so they cannot flood the journal.
const LogEvery = 10 * time.Second

// LogLimiter lets at most one log line of one kind through per LogEvery and
// counts the ones it holds back. The zero value is ready; safe for
// concurrent use.
type LogLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed uint64
}

// Allow reports whether a line may be logged at now and, if so, how many
// were suppressed since the last one logged (to add as "suppressed").
func (l *LogLimiter) Allow(now time.Time) (suppressed uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < LogEvery {
		l.suppressed++
		return 0, false
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return n, true
}
