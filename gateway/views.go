package gateway

import (
	"encoding/json"
	"fmt"
	"slices"
)

// DeviceState is a device as the snapshot and /api/devices show it.
type DeviceState struct {
	ID         string                `json:"id"`
	Name       string                `json:"name"`
	Gateway    string                `json:"gateway"`
	Transport  string                `json:"transport"`
	Remote     bool                  `json:"remote,omitempty"`
	Source     string                `json:"source,omitempty"`
	Online     bool                  `json:"online"`
	Reason     string                `json:"reason,omitempty"`
	LastSeen   *string               `json:"last_seen"`
	Reconnects int                   `json:"reconnects"`
	Commands   []string              `json:"commands"`
	Labels     map[string]LabelValue `json:"labels"`
	// Info holds the board's attributes ($fw, $rssi, …) without the '$'.
	Info map[string]json.RawMessage `json:"info"`
	// The fleet view's figures: since when the device is online (or
	// offline), the link's remote address, readings in the last minute,
	// unusable frames since start.
	Since          *string `json:"since"`
	Addr           string  `json:"addr,omitempty"`
	ReadingsPerMin int     `json:"readings_per_min"`
	Malformed      uint64  `json:"malformed"`
	// Events counts accepted readings, for /metrics.
	Events uint64 `json:"-"`
}

// LabelValue is a label's last value and its kind.
type LabelValue struct {
	Value json.RawMessage `json:"value"`
	TS    string          `json:"ts"`
	Seq   uint64          `json:"seq"`
	Kind  Kind            `json:"kind"`
	// Restored: the value was recovered from the history store at start
	// and no newer one has arrived since (it was published before the
	// restart; the MQTT bridge does not publish it again).
	Restored bool `json:"-"`
}

// Snapshot returns every device's state and the seq it reflects.
func (h *Hub) Snapshot() (seq uint64, devices []DeviceState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq, h.statesLocked()
}

// statesLocked is every device's state, in the order they were added.
func (h *Hub) statesLocked() []DeviceState {
	devices := make([]DeviceState, 0, len(h.order))
	for _, id := range h.order {
		devices = append(devices, h.stateLocked(h.devices[id]))
	}
	return devices
}

// DeviceState returns one device's state.
func (h *Hub) DeviceState(id string) (DeviceState, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.devices[id]
	if !ok {
		return DeviceState{}, fmt.Errorf("device %s: %w", id, ErrUnknownDevice)
	}
	return h.stateLocked(d), nil
}

func (h *Hub) stateLocked(d *device) DeviceState {
	st := DeviceState{
		ID: d.info.ID, Name: d.info.Name, Gateway: d.info.Gateway, Transport: d.info.Transport,
		Remote: d.info.Remote, Source: d.info.Source, Online: d.online(), Reason: d.reason, Reconnects: d.reconnects,
		Commands: append([]string{}, d.info.Commands...), Labels: make(map[string]LabelValue, len(d.labels)),
		Events: d.events, Malformed: d.malformed, Info: d.infoLocked(), Addr: d.remoteAddr,
		ReadingsPerMin: d.rate.perMinute(h.now()),
	}
	if !d.lastSeen.IsZero() {
		s := FormatTime(d.lastSeen)
		st.LastSeen = &s
	}
	if !d.since.IsZero() {
		s := FormatTime(d.since)
		st.Since = &s
	}
	for name, ls := range d.labels {
		st.Labels[name] = LabelValue{Value: ls.last.Value, TS: FormatTime(ls.last.TS), Seq: ls.last.Seq, Kind: ls.kind, Restored: ls.restored}
	}
	return st
}

// online: a device is online while a transport (or, for a remote device,
// the MQTT bridge) holds a link for it.
func (d *device) online() bool { return d.link != nil }

// snapshotLocked is the snapshot message a new (or resuming too late)
// subscriber starts from, and every subscriber gets when devices change.
func (h *Hub) snapshotLocked() *Message {
	return newSnapshotMessage(h.gatewayID, h.seq, h.statesLocked())
}

// RecentLogs returns the last console lines of the given devices (every
// device when ids is empty), oldest first per device.
func (h *Hub) RecentLogs(ids []string) []*Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*Message
	for _, id := range h.order {
		if len(ids) > 0 && !slices.Contains(ids, id) {
			continue
		}
		out = append(out, h.devices[id].logs...)
	}
	return out
}

// Labels returns a device's labels in the order they were first seen.
func (h *Hub) Labels(id string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.devices[id]
	if !ok {
		return nil
	}
	return append([]string(nil), d.labelOrder...)
}
