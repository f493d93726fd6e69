package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
)

// Options configure a Store; zero values take the documented defaults.
type Options struct {
	Path              string        // state_dir/history.db
	Raw, Minute, Hour time.Duration // retention: raw readings [7d], 1-minute rollups [90d], 1-hour rollups [5y]
	MaxSize           int64         // bytes [2 GB]: past it the oldest data goes first: raw, then minute, then hour
	CommitInterval    time.Duration // [5s] readings reach disk at least this often
	Logger            *slog.Logger
	Now               func() time.Time // clock; nil = time.Now (tests use a fake)
}

const (
	defaultRaw            = 7 * 24 * time.Hour
	defaultMinute         = 90 * 24 * time.Hour
	defaultHour           = 5 * 365 * 24 * time.Hour
	defaultMaxSize        = 2 << 30
	defaultCommitInterval = 5 * time.Second

	// queueMax and queueMaxBytes bound readings waiting for the writer
	// (Append drops the oldest beyond them). While a commit is in flight up
	// to as many again are held by the writer.
	queueMax      = 1 << 16
	queueMaxBytes = 8 << 20
	// queueWake commits early when this many readings wait, so a burst does
	// not reach the bound before the next CommitInterval.
	queueWake = 1 << 14
	// statusMax bounds queued status changes.
	statusMax = 4096

	// maintainEvery is how often retention and MaxSize are checked.
	maintainEvery = time.Minute
	// Compaction turns the batch rows into chunks and rollups when the
	// oldest uncompacted reading arrived compactAge ago, or earlier when
	// they grow past compactReadings or compactBytes (smaller with a small
	// MaxSize).
	compactAge      = 10 * time.Minute
	compactReadings = 100_000
	compactBytes    = 4 << 20

	// Timestamps are clamped into years 1..9999 (what RFC 3339 can write).
	minTS = -62135596800000
	maxTS = 253402300799999
)

// Reading is one stored reading. Value is compact JSON. Seq is the gateway's
// event sequence number; the store keeps it only for each label's newest
// reading (Last), so Export yields Seq 0 for the others.
type Reading = gateway.Record

// The gateway reads and writes history through gateway.History.
var _ gateway.History = (*Store)(nil)

// Stats are counters since Open.
type Stats struct {
	Stored, Dropped, RetentionDeleted, WriteErrors uint64
	CommitLatency                                  time.Duration // of the last commit
	SizeBytes                                      int64         // live pages × page size
	Paused                                         bool          // writes failing (disk full), retrying
}

type seriesKey struct{ device, label string }

// series is one label's in-memory state. Writer goroutine writes it under
// Store.mu; readers read it under Store.mu.RLock.
type series struct {
	id    int64
	key   seriesKey
	t1    int64 // newest compacted ts
	hasT1 bool

	hot       []sample // committed to batch rows, not yet compacted
	hotSorted bool

	newest    sample
	newestSeq uint64
	hasNewest bool
}

type queued struct {
	key seriesKey
	ts  int64
	v   []byte
	seq uint64
}

type statusRec struct {
	device string
	ts     int64
	online bool
	reason string
}

// Store is the history database. Methods are safe for concurrent use.
type Store struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	w, r *sql.DB

	// queue, guarded by qmu.
	qmu        sync.Mutex
	queue      []queued
	queueBytes int
	// inflight: readings the writer took from the queue and is committing;
	// they stay visible to views until they are hot (cleared under mu).
	inflight []queued
	statuses []statusRec

	wake     chan struct{}
	calls    chan func(context.Context) // run on the writer goroutine
	stop     chan struct{}
	done     chan struct{}
	closing  sync.Once
	closeErr error

	// mu guards the series maps and their hot data; the writer holds it
	// exclusively while it commits a compaction, so that a reader sees
	// either the hot readings or the chunks they became, never both.
	mu       sync.RWMutex
	byKey    map[seriesKey]*series
	byID     map[int64]*series
	maxSeq   uint64
	hotCount int
	hotBytes int

	// writer-goroutine state
	hotSince    time.Time
	lastBatchID int64
	retryAt     time.Time
	backoff     time.Duration

	stored, dropped, retentionDeleted, writeErrors atomic.Uint64
	commitLatency, sizeBytes                       atomic.Int64
	paused                                         atomic.Bool
}

// Open opens (or creates) the database and starts the writer goroutine. A
// corrupt or unreadable file is logged, renamed to
// history.db.corrupt-<UTC timestamp> and replaced by a new one; the error is
// non-nil only when even a fresh database cannot be created.
func Open(opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("history: no path")
	}
	if opts.Raw <= 0 {
		opts.Raw = defaultRaw
	}
	if opts.Minute <= 0 {
		opts.Minute = defaultMinute
	}
	if opts.Hour <= 0 {
		opts.Hour = defaultHour
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = defaultMaxSize
	}
	if opts.CommitInterval <= 0 {
		opts.CommitInterval = defaultCommitInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{
		opts:    opts,
		log:     opts.Logger.With("component", "history"),
		now:     opts.Now,
		wake:    make(chan struct{}, 1),
		calls:   make(chan func(context.Context)),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		backoff: time.Second,
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o750); err != nil {
		return nil, fmt.Errorf("history: open %s: %w", opts.Path, err)
	}
	ctx := context.Background()
	err := s.openAndLoad(ctx)
	if err != nil {
		dst, mvErr := moveAside(opts.Path, s.now())
		if mvErr != nil {
			return nil, fmt.Errorf("history: open %s: %w (and %w)", opts.Path, err, mvErr)
		}
		s.log.Error("history database unusable, moved aside; starting a new one", "path", opts.Path, "moved_to", dst, "err", err)
		if err2 := s.openAndLoad(ctx); err2 != nil {
			return nil, fmt.Errorf("history: open fresh %s: %w (after %w)", opts.Path, err2, err)
		}
	}
	s.updateSize(ctx)
	go s.run()
	return s, nil
}

func (s *Store) openAndLoad(ctx context.Context) error {
	w, r, err := openDBs(ctx, s.opts.Path)
	if err != nil {
		return err
	}
	s.w, s.r = w, r
	if err := s.load(ctx); err != nil {
		w.Close()
		r.Close()
		s.w, s.r = nil, nil
		return err
	}
	return nil
}

// Close commits what is queued, stops the writer goroutine and closes the
// database. It is idempotent.
func (s *Store) Close() error {
	s.closing.Do(func() {
		close(s.stop)
		<-s.done
		s.closeErr = errors.Join(s.r.Close(), s.w.Close())
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("history: close: %w", s.closeErr)
		}
	})
	return s.closeErr
}

// Append queues readings for the writer; it never waits for I/O. Past the
// queue's bound the oldest queued readings are dropped (Stats.Dropped).
// Readings with empty Value are ignored; timestamps are clamped to years
// 1..9999. Append copies the values.
func (s *Store) Append(rs ...Reading) {
	if len(rs) == 0 {
		return
	}
	size := 0
	for _, r := range rs {
		size += len(r.Value)
	}
	slab := make([]byte, 0, size)
	s.qmu.Lock()
	for _, r := range rs {
		if len(r.Value) == 0 {
			continue
		}
		start := len(slab)
		slab = append(slab, r.Value...)
		s.queue = append(s.queue, queued{
			key: seriesKey{r.Device, r.Label},
			ts:  unixMS(r.TS),
			v:   slab[start:len(slab):len(slab)],
			seq: r.Seq,
		})
		s.queueBytes += len(r.Value)
	}
	s.trimQueueLocked()
	wake := len(s.queue) >= queueWake
	s.qmu.Unlock()
	if wake {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// trimQueueLocked drops the oldest readings beyond the bounds.
func (s *Store) trimQueueLocked() {
	drop := 0
	for len(s.queue)-drop > queueMax || (s.queueBytes > queueMaxBytes && drop < len(s.queue)-1) {
		s.queueBytes -= len(s.queue[drop].v)
		drop++
	}
	if drop > 0 {
		clear(s.queue[:drop])
		s.queue = s.queue[drop:]
		s.dropped.Add(uint64(drop))
	}
}

// AppendStatus queues a device status change (availability history).
func (s *Store) AppendStatus(device string, ts time.Time, online bool, reason string) {
	s.qmu.Lock()
	if len(s.statuses) >= statusMax {
		s.statuses = s.statuses[1:]
		s.dropped.Add(1)
	}
	s.statuses = append(s.statuses, statusRec{device: device, ts: unixMS(ts), online: online, reason: reason})
	s.qmu.Unlock()
}

// Flush commits everything queued now and returns the commit's error.
func (s *Store) Flush(ctx context.Context) error {
	return s.onWriter(ctx, func(ctx context.Context) error { return s.commit(ctx, true) })
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	return Stats{
		Stored:           s.stored.Load(),
		Dropped:          s.dropped.Load(),
		RetentionDeleted: s.retentionDeleted.Load(),
		WriteErrors:      s.writeErrors.Load(),
		CommitLatency:    time.Duration(s.commitLatency.Load()),
		SizeBytes:        s.sizeBytes.Load(),
		Paused:           s.paused.Load(),
	}
}

var (
	minTime = time.UnixMilli(minTS)
	maxTime = time.UnixMilli(maxTS)
)

func unixMS(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return minTS
	case t.After(maxTime):
		return maxTS
	}
	return t.UnixMilli()
}

func fromMS(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// liveSize is the database's size without free pages.
func liveSize(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int64, error) {
	var pages, free, size int64
	if err := q.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		return 0, err
	}
	if err := q.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&free); err != nil {
		return 0, err
	}
	if err := q.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&size); err != nil {
		return 0, err
	}
	return (pages - free) * size, nil
}

func (s *Store) updateSize(ctx context.Context) int64 {
	n, err := liveSize(ctx, s.w)
	if err != nil {
		return s.sizeBytes.Load()
	}
	s.sizeBytes.Store(n)
	return n
}
