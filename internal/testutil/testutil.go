// Package testutil holds small helpers shared by the tests of several
// packages: waiting with a deadline (Eventually), a goroutine-leak check
// (CheckGoroutines), reading a WebSocket (WSReader) and collecting output
// (SyncBuffer). The only goroutine it starts is a WSReader's, which ends with
// its connection.
package testutil

import (
	"bytes"
	"sync"
)

// SyncBuffer collects output (a logger's, a child process's) written from
// other goroutines while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
