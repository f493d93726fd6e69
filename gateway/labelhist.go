package gateway

import "fmt"

// Each label's recent points, for the dashboard's charts and
// GET /api/devices/{id}/history. This in-memory ring (and persist.go, which
// keeps it across restarts) is what the on-disk history store replaces.

// DefaultLabelHistoryLen is how many points per label feed the charts.
const DefaultLabelHistoryLen = 600

// labelHistory is a ring of a label's most recent points.
type labelHistory struct {
	pts  []Point
	head int // index of the oldest point once pts is full
}

// add appends p, dropping the oldest point once the ring holds n.
func (r *labelHistory) add(p Point, n int) {
	if len(r.pts) < n {
		r.pts = append(r.pts, p)
		return
	}
	r.pts[r.head] = p
	r.head = (r.head + 1) % len(r.pts)
}

// points returns a copy of the points, oldest first.
func (r *labelHistory) points() []Point {
	pts := make([]Point, 0, len(r.pts))
	pts = append(pts, r.pts[r.head:]...)
	return append(pts, r.pts[:r.head]...)
}

// History returns a label's recent points, oldest first. An empty label
// returns every label's points.
func (h *Hub) History(id, label string) (map[string][]Point, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.devices[id]
	if !ok {
		return nil, fmt.Errorf("device %s: %w", id, ErrUnknownDevice)
	}
	out := map[string][]Point{}
	for name, ls := range d.labels {
		if label != "" && name != label {
			continue
		}
		out[name] = ls.hist.points()
	}
	return out, nil
}
