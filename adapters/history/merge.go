package history

import (
	"container/heap"
	"context"
	"database/sql"
	"fmt"
	"math"
	"sort"
)

// view is a consistent read of the store: a read transaction whose snapshot
// was taken together with a copy of the hot readings, under Store.mu, so no
// reading is seen twice or missed while the writer compacts.
type view struct {
	tx  *sql.Tx
	hot map[int64][]sample // by series id, sorted, only the series asked for
}

// openView starts a view of the given series (all when ids is nil).
func (s *Store) openView(ctx context.Context, ids []int64) (*view, error) {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("history: read: %w", err)
	}
	v := &view{tx: tx, hot: make(map[int64][]sample)}
	s.mu.RLock()
	// The first read fixes the transaction's snapshot.
	var n int64
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM meta`).Scan(&n)
	if err == nil {
		add := func(ser *series) {
			if len(ser.hot) == 0 {
				return
			}
			h := make([]sample, len(ser.hot))
			copy(h, ser.hot)
			if !ser.hotSorted {
				sort.SliceStable(h, func(i, j int) bool { return h[i].ts < h[j].ts })
			}
			v.hot[ser.id] = h
		}
		if ids == nil {
			for _, ser := range s.byID {
				add(ser)
			}
		}
		for _, id := range ids {
			if ser := s.byID[id]; ser != nil {
				add(ser)
			}
		}
		s.addQueuedLocked(v, ids)
	}
	s.mu.RUnlock()
	if err != nil {
		tx.Rollback()
		return nil, fmt.Errorf("history: read: %w", err)
	}
	return v, nil
}

// addQueuedLocked adds the readings still waiting for the writer to v, so
// a chart or an export shows a reading as soon as it is accepted, not only
// once committed (up to CommitInterval later). Called under s.mu (read): a
// reading leaves the queue before it becomes hot, so none is seen twice (one
// being committed at this instant may be missed by this view only). A
// series that has never been committed has no id yet and is not shown.
func (s *Store) addQueuedLocked(v *view, ids []int64) {
	want := func(int64) bool { return true }
	if ids != nil {
		set := make(map[int64]bool, len(ids))
		for _, id := range ids {
			set[id] = true
		}
		want = func(id int64) bool { return set[id] }
	}
	grown := map[int64]bool{}
	s.qmu.Lock()
	for _, list := range [][]queued{s.inflight, s.queue} {
		for _, q := range list {
			ser := s.byKey[q.key]
			if ser == nil || !want(ser.id) {
				continue
			}
			v.hot[ser.id] = append(v.hot[ser.id], sample{ts: q.ts, v: q.v})
			grown[ser.id] = true
		}
	}
	s.qmu.Unlock()
	for id := range grown {
		h := v.hot[id]
		sort.SliceStable(h, func(i, j int) bool { return h[i].ts < h[j].ts })
	}
}

func (v *view) close() { v.tx.Rollback() }

// source is one ordered run of one series' readings: a chunk or hot data.
type source struct {
	series int64
	order  int // ties on ts: earlier sources (older chunks, then hot) first
	it     *chunkIter
	hot    []sample
	hi     int
	ts     int64
}

func (s *source) advance() bool {
	if s.it != nil {
		if !s.it.next() {
			return false
		}
		s.ts = s.it.TS()
		return true
	}
	if s.hi+1 >= len(s.hot) {
		return false
	}
	s.hi++
	s.ts = s.hot[s.hi].ts
	return true
}

func (s *source) value(dst []byte) []byte {
	if s.it != nil {
		return s.it.Value(dst)
	}
	return append(dst, s.hot[s.hi].v...)
}

// valueRef returns the value without copying when possible (valid until the
// source advances for numeric chunks).
func (s *source) valueRef(buf []byte) []byte {
	if s.it != nil {
		if s.it.kind == kindGeneric {
			return s.it.dict[s.it.idx]
		}
		return s.it.Value(buf[:0])
	}
	return s.hot[s.hi].v
}

func (s *source) float() (float64, bool) {
	if s.it != nil {
		return s.it.Float()
	}
	return jsonNumber(s.hot[s.hi].v)
}

type sourceHeap []*source

func (h sourceHeap) Len() int { return len(h) }
func (h sourceHeap) Less(i, j int) bool {
	if h[i].ts != h[j].ts {
		return h[i].ts < h[j].ts
	}
	return h[i].order < h[j].order
}
func (h sourceHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *sourceHeap) Push(x any)   { *h = append(*h, x.(*source)) }
func (h *sourceHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// merger yields the readings of chunk rows (series, t0, data ordered by t0)
// and hot runs in time order, within [lo, hi]. Only chunks that overlap the
// current position are decoded at once, so memory stays bounded.
type merger struct {
	rows   *sql.Rows
	peekOK bool
	peek   struct {
		series, t0 int64
		data       []byte
	}
	h      sourceHeap
	cur    *source
	lo, hi int64
	order  int
	hot    []*source
	err    error
}

func newMerger(rows *sql.Rows, hot map[int64][]sample, lo, hi int64) *merger {
	m := &merger{rows: rows, lo: lo, hi: hi}
	for id, h := range hot {
		i := sort.Search(len(h), func(i int) bool { return h[i].ts >= lo })
		j := sort.Search(len(h), func(i int) bool { return h[i].ts > hi })
		if i < j {
			// order: hot after every chunk (they are newer arrivals).
			m.hot = append(m.hot, &source{series: id, hot: h[i:j], hi: -1, order: math.MaxInt})
		}
	}
	for _, src := range m.hot {
		if src.advance() {
			heap.Push(&m.h, src)
		}
	}
	m.fetch()
	return m
}

func (m *merger) fetch() {
	m.peekOK = false
	if m.rows == nil || m.err != nil {
		return
	}
	if m.rows.Next() {
		m.peek.data = nil
		if err := m.rows.Scan(&m.peek.series, &m.peek.t0, &m.peek.data); err != nil {
			m.err = err
			return
		}
		m.peekOK = true
		return
	}
	m.err = m.rows.Err()
}

// next advances to the next reading in range; the current one is m.cur.
func (m *merger) next() bool {
	if m.cur != nil {
		if m.cur.advance() {
			heap.Push(&m.h, m.cur)
		}
		m.cur = nil
	}
	for {
		// Open every chunk that starts before the earliest pending reading.
		for m.peekOK && (len(m.h) == 0 || m.peek.t0 <= m.h[0].ts) {
			it, err := newChunkIter(m.peek.data)
			if err == nil {
				m.order++
				src := &source{series: m.peek.series, it: it, order: m.order}
				if src.advance() {
					heap.Push(&m.h, src)
				}
			}
			m.fetch()
		}
		if len(m.h) == 0 {
			return false
		}
		src := heap.Pop(&m.h).(*source)
		if src.ts > m.hi {
			return false // everything else is later still
		}
		if src.ts < m.lo {
			if src.advance() {
				heap.Push(&m.h, src)
			}
			continue
		}
		m.cur = src
		return true
	}
}

func (m *merger) close() error {
	if m.rows != nil {
		m.rows.Close()
	}
	return m.err
}

// rawMerger reads the raw readings of the given series in [lo, hi].
func (v *view) rawMerger(ctx context.Context, ids []int64, lo, hi int64) (*merger, error) {
	q := `SELECT series, t0, data FROM chunk WHERE t0 >= ? AND t0 <= ? AND t1 >= ?`
	args := []any{lo - chunkSpan, hi, lo}
	if ids != nil {
		if len(ids) == 1 {
			q += ` AND series = ?`
		} else {
			q += ` AND series IN (` + placeholders(len(ids)) + `)`
		}
		for _, id := range ids {
			args = append(args, id)
		}
	}
	q += ` ORDER BY t0`
	rows, err := v.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("history: read chunks: %w", err)
	}
	hot := v.hot
	if ids != nil {
		hot = make(map[int64][]sample)
		for _, id := range ids {
			if h, ok := v.hot[id]; ok {
				hot[id] = h
			}
		}
	}
	return newMerger(rows, hot, lo, hi), nil
}

func placeholders(n int) string {
	b := make([]byte, 0, 2*n)
	for i := 0; i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '?')
	}
	return string(b)
}
