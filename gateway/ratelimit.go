package gateway

import "time"

// Command rates (contract: "commands only from the allow-list", and a
// runaway script must not flood a board).
const (
	// CommandRate is how many commands per second one device takes,
	// after a burst of CommandBurst.
	CommandRate  = 20.0
	CommandBurst = 40.0
	// CommandAnswerWithin is the contract's bound on a command's answer
	// (ack or error); CommandTimeout stays below it.
	CommandAnswerWithin = 2 * time.Second
)

// TokenBucket is a rate limiter: Allow succeeds at most Rate times a second
// on average, after a burst of Burst. The zero value refuses everything; it
// starts full. It is not safe for concurrent use: its owner serialises calls.
type TokenBucket struct {
	Rate, Burst float64
	tokens      float64
	at          time.Time
}

// NewTokenBucket returns a full bucket.
func NewTokenBucket(rate, burst float64) TokenBucket {
	return TokenBucket{Rate: rate, Burst: burst, tokens: burst}
}

// Allow takes one token at time now, reporting false when none is left.
func (b *TokenBucket) Allow(now time.Time) bool {
	if !b.at.IsZero() {
		b.tokens = min(b.tokens+now.Sub(b.at).Seconds()*b.Rate, b.Burst)
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
