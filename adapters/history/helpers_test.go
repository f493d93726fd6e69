package history

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// openTest opens a store in a temp dir with a fake clock; opts.Path and
// opts.Now are filled when empty. The store is closed at cleanup.
func openTest(t testing.TB, opts Options) (*Store, *fakeClock) {
	t.Helper()
	clock := newFakeClock(t0)
	if opts.Path == "" {
		opts.Path = filepath.Join(t.TempDir(), "history.db")
	}
	if opts.Now == nil {
		opts.Now = clock.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, clock
}

func flush(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// compactNow commits and compacts on the writer goroutine.
func compactNow(t testing.TB, s *Store) {
	t.Helper()
	err := s.onWriter(context.Background(), func(ctx context.Context) error {
		if err := s.commit(ctx, true); err != nil {
			return err
		}
		return s.compact(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func maintainNow(t testing.TB, s *Store) {
	t.Helper()
	err := s.onWriter(context.Background(), func(ctx context.Context) error {
		if err := s.commit(ctx, true); err != nil {
			return err
		}
		s.maintain(ctx)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func rd(device, label string, ts time.Time, value string) Reading {
	return Reading{Device: device, Label: label, TS: ts, Value: json.RawMessage(value)}
}

func query(t testing.TB, s *Store, q Query) Result {
	t.Helper()
	r, err := s.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
