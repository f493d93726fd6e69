package gateway

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Board attributes ($fw, $rssi, $uptime, …, DESIGN.md "Attributes") describe
// the board, not a sensor. The wire format marks them (Reading.Attr); the hub
// keeps each device's newest ones under "info", bounded like labels
// (limits.labels_per_device names, limits.value_bytes each, inside the
// total of last values), records them in history as "$name", and tells
// subscribers with an info message holding all of the device's attributes.
// Attributes have no seq: they are not events, and a resuming browser sees
// them in the next snapshot.

// attrState is one attribute's newest value.
type attrState struct {
	value    json.RawMessage
	ts       time.Time
	restored bool
}

// publishAttrLocked takes one attribute reading; it reports whether the
// device's info changed. Records for the history store are appended to recs.
func (h *Hub) publishAttrLocked(d *device, r Reading, now time.Time, recs *[]Record) bool {
	if err := checkReading(r); err != nil {
		h.counters.DroppedReadings.Add(1)
		h.log.Debug("attribute dropped", "device", d.info.ID, "name", Truncate(r.Label, 40), "err", err)
		return false
	}
	if len(r.Value) > h.valueBytes {
		h.counters.DroppedReadings.Add(1)
		h.log.Debug("attribute dropped: value too long", "device", d.info.ID, "name", Truncate(r.Label, 40), "bytes", len(r.Value), "limit", h.valueBytes)
		return false
	}
	value := append(json.RawMessage(nil), r.Value...)
	ts := h.readingTime(r.TS, now)
	rec := Record{Device: d.info.ID, Label: AttrPrefix + r.Label, TS: ts, Value: value}
	as, ok := d.attrs[r.Label]
	if ok && ts.Before(as.ts) {
		h.counters.Backfilled.Add(1)
		*recs = append(*recs, rec)
		return false
	}
	if !ok && len(d.attrs) >= h.maxLabels {
		h.counters.DroppedReadings.Add(1)
		h.log.Debug("attribute dropped: too many attributes", "device", d.info.ID, "name", Truncate(r.Label, 40))
		return false
	}
	if grow := len(value) - len(as.value); grow > 0 && h.lastBytes+grow > h.maxLast {
		h.counters.DroppedReadings.Add(1)
		return false
	}
	h.lastBytes += len(value) - len(as.value)
	if d.attrs == nil {
		d.attrs = map[string]attrState{}
	}
	changed := !ok || as.restored || string(as.value) != string(value)
	d.attrs[r.Label] = attrState{value: value, ts: ts}
	*recs = append(*recs, rec)
	return changed
}

// infoLocked is a copy of the device's attributes, names without '$'.
func (d *device) infoLocked() map[string]json.RawMessage {
	info := make(map[string]json.RawMessage, len(d.attrs))
	for name, as := range d.attrs {
		info[name] = as.value
	}
	return info
}

// restoreAttrLocked sets an attribute recovered from the history store at
// start (name without '$'), or seeded by SetInfo; it reports whether it was
// kept (within the bounds).
func (h *Hub) restoreAttrLocked(d *device, name string, r Record) bool {
	if checkReading(Reading{Label: name, Value: r.Value}) != nil || len(r.Value) > h.valueBytes {
		return false
	}
	as, ok := d.attrs[name]
	if !ok && len(d.attrs) >= h.maxLabels {
		return false
	}
	if grow := len(r.Value) - len(as.value); grow > 0 && h.lastBytes+grow > h.maxLast {
		return false
	}
	h.lastBytes += len(r.Value) - len(as.value)
	if d.attrs == nil {
		d.attrs = map[string]attrState{}
	}
	d.attrs[name] = attrState{value: append(json.RawMessage(nil), r.Value...), ts: r.TS, restored: true}
	return true
}

// SetInfo seeds a local device's attributes (names without '$') with what
// the gateway knew of its board before it was a device: the attributes it
// showed while it waited for adoption. Bounded like attributes (names per
// device, bytes per value, the total of last values); not recorded in
// history, and the board's own next report replaces them (and is then
// announced even when equal). Subscribers get an info message. It reports
// whether the device exists and anything was kept.
func (h *Hub) SetInfo(id string, info map[string]json.RawMessage) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.devices[id]
	if !ok || d.info.Remote || h.closed || len(info) == 0 {
		return false
	}
	now := h.now()
	kept := false
	for _, name := range slices.Sorted(maps.Keys(info)) {
		kept = h.restoreAttrLocked(d, name, Record{TS: now, Value: info[name]}) || kept
	}
	if kept {
		h.broadcastLocked(newInfoMessage(id, d.infoLocked(), now))
	}
	return kept
}

// newInfoMessage is a device's attributes after a change:
// {"type":"info","device":D,"info":{"fw":"1.2.0","rssi":-61,…},"ts":T}.
func newInfoMessage(device string, info map[string]json.RawMessage, ts time.Time) *Message {
	m := &Message{Kind: KindInfo, Device: device, TS: ts, Info: info}
	// Sorted keys: the same info encodes the same way (MQTT's retained
	// info message changes only when an attribute does).
	keys := slices.Sorted(maps.Keys(info))
	ordered := make([]byte, 0, 64*len(keys))
	ordered = append(ordered, '{')
	for i, k := range keys {
		if i > 0 {
			ordered = append(ordered, ',')
		}
		ordered = append(ordered, mustJSON(k)...)
		ordered = append(ordered, ':')
		ordered = append(ordered, info[k]...)
	}
	ordered = append(ordered, '}')
	m.Value = ordered
	m.Data = mustJSON(struct {
		Type   string          `json:"type"`
		Device string          `json:"device"`
		Info   json.RawMessage `json:"info"`
		TS     string          `json:"ts"`
	}{"info", device, ordered, FormatTime(ts)})
	return m
}

// Info returns a device's attributes (names without '$') and whether the
// device exists.
func (h *Hub) Info(id string) (map[string]json.RawMessage, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.devices[id]
	if !ok {
		return nil, false
	}
	return d.infoLocked(), true
}

// SetRemoteInfo replaces the attributes of a remote device (one imported
// from another gateway, whose retained info it is; names without '$') with
// info; a nil or empty info clears them. info is taken whole or not at all:
// more names than limits.labels_per_device, a bad name or value, a value
// over limits.value_bytes, or growth beyond the hub's total of last values
// is an error and leaves the device's attributes as they were. When they
// change, subscribers get an info message, and the attributes that changed
// are recorded in history as "$name" (as the remote device's readings are).
func (h *Hub) SetRemoteInfo(id string, info map[string]json.RawMessage) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.devices[id]
	if !ok {
		return fmt.Errorf("device %s: %w", id, ErrUnknownDevice)
	}
	if !d.info.Remote {
		return fmt.Errorf("device %s is not a remote device: %w", id, ErrNotAllowed)
	}
	if len(info) > h.maxLabels {
		return fmt.Errorf("device %s: %d attributes, the limit is %d", id, len(info), h.maxLabels)
	}
	size, old := 0, 0
	for name, v := range info {
		if err := checkReading(Reading{Label: name, Value: v}); err != nil {
			return fmt.Errorf("device %s: attribute %q: %w", id, Truncate(name, 40), err)
		}
		if len(v) > h.valueBytes {
			return fmt.Errorf("device %s: attribute %q: value of %d bytes, the limit is %d", id, Truncate(name, 40), len(v), h.valueBytes)
		}
		size += len(v)
	}
	for _, as := range d.attrs {
		old += len(as.value)
	}
	if grow := size - old; grow > 0 && h.lastBytes+grow > h.maxLast {
		return fmt.Errorf("device %s: the gateway holds its limit of last values", id)
	}
	changed := len(info) != len(d.attrs)
	for name, v := range info {
		if as, ok := d.attrs[name]; !ok || as.restored || string(as.value) != string(v) {
			changed = true
			break
		}
	}
	if !changed {
		return nil
	}
	now := h.now()
	attrs := make(map[string]attrState, len(info))
	var recs []Record
	for name, v := range info {
		as, ok := d.attrs[name]
		if !ok || string(as.value) != string(v) {
			as = attrState{value: append(json.RawMessage(nil), v...), ts: now}
			recs = append(recs, Record{Device: id, Label: AttrPrefix + name, TS: now, Value: as.value})
		}
		as.restored = false
		attrs[name] = as
	}
	h.lastBytes += size - old
	d.attrs = attrs
	h.broadcastLocked(newInfoMessage(id, d.infoLocked(), now))
	if h.history != nil && len(recs) > 0 {
		slices.SortFunc(recs, func(a, b Record) int { return strings.Compare(a.Label, b.Label) })
		h.history.Append(recs...)
	}
	return nil
}
