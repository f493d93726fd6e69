package web

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/gateway/wire"
)

// handleCompat serves GET /ws/devices/{id}: the board's own dialect, so a page
// written for an ESP32 works unchanged against the gateway. On connect it
// sends every label's current value, then every new reading, each as exactly
// {"label":L,"value":V}; text frames from the page are commands, at most
// gateway.CommandRate a second per socket after a burst of
// gateway.CommandBurst (further ones are dropped: the dialect has no error
// frame). Binary frames are ignored.
func (s *Server) handleCompat(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	r, ok := s.admit(w, r)
	if !ok {
		return
	}
	if _, found := s.hub.Device(id); !found {
		writeError(w, http.StatusNotFound, "unknown device "+id)
		return
	}
	ws, lc, err := upgrade(w, r)
	if err != nil {
		return
	}
	c := s.newConn(ws, lc, func(m *gateway.Message) ([]byte, bool) {
		if m.Kind != gateway.KindEvent || m.Device != id {
			return nil, false
		}
		return textFrame(readingFrame(m.Label, m.Value)), true
	})
	sub, first, err := s.hub.SubscribeQueue(-1, 0, c.kick)
	if err != nil {
		closeNow(ws, websocket.CloseGoingAway, "gateway shutting down")
		return
	}
	sub.SetFilter([]string{id}, false)
	var initial []*gateway.Message
	for _, m := range first { // one snapshot: turn this device's labels into readings
		initial = append(initial, snapshotReadings(m, id)...)
	}
	c.sub = sub
	c.unbind = s.bindConn(r, c) // logout and a new token close it
	c.quiet = true              // the board dialect has no error frames
	c.handle = func(data []byte) {
		if c.viewer {
			s.log.Debug("compat command from a viewer refused", "device", id)
			return
		}
		// The same per-socket rate as /ws; the dialect has no error frame,
		// so a command over it is dropped (and logged at Debug).
		if !c.commands.Allow(time.Now()) {
			s.log.Debug("compat command rate-limited", "device", id, "addr", r.RemoteAddr)
			return
		}
		cmd := wire.ParseCommand(data)
		if err := s.hub.Command(c.ctx, id, cmd); err != nil {
			s.log.Debug("compat command refused", "device", id, "err", err)
		}
	}
	c.run(initial)
}

func readingFrame(label string, value json.RawMessage) []byte {
	b, _ := json.Marshal(struct {
		Label string          `json:"label"`
		Value json.RawMessage `json:"value"`
	}{label, value})
	return b
}

// snapshotReadings turns a snapshot message into one event message per label
// of device id, ordered by their seq.
func snapshotReadings(m *gateway.Message, id string) []*gateway.Message {
	if m.Kind != gateway.KindSnapshot {
		return []*gateway.Message{m}
	}
	var out []*gateway.Message
	for _, d := range m.Devices {
		if d.ID != id {
			continue
		}
		for label, v := range d.Labels {
			out = append(out, &gateway.Message{Kind: gateway.KindEvent, Device: id, Label: label, Value: v.Value, Seq: v.Seq})
		}
	}
	slices.SortStableFunc(out, func(a, b *gateway.Message) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}
