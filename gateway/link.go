package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// Attach implements Sink.
func (h *Hub) Attach(id string, send SendFunc) (Link, error) {
	if send == nil {
		return nil, fmt.Errorf("attach %s: nil send function", id)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.devices[id]
	if !ok {
		return nil, fmt.Errorf("attach %s: %w", id, ErrUnknownDevice)
	}
	if h.closed {
		return nil, fmt.Errorf("attach %s: %w", id, ErrShutdown)
	}
	if d.link != nil {
		d.link.dead.Store(true)
	}
	h.linkGen++
	l := &hubLink{hub: h, dev: d, id: id, send: send, gen: h.linkGen}
	d.link = l
	if d.attached {
		d.reconnects++
	}
	d.attached = true
	d.reason = ""
	d.lastSeen = h.now()
	d.localAddr, d.remoteAddr = "", ""
	h.statusLocked(d, true, "")
	return l, nil
}

// hubLink is the hub's Link: one live board link as the core sees it.
type hubLink struct {
	hub  *Hub
	dev  *device
	id   string
	send SendFunc
	gen  uint64
	dead atomic.Bool
}

// Device is the id of the device this link serves.
func (l *hubLink) Device() string { return l.id }

// Publish hands the board's readings to the core. Readings with a bad label
// or value are dropped and counted.
func (l *hubLink) Publish(rs ...Reading) {
	if l.dead.Load() {
		return
	}
	l.hub.publish(l, rs)
}

// Log hands a console line (serial boot messages, debugging prints) to
// subscribers that asked for logs. It never becomes an event.
func (l *hubLink) Log(line string) {
	if l.dead.Load() {
		return
	}
	l.hub.logLine(l, line)
}

// Malformed counts a frame or line from the board that could not be used.
// It reports whether the caller should log it now (at most once a second per
// device, so a babbling board cannot flood the log).
func (l *hubLink) Malformed() (logNow bool) {
	l.hub.counters.Malformed.Add(1)
	h := l.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	l.dev.malformed++
	now := h.now()
	if now.Sub(l.dev.lastBadLog) >= time.Second {
		l.dev.lastBadLog = now
		return true
	}
	return false
}

// Seen records that the board showed a sign of life (a pong) without data.
func (l *hubLink) Seen() {
	if l.dead.Load() {
		return
	}
	h := l.hub
	h.mu.Lock()
	if h.devices[l.id] == l.dev {
		l.dev.lastSeen = h.now()
	}
	h.mu.Unlock()
}

// SetAddr records the link socket's local and remote addresses.
func (l *hubLink) SetAddr(local, remote string) {
	if l.dead.Load() {
		return
	}
	h := l.hub
	h.mu.Lock()
	if l.dev.link == l {
		l.dev.localAddr, l.dev.remoteAddr = local, remote
	}
	h.mu.Unlock()
}

// Detach reports that the link went down; reason says why and reaches
// browsers in the status event. Detaching twice, or after the link was
// replaced, does nothing.
func (l *hubLink) Detach(reason string) {
	if l.dead.Swap(true) {
		return
	}
	h := l.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if l.dev.link != l {
		return
	}
	l.dev.link = nil
	if reason == "" {
		reason = "link closed"
	}
	l.dev.reason = reason
	l.dev.localAddr = ""
	if h.devices[l.id] == l.dev {
		h.statusLocked(l.dev, false, reason)
	}
}

func (h *Hub) publish(l *hubLink, rs []Reading) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := l.dev
	if d.link != l || h.devices[l.id] != d {
		return
	}
	now := h.now()
	d.lastSeen = now
	// One frame's readings reach each subscriber together (see broadcastLocked).
	msgs := make([]*Message, 0, len(rs))
	var recs []Record
	infoChanged := false
	for _, r := range rs {
		if r.Attr {
			infoChanged = h.publishAttrLocked(d, r, now, &recs) || infoChanged
			continue
		}
		if err := checkReading(r); err != nil {
			h.counters.DroppedReadings.Add(1)
			h.log.Debug("reading dropped", "device", l.id, "label", Truncate(r.Label, 40), "err", err)
			continue
		}
		if len(r.Value) > h.valueBytes {
			h.counters.DroppedReadings.Add(1)
			h.log.Debug("reading dropped: value too long", "device", l.id, "label", Truncate(r.Label, 40), "bytes", len(r.Value), "limit", h.valueBytes)
			continue
		}
		ls, ok := d.labels[r.Label]
		if !ok {
			if len(d.labels) >= h.maxLabels {
				h.counters.DroppedReadings.Add(1)
				h.log.Debug("reading dropped: too many labels", "device", l.id, "label", r.Label)
				continue
			}
			ls = &labelState{}
			d.labels[r.Label] = ls
			d.labelOrder = append(d.labelOrder, r.Label)
		}
		value := append(json.RawMessage(nil), r.Value...)
		ts := h.readingTime(r.TS, now)
		if ok && ts.Before(ls.last.TS) {
			// A backfill (a board that buffered while offline): history
			// only; the live view and the last value are not disturbed.
			h.counters.Backfilled.Add(1)
			recs = append(recs, Record{Device: l.id, Label: r.Label, TS: ts, Value: value})
			continue
		}
		if grow := len(value) - len(ls.last.Value); grow > 0 && h.lastBytes+grow > h.maxLast {
			// Every device's last values together are bounded
			// (DefaultLastValuesBytes): memory stays bounded whatever
			// boards and other gateways send.
			h.counters.DroppedReadings.Add(1)
			h.log.Debug("reading dropped: the gateway holds its limit of last values", "device", l.id, "label", Truncate(r.Label, 40), "limit", h.maxLast)
			if !ok {
				delete(d.labels, r.Label)
				d.labelOrder = d.labelOrder[:len(d.labelOrder)-1]
			}
			continue
		}
		h.lastBytes += len(value) - len(ls.last.Value)
		h.seq++
		ls.last, ls.kind, ls.restored = Point{Value: value, TS: ts, Seq: h.seq}, KindOf(value), false
		d.events++
		d.rate.add(now)
		h.counters.EventsIn.Add(1)
		m := newEventMessage(l.id, r.Label, value, ts, h.seq)
		h.replay.add(m)
		msgs = append(msgs, m)
		recs = append(recs, Record{Device: l.id, Label: r.Label, TS: ts, Value: value, Seq: h.seq})
	}
	if infoChanged {
		msgs = append(msgs, newInfoMessage(l.id, d.infoLocked(), now))
	}
	h.broadcastLocked(msgs...)
	if h.history != nil && len(recs) > 0 {
		// Under the hub's lock, so the store sees readings in seq order;
		// Append only queues.
		h.history.Append(recs...)
	}
}

// readingTime is when a reading happened: the board's own ts, or now when
// it sent none or one too far ahead of the gateway's clock (counted).
func (h *Hub) readingTime(ts, now time.Time) time.Time {
	switch {
	case ts.IsZero():
		return now
	case ts.After(now.Add(MaxFutureSkew)):
		h.counters.FutureTS.Add(1)
		return now
	}
	return ts
}

func (h *Hub) logLine(l *hubLink, line string) {
	line = Truncate(toValidUTF8(line), 4096)
	h.mu.Lock()
	defer h.mu.Unlock()
	if l.dev.link != l || h.devices[l.id] != l.dev {
		return
	}
	m := newLogMessage(l.id, line, h.now())
	if len(l.dev.logs) < RecentLogLines {
		l.dev.logs = append(l.dev.logs, m)
	} else {
		copy(l.dev.logs, l.dev.logs[1:])
		l.dev.logs[len(l.dev.logs)-1] = m
	}
	h.broadcastLocked(m)
}

// statusLocked records and broadcasts an availability change.
func (h *Hub) statusLocked(d *device, online bool, reason string) {
	now := h.now()
	m := newStatusMessage(d.info.ID, online, reason, now, h.seq, d.reconnects)
	if h.history != nil {
		h.history.AppendStatus(d.info.ID, now, online, reason)
	}
	if !online {
		d.reason = reason
	} else {
		d.reason = ""
	}
	d.since = now
	h.replay.add(m)
	h.broadcastLocked(m)
}

func checkReading(r Reading) error {
	if r.Label == "" || len(r.Label) > MaxLabelLen {
		return fmt.Errorf("label must be 1 to %d bytes", MaxLabelLen)
	}
	if !utf8.ValidString(r.Label) {
		return errors.New("label is not valid UTF-8")
	}
	for _, c := range r.Label {
		if unicode.IsControl(c) || c == '+' || c == '#' || c == '/' {
			return errors.New("label must not hold control characters, '+', '#' or '/'")
		}
	}
	if len(r.Value) == 0 || !json.Valid(r.Value) {
		return errors.New("value is not JSON")
	}
	return nil
}
