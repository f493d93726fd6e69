package gateway

import (
	"maps"
	"slices"
	"strings"
)

// RestoreLast loads each label's newest stored reading (from the history
// store) for the local devices that exist now, and makes the next event's
// seq at least seqFloor+1, so a browser resuming from before the restart
// never mistakes new events for old ones. Call it before transports start.
// Restored values are marked (LabelValue.Restored) until a live value
// replaces them: they were already sent everywhere before the restart.
func (h *Hub) RestoreLast(last map[string]map[string]Record, seqFloor uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, labels := range last {
		for _, r := range labels {
			seqFloor = max(seqFloor, r.Seq)
		}
	}
	if seqFloor > h.seq {
		// Nothing from before the restart can be replayed (and the device
		// list may have changed): resuming from there gets a snapshot.
		h.seq = seqFloor
		h.replay.raiseFloor(seqFloor + 1)
	}
	for id, labels := range last {
		d, ok := h.devices[id]
		if !ok || d.info.Remote {
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(labels)) {
			r := labels[name]
			if attr, ok := strings.CutPrefix(name, AttrPrefix); ok {
				h.restoreAttrLocked(d, attr, r)
				continue
			}
			if checkReading(Reading{Label: name, Value: r.Value}) != nil {
				continue
			}
			ls, exists := d.labels[name]
			if !exists {
				if len(d.labels) >= h.maxLabels {
					continue
				}
				ls = &labelState{}
				d.labels[name] = ls
				d.labelOrder = append(d.labelOrder, name)
			}
			if grow := len(r.Value) - len(ls.last.Value); grow > 0 && h.lastBytes+grow > h.maxLast {
				if !exists {
					delete(d.labels, name)
					d.labelOrder = d.labelOrder[:len(d.labelOrder)-1]
				}
				continue
			}
			h.lastBytes += len(r.Value) - len(ls.last.Value)
			ls.last = Point{Value: append([]byte(nil), r.Value...), TS: r.TS, Seq: r.Seq}
			ls.kind, ls.restored = KindOf(r.Value), true
			if r.TS.After(d.lastSeen) {
				d.lastSeen = r.TS
			}
		}
	}
}
