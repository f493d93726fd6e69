package gateway

import (
	"encoding/json"
	"fmt"
	"time"
)

// SavedState is what the gateway keeps across restarts in state_dir: each
// local device's label history (so charts and last values survive a restart).
type SavedState struct {
	Seq     uint64                        `json:"seq"`
	Devices map[string]map[string][]Point `json:"devices"`
}

// UnmarshalJSON reads a point written by MarshalJSON.
func (p *Point) UnmarshalJSON(b []byte) error {
	var v struct {
		Value json.RawMessage `json:"value"`
		TS    string          `json:"ts"`
		Seq   uint64          `json:"seq"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	ts, err := time.Parse(time.RFC3339Nano, v.TS)
	if err != nil {
		return fmt.Errorf("point ts: %w", err)
	}
	if len(v.Value) == 0 || !json.Valid(v.Value) {
		return fmt.Errorf("point value is not JSON")
	}
	p.Value, p.TS, p.Seq = v.Value, ts, v.Seq
	return nil
}

// SaveState returns every local device's label history.
func (h *Hub) SaveState() SavedState {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := SavedState{Seq: h.seq, Devices: map[string]map[string][]Point{}}
	for id, d := range h.devices {
		if d.info.Remote || len(d.labels) == 0 {
			continue
		}
		labels := map[string][]Point{}
		for name, ls := range d.labels {
			labels[name] = ls.hist.points()
		}
		s.Devices[id] = labels
	}
	return s
}

// RestoreState loads saved label histories for the devices that exist now
// (devices removed from the config are skipped) and makes the next event's
// seq at least seqFloor+1, so a browser resuming from before the restart
// never mistakes new events for old ones. Call it before transports start.
func (h *Hub) RestoreState(s SavedState, seqFloor uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if seqFloor > h.seq {
		// Nothing from before the restart can be replayed (and the device
		// list may have changed): resuming from there gets a snapshot.
		h.seq = seqFloor
		h.replay.raiseFloor(seqFloor + 1)
	}
	for id, labels := range s.Devices {
		d, ok := h.devices[id]
		if !ok || d.info.Remote {
			continue
		}
		for name, pts := range labels {
			if checkReading(Reading{Label: name, Value: json.RawMessage("0")}) != nil || len(pts) == 0 {
				continue
			}
			if _, exists := d.labels[name]; !exists && len(d.labels) >= MaxLabelsPerDevice {
				continue
			}
			if len(pts) > h.labelHist {
				pts = pts[len(pts)-h.labelHist:]
			}
			last := pts[len(pts)-1]
			ls := &labelState{hist: labelHistory{pts: append([]Point(nil), pts...)}, last: last, kind: KindOf(last.Value)}
			if _, exists := d.labels[name]; !exists {
				d.labelOrder = append(d.labelOrder, name)
			}
			d.labels[name] = ls
			if ls.last.TS.After(d.lastSeen) {
				d.lastSeen = ls.last.TS
			}
		}
	}
}
