package history

import (
	"context"
	"fmt"
	"time"
)

// deleteBatch bounds the rows one retention transaction deletes, so the
// writer never holds the write lock for long.
const deleteBatch = 1000

// maintain applies retention and MaxSize. Writer goroutine only (tests call
// it directly with a fake clock).
func (s *Store) maintain(ctx context.Context) {
	if err := s.applyRetention(ctx); err != nil {
		s.log.Warn("history: retention", "err", err)
	}
	if s.updateSize(ctx) > s.opts.MaxSize {
		if err := s.enforceMaxSize(ctx); err != nil {
			s.log.Warn("history: max size", "err", err)
		}
	}
}

// applyRetention deletes raw chunks older than Raw, minute rollups older
// than Minute, hour rollups and status changes older than Hour.
func (s *Store) applyRetention(ctx context.Context) error {
	now := unixMS(s.now())
	rawH := now - s.opts.Raw.Milliseconds()
	for {
		n, err := s.deleteChunks(ctx, 0, `SELECT id, n, length(data) FROM chunk WHERE t0 < ? AND t1 < ? ORDER BY t0 LIMIT ?`, rawH, rawH, deleteBatch)
		if err != nil {
			return err
		}
		if n < deleteBatch {
			break
		}
	}
	s.mu.RLock()
	ids := make([]int64, 0, len(s.byID))
	for id := range s.byID {
		ids = append(ids, id)
	}
	s.mu.RUnlock()
	for _, tier := range []struct {
		tier int
		keep time.Duration
	}{{tierMinute, s.opts.Minute}, {tierHour, s.opts.Hour}} {
		// A row goes when its whole period is past the horizon.
		last := now - tier.keep.Milliseconds() - tiers[tier.tier].period
		for start := 0; start < len(ids); start += deleteBatch {
			if err := s.deleteRollups(ctx, ids[start:min(start+deleteBatch, len(ids))], tier.tier, last); err != nil {
				return err
			}
		}
	}
	res, err := s.w.ExecContext(ctx, `DELETE FROM status WHERE ts < ?`, now-s.opts.Hour.Milliseconds())
	if err != nil {
		return fmt.Errorf("status retention: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil {
		s.retentionDeleted.Add(uint64(n))
	}
	return nil
}

// deleteChunks deletes the chunks the query (id, n, bytes) selects, in one
// transaction, and counts their readings; with need > 0 it stops once the
// chunks add up to need bytes.
func (s *Store) deleteChunks(ctx context.Context, need int64, query string, args ...any) (int, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("select chunks: %w", err)
	}
	var ids []int64
	var readings uint64
	var bytes int64
	for rows.Next() && (need <= 0 || bytes < need) {
		var id, n, l int64
		if err := rows.Scan(&id, &n, &l); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
		readings += uint64(n)
		bytes += l + 64 // row and index overhead
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	del, err := tx.PrepareContext(ctx, `DELETE FROM chunk WHERE id=?`)
	if err != nil {
		return 0, err
	}
	defer del.Close()
	for _, id := range ids {
		if _, err := del.ExecContext(ctx, id); err != nil {
			return 0, fmt.Errorf("delete chunk: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	s.retentionDeleted.Add(readings)
	return len(ids), nil
}

func (s *Store) deleteRollups(ctx context.Context, ids []int64, tier int, before int64) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	del, err := tx.PrepareContext(ctx, `DELETE FROM rollup WHERE series=? AND tier=? AND t0 <= ?`)
	if err != nil {
		return err
	}
	defer del.Close()
	var total int64
	for _, id := range ids {
		res, err := del.ExecContext(ctx, id, tier, before)
		if err != nil {
			return fmt.Errorf("rollup retention: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.retentionDeleted.Add(uint64(total))
	return nil
}

// enforceMaxSize deletes the oldest data, raw chunks first, then minute and
// then hour rollups, until the live size is a margin below MaxSize (so the
// next compaction fits). Each step is its own short transaction.
func (s *Store) enforceMaxSize(ctx context.Context) error {
	target := s.opts.MaxSize - max(s.opts.MaxSize/16, 32<<10)
	if s.hotCount > 0 {
		if err := s.compact(ctx); err != nil {
			return err
		}
	}
	size := s.updateSize(ctx)
	for size > target {
		// Select the oldest rows until they add up to what must go.
		need := size - target
		n, err := s.deleteOldestChunks(ctx, need)
		if err != nil {
			return err
		}
		if n == 0 {
			if n, err = s.deleteOldestRollups(ctx, tierMinute); err != nil {
				return err
			}
		}
		if n == 0 {
			if n, err = s.deleteOldestRollups(ctx, tierHour); err != nil {
				return err
			}
		}
		if n == 0 {
			s.log.Warn("history: over max size with nothing left to delete", "size", size, "max_size", s.opts.MaxSize)
			return nil
		}
		size = s.updateSize(ctx)
	}
	return nil
}

func (s *Store) deleteOldestChunks(ctx context.Context, need int64) (int, error) {
	return s.deleteChunks(ctx, need, `SELECT id, n, length(data) FROM chunk ORDER BY t0 LIMIT ?`, deleteBatch)
}

func (s *Store) deleteOldestRollups(ctx context.Context, tier int) (int, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM rollup WHERE (series, tier, t0) IN (SELECT series, tier, t0 FROM rollup WHERE tier=? ORDER BY t0 LIMIT ?)`, tier, deleteBatch)
	if err != nil {
		return 0, fmt.Errorf("delete oldest rollups: %w", err)
	}
	n, _ := res.RowsAffected()
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	s.retentionDeleted.Add(uint64(n))
	return int(n), nil
}
