package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
)

// ExportFilter selects readings for Export; empty Device or Label = all,
// zero To = now.
type ExportFilter = gateway.ExportFilter

// Export calls fn with every stored raw reading in [From, To] matching the
// filter, in time order (equal times: older chunks first), streaming: only
// the chunks overlapping the current time are decoded at once. The Reading's
// Value is fn's to keep. fn's error stops the export and is returned.
func (s *Store) Export(ctx context.Context, f ExportFilter, fn func(Reading) error) error {
	from, to := unixMS(f.From), unixMS(f.To)
	if f.To.IsZero() {
		to = unixMS(s.now())
	}
	var ids []int64
	keys := make(map[int64]seriesKey)
	s.mu.RLock()
	for k, ser := range s.byKey {
		if (f.Device == "" || k.device == f.Device) && (f.Label == "" || k.label == f.Label) {
			ids = append(ids, ser.id)
			keys[ser.id] = k
		}
	}
	all := f.Device == "" && f.Label == ""
	s.mu.RUnlock()
	if len(ids) == 0 || to < from {
		return nil
	}
	if all {
		ids = nil // every series: no IN list
	}
	v, err := s.openView(ctx, ids)
	if err != nil {
		return err
	}
	defer v.close()
	m, err := v.rawMerger(ctx, ids, from, to)
	if err != nil {
		return err
	}
	defer m.close()
	for m.next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, ok := keys[m.cur.series]
		if !ok {
			continue // a series created after the filter was taken
		}
		if err := fn(Reading{Device: k.device, Label: k.label, TS: fromMS(m.cur.ts), Value: m.cur.value(nil)}); err != nil {
			return err
		}
	}
	if err := m.close(); err != nil {
		return fmt.Errorf("history: export: %w", err)
	}
	return nil
}

// Backup writes a consistent copy of the database to dst (which must not
// exist) while the store runs. Readings still queued are not in it.
func (s *Store) Backup(ctx context.Context, dst string) error {
	return BackupFile(ctx, s.opts.Path, dst)
}

// BackupFile writes a consistent copy of the history database at path to
// dst (which must not exist), from any process, while a gateway may be
// writing it: SQLite's WAL gives the copy one snapshot. It never writes to
// path.
func BackupFile(ctx context.Context, path, dst string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("history: backup: %w", err)
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("history: backup %s: %w", dst, os.ErrExist)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("history: backup %s: %w", dst, err)
	}
	db, err := sql.Open("sqlite", dsn(path, connBackup))
	if err != nil {
		return fmt.Errorf("history: backup %s: %w", dst, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("history: backup %s: %w", dst, err)
	}
	return db.Close()
}

// Interval is a span of one device status.
type Interval = gateway.Interval

// Availability lists a device's status intervals overlapping [from, to]:
// the status in force at from (its From clamped to from) and every change
// up to to, consecutive equal statuses merged.
func (s *Store) Availability(ctx context.Context, device string, from, to time.Time) ([]Interval, error) {
	f, t := unixMS(from), unixMS(to)
	if to.IsZero() {
		t = unixMS(s.now())
	}
	out := []Interval{}
	if t < f {
		return out, nil
	}
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("history: availability: %w", err)
	}
	defer tx.Rollback()
	type st struct {
		ts     int64
		online bool
		reason string
	}
	var list []st
	var first st
	err = tx.QueryRowContext(ctx, `SELECT ts, online, reason FROM status WHERE device=? AND ts <= ? ORDER BY ts DESC, id DESC LIMIT 1`, device, f).
		Scan(&first.ts, &first.online, &first.reason)
	if err == nil {
		first.ts = f
		list = append(list, first)
	}
	rows, err := tx.QueryContext(ctx, `SELECT ts, online, reason FROM status WHERE device=? AND ts > ? AND ts <= ? ORDER BY ts, id`, device, f, t)
	if err != nil {
		return nil, fmt.Errorf("history: availability: %w", err)
	}
	for rows.Next() {
		var x st
		if err := rows.Scan(&x.ts, &x.online, &x.reason); err != nil {
			rows.Close()
			return nil, err
		}
		if n := len(list); n > 0 && list[n-1].online == x.online && list[n-1].reason == x.reason {
			continue
		}
		list = append(list, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return out, nil
	}
	// The last interval ends at the next change after to, if any.
	var next int64
	var nextOnline bool
	var nextReason string
	hasNext := false
	r2, err := tx.QueryContext(ctx, `SELECT ts, online, reason FROM status WHERE device=? AND ts > ? ORDER BY ts, id`, device, t)
	if err != nil {
		return nil, fmt.Errorf("history: availability: %w", err)
	}
	last := list[len(list)-1]
	for r2.Next() {
		if err := r2.Scan(&next, &nextOnline, &nextReason); err != nil {
			r2.Close()
			return nil, err
		}
		if nextOnline != last.online || nextReason != last.reason {
			hasNext = true
			break
		}
	}
	r2.Close()
	for i, x := range list {
		iv := Interval{From: fromMS(x.ts), Online: x.online, Reason: x.reason}
		switch {
		case i+1 < len(list):
			end := fromMS(list[i+1].ts)
			iv.To = &end
		case hasNext:
			end := fromMS(next)
			iv.To = &end
		}
		out = append(out, iv)
	}
	return out, nil
}
