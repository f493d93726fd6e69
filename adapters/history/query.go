package history

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"

	"github.com/esp32gw/esp32gw/gateway"
)

// Query asks for one label's readings in [From, To] (To zero = now).
type Query = gateway.HistoryQuery

// Point is one point of a chart: {TS, Value} for raw and changes, the
// bucket's Min, Max, Mean, Last and Count for buckets (TS = bucket start).
type Point = gateway.HistoryPoint

// Result is a query's answer, oldest first.
type Result = gateway.HistoryResult

const (
	defaultMaxPoints = 1000
	maxMaxPoints     = 10000
	second           = int64(1000)
	minute           = 60 * second
	hour             = 60 * minute
	day              = 24 * hour
)

// niceWidths are the bucket widths, in ms, smallest first; past the list
// the width keeps doubling.
var niceWidths = []int64{
	second, 2 * second, 5 * second, 10 * second, 30 * second,
	minute, 2 * minute, 5 * minute, 10 * minute, 30 * minute,
	hour, 2 * hour, 6 * hour, 12 * hour, day, 7 * day,
}

func bucketCount(from, to, w int64) int64 { return floorDiv(to, w) - floorDiv(from, w) + 1 }

// chooseWidth is the smallest nice width giving at most maxPoints buckets
// (aligned on multiples of the width since the unix epoch) over [from, to].
func chooseWidth(from, to int64, maxPoints int) int64 {
	for _, w := range niceWidths {
		if bucketCount(from, to, w) <= int64(maxPoints) {
			return w
		}
	}
	w := niceWidths[len(niceWidths)-1]
	for bucketCount(from, to, w) > int64(maxPoints) {
		w *= 2
	}
	return w
}

func formatWidth(w int64) string {
	switch {
	case w%day == 0:
		return strconv.FormatInt(w/day, 10) + "d"
	case w%hour == 0:
		return strconv.FormatInt(w/hour, 10) + "h"
	case w%minute == 0:
		return strconv.FormatInt(w/minute, 10) + "m"
	}
	return strconv.FormatInt(w/second, 10) + "s"
}

func clampPoints(n int) int {
	if n <= 0 {
		return defaultMaxPoints
	}
	return min(n, maxMaxPoints)
}

// lookup finds a series. A label whose first readings still wait for the
// writer has no series yet: they are committed now (once per new label), so
// a chart asked for right after a label appears is not empty.
func (s *Store) lookup(ctx context.Context, device, label string) (id int64, numeric bool, ok bool) {
	id, numeric, ok = s.lookupCommitted(device, label)
	if !ok && s.queued(seriesKey{device, label}) && s.Flush(ctx) == nil {
		id, numeric, ok = s.lookupCommitted(device, label)
	}
	return id, numeric, ok
}

// queued reports whether readings of key wait for the writer or are being
// committed.
func (s *Store) queued(key seriesKey) bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	for _, list := range [][]queued{s.inflight, s.queue} {
		for _, q := range list {
			if q.key == key {
				return true
			}
		}
	}
	return false
}

func (s *Store) lookupCommitted(device, label string) (id int64, numeric bool, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ser := s.byKey[seriesKey{device, label}]
	if ser == nil {
		return 0, false, false
	}
	if ser.hasNewest {
		_, numeric = jsonNumber(ser.newest.v)
	}
	return ser.id, numeric, true
}

// Query answers a chart request: the raw readings when they fit in
// MaxPoints, else equal buckets of a numeric label (from raw, minute or hour
// data, the coarsest that is exact for the width and still held), else the
// changes of a non-numeric label. A label is numeric when its newest value
// is a JSON number. Buckets are whole: a bucket that overlaps [From, To]
// counts all its readings. Unknown device or label: an empty result.
func (s *Store) Query(ctx context.Context, q Query) (Result, error) {
	maxPoints := clampPoints(q.MaxPoints)
	to := unixMS(q.To)
	if q.To.IsZero() {
		to = unixMS(s.now())
	}
	from := unixMS(q.From)
	id, numeric, ok := s.lookup(ctx, q.Device, q.Label)
	if !ok || to < from {
		return Result{Resolution: "raw", Points: []Point{}}, nil
	}
	v, err := s.openView(ctx, []int64{id})
	if err != nil {
		return Result{}, err
	}
	defer v.close()
	n, covered, err := v.countRaw(ctx, id, from, to, maxPoints+1)
	if err != nil {
		return Result{}, err
	}
	if n <= maxPoints && covered {
		pts, err := v.rawPoints(ctx, id, from, to)
		return Result{Resolution: "raw", Points: pts}, err
	}
	if !numeric {
		pts, err := v.changes(ctx, id, from, to, maxPoints)
		return Result{Resolution: "changes", Points: pts}, err
	}
	w := chooseWidth(from, to, maxPoints)
	tier := 0
	switch {
	case w >= hour:
		tier = tierHour
	case w >= minute:
		tier = tierMinute
	}
	now := unixMS(s.now())
	if tier == 0 && !covered {
		w, tier = max(w, minute), tierMinute
	}
	if tier == tierMinute && from < now-s.opts.Minute.Milliseconds() {
		w, tier = max(w, hour), tierHour
	}
	pts, err := v.buckets(ctx, id, from, to, w, tier)
	return Result{Resolution: formatWidth(w), Points: pts}, err
}

// countRaw counts raw readings in [from, to], stopping past limit, and
// reports whether raw data still covers the range (no rollups of deleted
// raw readings inside it).
func (v *view) countRaw(ctx context.Context, id, from, to int64, limit int) (n int, covered bool, err error) {
	for _, x := range v.hot[id] {
		if x.ts >= from && x.ts <= to {
			n++
		}
	}
	rows, err := v.tx.QueryContext(ctx, `SELECT id, t0, t1, n FROM chunk WHERE series=? AND t0 >= ? AND t0 <= ? AND t1 >= ?`, id, from-chunkSpan, to, from)
	if err != nil {
		return 0, false, fmt.Errorf("history: count: %w", err)
	}
	var partial []int64
	for rows.Next() && n < limit {
		var cid, t0, t1, cn int64
		if err := rows.Scan(&cid, &t0, &t1, &cn); err != nil {
			rows.Close()
			return 0, false, err
		}
		if t0 >= from && t1 <= to {
			n += int(cn)
		} else {
			partial = append(partial, cid)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, false, err
	}
	for _, cid := range partial {
		if n >= limit {
			break
		}
		var data []byte
		if err := v.tx.QueryRowContext(ctx, `SELECT data FROM chunk WHERE id=?`, cid).Scan(&data); err != nil {
			return 0, false, err
		}
		it, err := newChunkIter(data)
		if err != nil {
			continue
		}
		for it.next() {
			if t := it.TS(); t >= from && t <= to {
				n++
			}
		}
	}
	// Raw data is missing where a whole rollup period before the oldest
	// raw reading holds data.
	oldest := int64(maxTS)
	var o sql.NullInt64
	if err := v.tx.QueryRowContext(ctx, `SELECT min(t0) FROM chunk WHERE series=?`, id).Scan(&o); err != nil {
		return 0, false, err
	}
	if o.Valid {
		oldest = o.Int64
	}
	if h := v.hot[id]; len(h) > 0 {
		oldest = min(oldest, h[0].ts)
	}
	if from >= oldest {
		return n, true, nil
	}
	for _, tier := range []int{tierMinute, tierHour} {
		p := tiers[tier].period
		var one int
		err := v.tx.QueryRowContext(ctx, `SELECT 1 FROM rollup WHERE series=? AND tier=? AND t0 >= ? AND t0 <= ? AND t0 <= ? LIMIT 1`,
			id, tier, floorTo(from, p), oldest-p, to).Scan(&one)
		if err == nil {
			return n, false, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return 0, false, err
		}
	}
	return n, true, nil
}

func (v *view) rawPoints(ctx context.Context, id, from, to int64) ([]Point, error) {
	m, err := v.rawMerger(ctx, []int64{id}, from, to)
	if err != nil {
		return nil, err
	}
	pts := []Point{}
	for m.next() {
		pts = append(pts, Point{TS: fromMS(m.cur.ts), Value: m.cur.value(nil)})
	}
	return pts, m.close()
}

// changes lists the points where the value differs from the one before,
// starting with the value in force at from (stamped from); the most recent
// max are kept.
func (v *view) changes(ctx context.Context, id, from, to int64, limit int) ([]Point, error) {
	ring := make([]Point, 0, min(limit, 1024))
	start := 0 // index of the oldest in ring once full
	push := func(p Point) {
		if len(ring) < limit {
			ring = append(ring, p)
			return
		}
		ring[start] = p
		start = (start + 1) % limit
	}
	var prev []byte
	if ts, val, ok, err := v.valueAt(ctx, id, from); err != nil {
		return nil, err
	} else if ok {
		push(Point{TS: fromMS(max(ts, from)), Value: val})
		prev = val
	}
	m, err := v.rawMerger(ctx, []int64{id}, from+1, to)
	if err != nil {
		return nil, err
	}
	var buf []byte
	for m.next() {
		val := m.cur.valueRef(buf)
		if prev != nil && bytes.Equal(val, prev) {
			continue
		}
		prev = slices.Clone(val)
		push(Point{TS: fromMS(m.cur.ts), Value: prev})
	}
	if err := m.close(); err != nil {
		return nil, err
	}
	out := make([]Point, 0, len(ring))
	out = append(out, ring[start:]...)
	return append(out, ring[:start]...), nil
}

// valueAt finds the newest reading at or before ts.
func (v *view) valueAt(ctx context.Context, id, ts int64) (int64, []byte, bool, error) {
	var bestTS int64
	var best []byte
	found := false
	for _, x := range v.hot[id] {
		if x.ts <= ts && (!found || x.ts >= bestTS) {
			bestTS, best, found = x.ts, x.v, true
		}
	}
	rows, err := v.tx.QueryContext(ctx, `SELECT t0, t1, data FROM chunk WHERE series=? AND t0 <= ? ORDER BY t0 DESC`, id, ts)
	if err != nil {
		return 0, nil, false, fmt.Errorf("history: value at: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t0, t1 int64
		var data []byte
		if err := rows.Scan(&t0, &t1, &data); err != nil {
			return 0, nil, false, err
		}
		// Chunks come newest start first and span at most chunkSpan, so
		// none starting that long before the best can beat it.
		if found && t0+chunkSpan < bestTS {
			break
		}
		if found && t1 < bestTS {
			continue
		}
		it, err := newChunkIter(data)
		if err != nil {
			continue
		}
		for it.next() {
			t := it.TS()
			if t > ts {
				break
			}
			if !found || t > bestTS {
				bestTS, best, found = t, it.Value(nil), true
			}
		}
	}
	return bestTS, slices.Clone(best), found, rows.Err()
}

// buckets aggregates the numeric readings into buckets of width w, from the
// given tier (0 = raw) plus the hot readings.
func (v *view) buckets(ctx context.Context, id, from, to, w int64, tier int) ([]Point, error) {
	first := floorTo(from, w)
	nb := bucketCount(from, to, w)
	end := first + nb*w
	aggs := make([]agg, nb)
	add := func(ts int64, a agg) {
		if ts < first || ts >= end {
			return
		}
		aggs[(ts-first)/w].merge(a)
	}
	if tier == 0 {
		m, err := v.rawMerger(ctx, []int64{id}, first, end-1)
		if err != nil {
			return nil, err
		}
		for m.next() {
			if f, ok := m.cur.float(); ok {
				aggs[(m.cur.ts-first)/w].add(m.cur.ts, f)
			}
		}
		if err := m.close(); err != nil {
			return nil, err
		}
	} else {
		spec := tiers[tier]
		rows, err := v.tx.QueryContext(ctx, `SELECT t0, data FROM rollup WHERE series=? AND tier=? AND t0 >= ? AND t0 < ? ORDER BY t0`,
			id, tier, floorTo(first, spec.period), end)
		if err != nil {
			return nil, fmt.Errorf("history: read rollups: %w", err)
		}
		slots := make([]agg, spec.slots())
		for rows.Next() {
			var t0 int64
			var data []byte
			if err := rows.Scan(&t0, &data); err != nil {
				rows.Close()
				return nil, err
			}
			if decodeRollup(data, t0, spec, slots) != nil {
				continue
			}
			for i, a := range slots {
				if a.count > 0 {
					add(t0+int64(i)*spec.slot, a)
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		for _, x := range v.hot[id] {
			if f, ok := jsonNumber(x.v); ok {
				var a agg
				a.add(x.ts, f)
				add(x.ts, a)
			}
		}
	}
	pts := []Point{}
	for i, a := range aggs {
		if a.count == 0 {
			continue
		}
		pts = append(pts, Point{
			TS:  fromMS(first + int64(i)*w),
			Min: a.min, Max: a.max, Mean: a.sum / float64(a.count), Last: a.last,
			Count: int(a.count),
		})
	}
	return pts, nil
}

// Recent returns the label's most recent n raw readings (n at most 10000),
// oldest first.
func (s *Store) Recent(ctx context.Context, device, label string, n int) ([]Point, error) {
	n = clampPoints(n)
	id, _, ok := s.lookup(ctx, device, label)
	if !ok {
		return []Point{}, nil
	}
	v, err := s.openView(ctx, []int64{id})
	if err != nil {
		return nil, err
	}
	defer v.close()
	var got []sample
	got = append(got, v.hot[id]...)
	rows, err := v.tx.QueryContext(ctx, `SELECT t0, t1, data FROM chunk WHERE series=? ORDER BY t0 DESC`, id)
	if err != nil {
		return nil, fmt.Errorf("history: recent: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t0, t1 int64
		var data []byte
		if err := rows.Scan(&t0, &t1, &data); err != nil {
			return nil, err
		}
		if len(got) >= n {
			sort.SliceStable(got, func(i, j int) bool { return got[i].ts > got[j].ts })
			got = got[:n]
			// Chunks span at most chunkSpan: none starting that long
			// before the oldest kept can hold a newer reading.
			if t0+chunkSpan < got[n-1].ts {
				break
			}
			if t1 < got[n-1].ts {
				continue
			}
		}
		ss, _ := decodeChunk(data)
		got = append(got, ss...)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(got, func(i, j int) bool { return got[i].ts > got[j].ts })
	got = got[:min(n, len(got))]
	pts := make([]Point, len(got))
	for i, x := range got {
		pts[len(got)-1-i] = Point{TS: fromMS(x.ts), Value: slices.Clone(x.v)}
	}
	return pts, nil
}

// Labels lists a device's labels (those ever stored), sorted.
func (s *Store) Labels(ctx context.Context, device string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []string{}
	for k := range s.byKey {
		if k.device == device {
			out = append(out, k.label)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Last returns every label's newest stored reading (value, ts, seq) and the
// highest seq stored, for restart recovery.
func (s *Store) Last(ctx context.Context) (map[string]map[string]Reading, uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	last := make(map[string]map[string]Reading)
	for k, ser := range s.byKey {
		if !ser.hasNewest {
			continue
		}
		m := last[k.device]
		if m == nil {
			m = make(map[string]Reading)
			last[k.device] = m
		}
		m[k.label] = Reading{Device: k.device, Label: k.label, TS: fromMS(ser.newest.ts), Value: slices.Clone(ser.newest.v), Seq: ser.newestSeq}
	}
	return last, s.maxSeq, nil
}
