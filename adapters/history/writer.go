package history

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"
)

// run is the writer goroutine: the only code that writes to the database.
// Close stops it (after a last commit); it closes s.done when it returns.
func (s *Store) run() {
	defer close(s.done)
	ctx := context.Background()
	commit := time.NewTicker(s.opts.CommitInterval)
	defer commit.Stop()
	maintain := time.NewTicker(maintainEvery)
	defer maintain.Stop()
	for {
		select {
		case <-s.stop:
			if err := s.commit(ctx, true); err != nil {
				s.log.Error("history: last commit failed; queued readings lost", "err", err)
			}
			return
		case fn := <-s.calls:
			fn(ctx)
		case <-s.wake:
			s.commit(ctx, false)
		case <-commit.C:
			s.commit(ctx, false)
		case <-maintain.C:
			s.maintain(ctx)
		}
	}
}

// onWriter runs fn on the writer goroutine and waits for it.
func (s *Store) onWriter(ctx context.Context, fn func(context.Context) error) error {
	reply := make(chan error, 1)
	call := func(wctx context.Context) { reply <- fn(wctx) }
	select {
	case s.calls <- call:
	case <-s.done:
		return errors.New("history: closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitMax and commitMaxBytes bound one batch row: readings, and the bytes
// of their values (which the row's blob and SQLite copy again, so memory
// stays bounded however large the values are).
const (
	commitMax      = 1 << 15
	commitMaxBytes = 2 << 20
)

// commit writes everything queued as batch rows (one per commitMax
// readings), then compacts and enforces MaxSize when due. force ignores a
// pause's retry delay.
func (s *Store) commit(ctx context.Context, force bool) error {
	if s.paused.Load() && !force && s.now().Before(s.retryAt) {
		return nil
	}
	for {
		s.qmu.Lock()
		n, nb := 0, 0
		for n < len(s.queue) && n < commitMax && (n == 0 || nb+len(s.queue[n].v) <= commitMaxBytes) {
			nb += len(s.queue[n].v)
			n++
		}
		items := slices.Clone(s.queue[:n])
		s.inflight = items
		clear(s.queue[:n])
		s.queue = s.queue[n:]
		bytes := 0
		for _, it := range items {
			bytes += len(it.v)
		}
		s.queueBytes -= bytes
		sts := s.statuses
		s.statuses = nil
		s.qmu.Unlock()
		if len(items) == 0 && len(sts) == 0 {
			break
		}
		if err := s.writeBatch(ctx, items, sts); err != nil {
			s.requeue(items, sts)
			s.writeFailed(err)
			return fmt.Errorf("history: commit: %w", err)
		}
		s.writeOK()
	}
	if err := s.compactIfDue(ctx); err != nil {
		s.writeFailed(err)
		return fmt.Errorf("history: compact: %w", err)
	}
	if s.updateSize(ctx) > s.opts.MaxSize {
		if err := s.enforceMaxSize(ctx); err != nil {
			s.writeFailed(err)
			return fmt.Errorf("history: max size: %w", err)
		}
	}
	return nil
}

// requeue puts readings of a failed commit back in front of the queue,
// dropping the oldest past the bound.
func (s *Store) requeue(items []queued, sts []statusRec) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	s.inflight = nil
	for _, it := range items {
		s.queueBytes += len(it.v)
	}
	s.queue = append(items, s.queue...)
	s.trimQueueLocked()
	s.statuses = append(sts, s.statuses...)
	if over := len(s.statuses) - statusMax; over > 0 {
		s.statuses = s.statuses[over:]
		s.dropped.Add(uint64(over))
	}
}

func (s *Store) writeFailed(err error) {
	s.writeErrors.Add(1)
	s.retryAt = s.now().Add(s.backoff)
	s.backoff = min(2*s.backoff, 30*time.Second)
	if !s.paused.Swap(true) {
		reason := "write error"
		if isDiskFull(err) {
			reason = "disk full"
		}
		s.log.Error("history: writes paused, readings kept in memory and retried", "reason", reason, "err", err)
	}
}

func (s *Store) writeOK() {
	s.backoff = time.Second
	if s.paused.Swap(false) {
		s.log.Info("history: writes resumed")
	}
}

// section is one label's readings inside a batch.
type section struct {
	ser      *series // nil for a series created in this batch
	key      seriesKey
	id       int64
	ss       []sample
	lastSeq  uint64 // seq of the newest (ts, then arrival) reading
	newestTS int64
	maxSeq   uint64
}

// writeBatch commits items as one batch row (plus new series and status
// rows) in one transaction, then makes them visible as hot readings.
func (s *Store) writeBatch(ctx context.Context, items []queued, sts []statusRec) error {
	start := time.Now()
	bySeries := make(map[seriesKey]*section)
	var order []*section
	var batchMax uint64
	for _, it := range items {
		sec := bySeries[it.key]
		if sec == nil {
			sec = &section{key: it.key}
			bySeries[it.key] = sec
			order = append(order, sec)
		}
		// The newest reading: greatest ts, the later arrival on ties.
		if len(sec.ss) == 0 || it.ts >= sec.newestTS {
			sec.newestTS, sec.lastSeq = it.ts, it.seq
		}
		sec.ss = append(sec.ss, sample{ts: it.ts, v: it.v})
		sec.maxSeq = max(sec.maxSeq, it.seq)
		batchMax = max(batchMax, it.seq)
	}
	for _, sec := range order {
		sort.SliceStable(sec.ss, func(i, j int) bool { return sec.ss[i].ts < sec.ss[j].ts })
	}

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	s.mu.RLock()
	for _, sec := range order {
		sec.ser = s.byKey[sec.key]
	}
	s.mu.RUnlock()
	for _, sec := range order {
		if sec.ser != nil {
			sec.id = sec.ser.id
			continue
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO series(device, label) VALUES(?, ?)`, sec.key.device, sec.key.label)
		if err != nil {
			return fmt.Errorf("new series %s/%s: %w", sec.key.device, sec.key.label, err)
		}
		if sec.id, err = res.LastInsertId(); err != nil {
			return err
		}
	}
	var batchID int64
	if len(order) > 0 {
		blob := binary.AppendUvarint(nil, uint64(len(order)))
		for _, sec := range order {
			c := encodeChunk(nil, sec.ss)
			blob = binary.AppendUvarint(blob, uint64(sec.id))
			blob = binary.AppendUvarint(blob, sec.lastSeq)
			blob = binary.AppendUvarint(blob, uint64(len(c)))
			blob = append(blob, c...)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO batch(max_seq, data) VALUES(?, ?)`, int64(batchMax), blob)
		if err != nil {
			return fmt.Errorf("insert batch: %w", err)
		}
		if batchID, err = res.LastInsertId(); err != nil {
			return err
		}
	}
	for _, st := range sts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO status(device, ts, online, reason) VALUES(?, ?, ?, ?)`,
			st.device, st.ts, st.online, st.reason); err != nil {
			return fmt.Errorf("insert status: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.commitLatency.Store(int64(time.Since(start)))
	s.stored.Add(uint64(len(items)))
	if batchID > 0 {
		s.lastBatchID = batchID
	}
	s.mu.Lock()
	for _, sec := range order {
		s.addHotLocked(sec)
	}
	s.maxSeq = max(s.maxSeq, batchMax)
	// Hot now: no longer in flight (under mu, so a view sees each reading
	// in exactly one of the two).
	s.qmu.Lock()
	s.inflight = nil
	s.qmu.Unlock()
	s.mu.Unlock()
	return nil
}

// addHotLocked adds a committed section to its series' hot readings.
func (s *Store) addHotLocked(sec *section) {
	ser := sec.ser
	if ser == nil {
		ser = s.byKey[sec.key]
	}
	if ser == nil {
		ser = &series{id: sec.id, key: sec.key, hotSorted: true}
		s.byKey[sec.key] = ser
		s.byID[sec.id] = ser
	}
	if len(ser.hot) == 0 {
		ser.hotSorted = true
	}
	if len(ser.hot) > 0 && sec.ss[0].ts < ser.hot[len(ser.hot)-1].ts {
		ser.hotSorted = false
	}
	if s.hotCount == 0 {
		s.hotSince = s.now()
	}
	ser.hot = append(ser.hot, sec.ss...)
	s.hotCount += len(sec.ss)
	for _, x := range sec.ss {
		s.hotBytes += len(x.v)
	}
	last := sec.ss[len(sec.ss)-1]
	if !ser.hasNewest || last.ts >= ser.newest.ts {
		ser.newest, ser.newestSeq, ser.hasNewest = last, sec.lastSeq, true
	}
}

// decodeBatch splits a batch row into sections.
func decodeBatch(blob []byte, fn func(id int64, lastSeq uint64, chunk []byte) error) error {
	n, k := binary.Uvarint(blob)
	if k <= 0 {
		return errCorruptChunk
	}
	p := k
	for i := uint64(0); i < n; i++ {
		var f [3]uint64
		for j := range f {
			v, k := binary.Uvarint(blob[p:])
			if k <= 0 {
				return errCorruptChunk
			}
			f[j] = v
			p += k
		}
		if f[2] > uint64(len(blob)-p) {
			return errCorruptChunk
		}
		if err := fn(int64(f[0]), f[1], blob[p:p+int(f[2])]); err != nil {
			return err
		}
		p += int(f[2])
	}
	return nil
}

// load reads the series, their newest readings and the uncompacted batches
// (which become hot readings again, as before a crash or restart).
func (s *Store) load(ctx context.Context) error {
	s.byKey = make(map[seriesKey]*series)
	s.byID = make(map[int64]*series)
	s.hotCount, s.hotBytes, s.maxSeq, s.lastBatchID = 0, 0, 0, 0
	rows, err := s.w.QueryContext(ctx, `SELECT id, device, label, t1 FROM series`)
	if err != nil {
		return fmt.Errorf("load series: %w", err)
	}
	for rows.Next() {
		ser := &series{hotSorted: true}
		var t1 sql.NullInt64
		if err := rows.Scan(&ser.id, &ser.key.device, &ser.key.label, &t1); err != nil {
			rows.Close()
			return fmt.Errorf("load series: %w", err)
		}
		ser.t1, ser.hasT1 = t1.Int64, t1.Valid
		s.byKey[ser.key] = ser
		s.byID[ser.id] = ser
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load series: %w", err)
	}
	var maxSeq sql.NullInt64
	if err := s.w.QueryRowContext(ctx, `SELECT value FROM meta WHERE key='max_seq'`).Scan(&maxSeq); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("load max seq: %w", err)
	}
	s.maxSeq = uint64(maxSeq.Int64)
	for _, ser := range s.byID {
		if !ser.hasT1 {
			continue
		}
		var lastSeq int64
		var data []byte
		err := s.w.QueryRowContext(ctx, `SELECT last_seq, data FROM chunk WHERE series=? ORDER BY t0 DESC, t1 DESC LIMIT 1`, ser.id).Scan(&lastSeq, &data)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("load newest of %s/%s: %w", ser.key.device, ser.key.label, err)
		}
		ss, err := decodeChunk(data)
		if len(ss) == 0 {
			s.log.Warn("history: undecodable chunk", "device", ser.key.device, "label", ser.key.label, "err", err)
			continue
		}
		ser.newest, ser.newestSeq, ser.hasNewest = ss[len(ss)-1], uint64(lastSeq), true
	}
	rows, err = s.w.QueryContext(ctx, `SELECT id, max_seq, data FROM batch ORDER BY id`)
	if err != nil {
		return fmt.Errorf("load batches: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, bmax int64
		var blob []byte
		if err := rows.Scan(&id, &bmax, &blob); err != nil {
			return fmt.Errorf("load batches: %w", err)
		}
		s.lastBatchID = id
		s.maxSeq = max(s.maxSeq, uint64(bmax))
		err := decodeBatch(blob, func(sid int64, lastSeq uint64, c []byte) error {
			ser := s.byID[sid]
			if ser == nil {
				return nil
			}
			ss, err := decodeChunk(c)
			if len(ss) == 0 {
				return err
			}
			s.addHotLocked(&section{ser: ser, key: ser.key, id: sid, ss: ss, lastSeq: lastSeq})
			return nil
		})
		if err != nil {
			s.log.Warn("history: undecodable batch skipped", "batch", id, "err", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load batches: %w", err)
	}
	return nil
}
