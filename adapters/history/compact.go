package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
)

// Chunk bounds: a chunk holds at most chunkMax readings, about chunkBytes of
// distinct values and chunkSpan of time. A label's newest chunk with fewer
// than mergeBelow readings is merged with the next compaction's readings so
// slow labels still get dense chunks.
const (
	chunkMax   = 4096
	chunkBytes = 64 << 10
	chunkSpan  = 86_400_000 // ms; queries look this far back for overlapping chunks
	mergeBelow = 512
)

func (s *Store) compactLimitBytes() int {
	return int(min(int64(compactBytes), max(s.opts.MaxSize/32, 16<<10)))
}

// compactIfDue compacts when the hot readings are old or big enough.
// Writer goroutine only.
func (s *Store) compactIfDue(ctx context.Context) error {
	if s.hotCount == 0 {
		return nil
	}
	if s.hotCount < compactReadings && s.hotBytes < s.compactLimitBytes() && s.now().Sub(s.hotSince) < compactAge {
		return nil
	}
	return s.compact(ctx)
}

type rollupKey struct {
	series int64
	tier   int
	t0     int64
}

// compact turns every hot reading into chunk rows and merges them into the
// rollups, then deletes the batch rows they came from, in one transaction.
// Writer goroutine only (it alone changes hot data, so it reads it without
// the lock).
func (s *Store) compact(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO chunk(series, t0, t1, n, last_seq, data) VALUES(?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	rolls := make(map[rollupKey][]agg)
	newT1 := make(map[*series]int64)
	for _, ser := range s.byID {
		if len(ser.hot) == 0 {
			continue
		}
		ss := slices.Clone(ser.hot)
		if !ser.hotSorted {
			sort.SliceStable(ss, func(i, j int) bool { return ss[i].ts < ss[j].ts })
		}
		addRollups(rolls, ser.id, ss)
		cut := 0
		if ser.hasT1 {
			cut = sort.Search(len(ss), func(i int) bool { return ss[i].ts > ser.t1 })
		}
		if err := insertChunks(ctx, ins, ser.id, ss[:cut], 0); err != nil {
			return err
		}
		fresh := ss[cut:]
		if len(fresh) == 0 {
			continue
		}
		if ser.hasT1 {
			if fresh, err = mergeNewest(ctx, tx, ser.id, fresh); err != nil {
				return err
			}
		}
		var lastSeq uint64
		if ser.hasNewest && ser.newest.ts == fresh[len(fresh)-1].ts {
			lastSeq = ser.newestSeq
		}
		if err := insertChunks(ctx, ins, ser.id, fresh, lastSeq); err != nil {
			return err
		}
		t1 := fresh[len(fresh)-1].ts
		if _, err := tx.ExecContext(ctx, `UPDATE series SET t1=? WHERE id=?`, t1, ser.id); err != nil {
			return fmt.Errorf("update series: %w", err)
		}
		newT1[ser] = t1
	}
	if err := mergeRollups(ctx, tx, rolls); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta(key, value) VALUES('max_seq', ?)`, int64(s.maxSeq)); err != nil {
		return fmt.Errorf("update max seq: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM batch WHERE id <= ?`, s.lastBatchID); err != nil {
		return fmt.Errorf("delete batches: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := tx.Commit(); err != nil {
		return err
	}
	for _, ser := range s.byID {
		ser.hot, ser.hotSorted = nil, true
	}
	for ser, t1 := range newT1 {
		ser.t1, ser.hasT1 = t1, true
	}
	s.hotCount, s.hotBytes = 0, 0
	return nil
}

// mergeNewest prepends the label's newest chunk to fresh (readings all
// newer than it) when that chunk is small, deleting it.
func mergeNewest(ctx context.Context, tx *sql.Tx, id int64, fresh []sample) ([]sample, error) {
	var cid, n, t0 int64
	var data []byte
	err := tx.QueryRowContext(ctx, `SELECT id, n, t0, data FROM chunk WHERE series=? ORDER BY t0 DESC, t1 DESC LIMIT 1`, id).Scan(&cid, &n, &t0, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return fresh, nil
	}
	if err != nil {
		return nil, fmt.Errorf("newest chunk: %w", err)
	}
	if n >= mergeBelow || len(data) > chunkBytes/4 || fresh[len(fresh)-1].ts-t0 > chunkSpan {
		return fresh, nil
	}
	old, err := decodeChunk(data)
	if err != nil || len(old) == 0 || old[len(old)-1].ts > fresh[0].ts {
		return fresh, nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM chunk WHERE id=?`, cid); err != nil {
		return nil, fmt.Errorf("merge chunk: %w", err)
	}
	return append(old, fresh...), nil
}

// insertChunks writes ss (sorted) as chunk rows within the chunk bounds;
// the last one carries lastSeq.
func insertChunks(ctx context.Context, ins *sql.Stmt, id int64, ss []sample, lastSeq uint64) error {
	for len(ss) > 0 {
		n, bytes := 0, 0
		for n < len(ss) && n < chunkMax && bytes < chunkBytes && ss[n].ts-ss[0].ts <= chunkSpan {
			bytes += len(ss[n].v)
			n++
		}
		part := ss[:n]
		ss = ss[n:]
		seq := uint64(0)
		if len(ss) == 0 {
			seq = lastSeq
		}
		data := encodeChunk(nil, part)
		if _, err := ins.ExecContext(ctx, id, part[0].ts, part[n-1].ts, n, int64(seq), data); err != nil {
			return fmt.Errorf("insert chunk: %w", err)
		}
	}
	return nil
}

// addRollups adds the numeric readings of ss to the minute and hour slots.
func addRollups(rolls map[rollupKey][]agg, id int64, ss []sample) {
	for _, tier := range []int{tierMinute, tierHour} {
		spec := tiers[tier]
		var cur []agg
		curT0 := int64(0)
		for _, x := range ss {
			f, ok := jsonNumber(x.v)
			if !ok {
				continue
			}
			t0 := floorTo(x.ts, spec.period)
			if cur == nil || t0 != curT0 {
				k := rollupKey{id, tier, t0}
				cur = rolls[k]
				if cur == nil {
					cur = make([]agg, spec.slots())
					rolls[k] = cur
				}
				curT0 = t0
			}
			cur[(x.ts-t0)/spec.slot].add(x.ts, f)
		}
	}
}

// mergeRollups merges new slots into the stored rollup rows.
func mergeRollups(ctx context.Context, tx *sql.Tx, rolls map[rollupKey][]agg) error {
	if len(rolls) == 0 {
		return nil
	}
	sel, err := tx.PrepareContext(ctx, `SELECT data FROM rollup WHERE series=? AND tier=? AND t0=?`)
	if err != nil {
		return err
	}
	defer sel.Close()
	put, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO rollup(series, tier, t0, data) VALUES(?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer put.Close()
	var old []agg
	for k, slots := range rolls {
		spec := tiers[k.tier]
		var data []byte
		err := sel.QueryRowContext(ctx, k.series, k.tier, k.t0).Scan(&data)
		switch {
		case err == nil:
			old = slices.Grow(old[:0], len(slots))[:len(slots)]
			if decodeRollup(data, k.t0, spec, old) == nil {
				for i := range slots {
					// The stored slot first: on equal timestamps the newer
					// arrival's value stays last.
					a := old[i]
					a.merge(slots[i])
					slots[i] = a
				}
			}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("read rollup: %w", err)
		}
		if _, err := put.ExecContext(ctx, k.series, k.tier, k.t0, encodeRollup(nil, k.t0, spec, slots)); err != nil {
			return fmt.Errorf("write rollup: %w", err)
		}
	}
	return nil
}
