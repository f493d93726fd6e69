package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits that bound the hub's memory whatever the boards send.
const (
	// DefaultHistoryLen is how many events /ws?since= can replay; the contract
	// promises at least 1000.
	DefaultHistoryLen = 1000
	// DefaultLabelHistoryLen is how many points per label feed the charts.
	DefaultLabelHistoryLen = 600
	// MaxLabelsPerDevice stops a board that invents a new key every frame from
	// growing the hub without bound; further labels are dropped and counted.
	MaxLabelsPerDevice = 256
	// RecentLogLines is how many console lines per device a console that
	// opens late is shown first.
	RecentLogLines = 50
	// MaxReadingsPerFrame bounds the readings of one board frame (as
	// gateway/wire does); a subscriber's channel holds its queue length plus
	// one such frame.
	MaxReadingsPerFrame = 1024
	// MaxLabelLen bounds a label's length in bytes.
	MaxLabelLen = 128
	// DefaultQueueLen is a subscriber's queue: about 256 messages (contract).
	DefaultQueueLen = 256
)

// Options configure a Hub. The zero value of every field has a sensible default.
type Options struct {
	GatewayID       string
	HistoryLen      int
	LabelHistoryLen int
	Logger          *slog.Logger
	Now             func() time.Time
}

// Hub owns every device's state, assigns sequence numbers, keeps history,
// fans messages out to subscribers and routes commands to board links.
// All methods are safe for concurrent use; none blocks on a subscriber.
type Hub struct {
	gatewayID string
	histLen   int
	labelHist int
	log       *slog.Logger
	now       func() time.Time
	counters  Counters

	mu         sync.Mutex
	seq        uint64
	devices    map[string]*device
	order      []string
	ring       []*Message // events and statuses, oldest first; see remember for its bounds
	ringEvents int        // events in ring
	ringFloor  uint64     // every event and status after event ringFloor is still in ring
	subs       map[*Subscription]struct{}
	closed     bool
	linkGen    uint64
}

// Counters are the hub's monotonic counters, read by /metrics.
type Counters struct {
	EventsIn        atomic.Uint64 // readings accepted from boards
	MessagesOut     atomic.Uint64 // frames written to browsers (counted by the web layer)
	SlowConsumers   atomic.Uint64 // subscribers dropped because their queue was full
	Malformed       atomic.Uint64 // bad frames or lines from boards
	DroppedReadings atomic.Uint64 // readings refused (bad label, too many labels)
	Commands        atomic.Uint64 // commands accepted by a board link
	CommandErrors   atomic.Uint64 // commands answered with an error
}

type device struct {
	info       DeviceInfo
	allowed    map[string]bool
	link       *hubLink
	attached   bool // has ever been attached: later attaches count as reconnects
	reason     string
	lastSeen   time.Time
	reconnects int
	labels     map[string]*labelState
	labelOrder []string
	events     uint64
	malformed  uint64
	commands   TokenBucket // per-device command rate
	lastBadLog time.Time
	logs       []*Message // the last RecentLogLines console lines
}

type labelState struct {
	last Point
	kind Kind    // of last, classified once when it arrives
	hist []Point // ring of labelHist points
	head int     // index of the oldest point once hist is full
}

// Point is one value of a label in its history.
type Point struct {
	Value json.RawMessage `json:"value"`
	TS    time.Time       `json:"-"`
	Seq   uint64          `json:"seq"`
}

// MarshalJSON writes the point as {"value":…,"ts":"…","seq":N}.
func (p Point) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Value json.RawMessage `json:"value"`
		TS    string          `json:"ts"`
		Seq   uint64          `json:"seq"`
	}{p.Value, FormatTime(p.TS), p.Seq})
}

// NewHub returns an empty hub; add devices with AddDevice.
func NewHub(o Options) *Hub {
	h := &Hub{
		gatewayID: o.GatewayID,
		histLen:   o.HistoryLen,
		labelHist: o.LabelHistoryLen,
		log:       o.Logger,
		now:       o.Now,
		devices:   map[string]*device{},
		subs:      map[*Subscription]struct{}{},
	}
	if h.histLen < DefaultHistoryLen {
		h.histLen = DefaultHistoryLen
	}
	if h.labelHist <= 0 {
		h.labelHist = DefaultLabelHistoryLen
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

// GatewayID names this gateway.
func (h *Hub) GatewayID() string { return h.gatewayID }

// Counters returns the hub's counters; the web layer adds MessagesOut.
func (h *Hub) Counters() *Counters { return &h.counters }

// AddDevice registers a device, offline until a transport attaches it. Adding
// an id that exists updates its description (remote devices re-announce
// themselves) and tells subscribers with a fresh snapshot.
func (h *Hub) AddDevice(info DeviceInfo) error {
	if !ValidID(info.ID) {
		return fmt.Errorf("add device %q: id must match [a-z0-9_-]+", info.ID)
	}
	if info.Name == "" {
		info.Name = info.ID
	}
	if info.Gateway == "" {
		info.Gateway = h.gatewayID
	}
	info.Commands = append([]string(nil), info.Commands...)
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.devices[info.ID]
	if ok {
		if d.info.Remote != info.Remote {
			return fmt.Errorf("add device %q: a %s device with that id exists", info.ID, map[bool]string{true: "remote", false: "local"}[d.info.Remote])
		}
		if sameInfo(d.info, info) {
			return nil // a remote gateway re-announcing: nothing changed, nothing to tell
		}
	} else {
		d = &device{labels: map[string]*labelState{}, commands: NewTokenBucket(CommandRate, CommandBurst), reason: "not connected yet"}
		h.devices[info.ID] = d
		h.order = append(h.order, info.ID)
	}
	d.info = info
	d.allowed = map[string]bool{}
	for _, c := range info.Commands {
		d.allowed[c] = true
	}
	h.devicesChangedLocked()
	return nil
}

// devicesChangedLocked tells subscribers about a change to the set of
// devices (or their names and commands) with a fresh snapshot, and makes
// any later resume from before the change get a snapshot too: a replay of
// events alone would leave a browser with the old device list.
func (h *Hub) devicesChangedLocked() {
	if h.seq > 0 || len(h.subs) > 0 {
		h.ringFloor = max(h.ringFloor, h.seq+1)
	}
	if len(h.subs) > 0 {
		h.broadcastLocked(h.snapshotLocked())
	}
}

func sameInfo(a, b DeviceInfo) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Gateway == b.Gateway && a.Transport == b.Transport &&
		a.Remote == b.Remote && slices.Equal(a.Commands, b.Commands)
}

// RemoveDevice forgets a device (a remote device whose gateway withdrew it).
func (h *Hub) RemoveDevice(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.devices[id]
	if !ok {
		return
	}
	if d.link != nil {
		d.link.dead.Store(true)
	}
	delete(h.devices, id)
	for i, o := range h.order {
		if o == id {
			h.order = append(h.order[:i:i], h.order[i+1:]...)
			break
		}
	}
	h.devicesChangedLocked()
}

// Device returns a device's description.
func (h *Hub) Device(id string) (DeviceInfo, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.devices[id]
	if !ok {
		return DeviceInfo{}, false
	}
	return d.info, true
}

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
	for _, r := range rs {
		if err := checkReading(r); err != nil {
			h.counters.DroppedReadings.Add(1)
			h.log.Debug("reading dropped", "device", l.id, "label", Truncate(r.Label, 40), "err", err)
			continue
		}
		ls, ok := d.labels[r.Label]
		if !ok {
			if len(d.labels) >= MaxLabelsPerDevice {
				h.counters.DroppedReadings.Add(1)
				h.log.Debug("reading dropped: too many labels", "device", l.id, "label", r.Label)
				continue
			}
			ls = &labelState{}
			d.labels[r.Label] = ls
			d.labelOrder = append(d.labelOrder, r.Label)
		}
		h.seq++
		value := append(json.RawMessage(nil), r.Value...)
		p := Point{Value: value, TS: now, Seq: h.seq}
		ls.last, ls.kind = p, KindOf(value)
		if len(ls.hist) < h.labelHist {
			ls.hist = append(ls.hist, p)
		} else {
			ls.hist[ls.head] = p
			ls.head = (ls.head + 1) % len(ls.hist)
		}
		d.events++
		h.counters.EventsIn.Add(1)
		m := &Message{Kind: KindEvent, Device: l.id, Seq: h.seq, Label: r.Label, Value: value, TS: now}
		m.Data = mustJSON(struct {
			Type   string          `json:"type"`
			Device string          `json:"device"`
			Label  string          `json:"label"`
			Value  json.RawMessage `json:"value"`
			TS     string          `json:"ts"`
			Seq    uint64          `json:"seq"`
		}{"event", l.id, r.Label, value, FormatTime(now), h.seq})
		h.remember(m)
		msgs = append(msgs, m)
	}
	h.broadcastLocked(msgs...)
}

func (h *Hub) logLine(l *hubLink, line string) {
	line = Truncate(toValidUTF8(line), 4096)
	h.mu.Lock()
	defer h.mu.Unlock()
	if l.dev.link != l || h.devices[l.id] != l.dev {
		return
	}
	m := &Message{Kind: KindLog, Device: l.id, Line: line, TS: h.now()}
	m.Data = mustJSON(struct {
		Type   string `json:"type"`
		Device string `json:"device"`
		Line   string `json:"line"`
		TS     string `json:"ts"`
	}{"log", l.id, line, FormatTime(m.TS)})
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
	m := &Message{Kind: KindStatus, Device: d.info.ID, Seq: h.seq, Online: online, Reason: reason, TS: h.now()}
	m.Data = mustJSON(struct {
		Type       string `json:"type"`
		Device     string `json:"device"`
		Online     bool   `json:"online"`
		Reason     string `json:"reason,omitempty"`
		TS         string `json:"ts"`
		Reconnects int    `json:"reconnects"`
	}{"status", d.info.ID, online, reason, FormatTime(m.TS), d.reconnects})
	if !online {
		d.reason = reason
	} else {
		d.reason = ""
	}
	h.remember(m)
	h.broadcastLocked(m)
}

// remember appends m to the replay ring, evicting the oldest entries. The
// ring keeps at least histLen events whatever the statuses among them, and
// at most 2*histLen entries so a flapping board cannot grow it. Evicting a
// status raises ringFloor past it, so a resume that would need it gets a
// snapshot instead of a replay that silently lacks it.
func (h *Hub) remember(m *Message) {
	h.ring = append(h.ring, m)
	if m.Kind == KindEvent {
		h.ringEvents++
	}
	maxLen := 2 * h.histLen
	chunk := h.histLen / 8 // evict in chunks, not per message
	if h.ringEvents <= h.histLen+chunk && len(h.ring) <= maxLen+chunk {
		return
	}
	drop := 0
	for ; drop < len(h.ring) && (h.ringEvents > h.histLen || len(h.ring)-drop > maxLen); drop++ {
		old := h.ring[drop]
		floor := old.Seq
		if old.Kind == KindEvent {
			h.ringEvents--
		} else {
			floor++ // a resume from old.Seq would need this status
		}
		h.ringFloor = max(h.ringFloor, floor)
	}
	n := copy(h.ring, h.ring[drop:])
	clear(h.ring[n:])
	h.ring = h.ring[:n]
}

// broadcastLocked hands msgs (one board frame's readings, or a single
// message) to every subscriber that wants them, never blocking. A subscriber
// that already has its queue length waiting has fallen behind and
// is dropped with ErrSlowConsumer; otherwise the whole batch fits, because
// the channel has room for a full frame beyond the queue length. So one board
// frame with many readings never costs a browser that keeps up its stream.
func (h *Hub) broadcastLocked(msgs ...*Message) {
	for s := range h.subs {
		if len(s.ch) >= s.limit {
			h.counters.SlowConsumers.Add(1)
			h.dropLocked(s, ErrSlowConsumer)
			continue
		}
		for _, m := range msgs {
			if !s.wants(m) {
				continue
			}
			select {
			case s.ch <- m:
			default:
				h.counters.SlowConsumers.Add(1)
				h.dropLocked(s, ErrSlowConsumer)
			}
			if _, live := h.subs[s]; !live {
				break
			}
		}
	}
}

func (h *Hub) dropLocked(s *Subscription, err error) {
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	s.err = err
	close(s.done)
}

// Close ends every subscription with ErrShutdown and refuses new ones and new
// links. Transports should have returned before Close.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		h.dropLocked(s, ErrShutdown)
	}
}

// Seq is the sequence number of the newest event.
func (h *Hub) Seq() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq
}

// Subscribe registers a subscriber. With since >= 0 and the history still
// holding every event after since, first holds exactly those events (and the
// status changes among them); otherwise first holds one snapshot. queueLen
// <= 0 means DefaultQueueLen. The subscription ends when Close is called, when
// the hub shuts down, or when its queue overflows (Err says which).
func (h *Hub) Subscribe(since int64, queueLen int) (s *Subscription, first []*Message, err error) {
	if queueLen <= 0 {
		queueLen = DefaultQueueLen
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, ErrShutdown
	}
	s = &Subscription{hub: h, limit: queueLen, ch: make(chan *Message, queueLen+MaxReadingsPerFrame), done: make(chan struct{})}
	s.C = s.ch
	if since >= 0 && uint64(since) >= h.ringFloor && uint64(since) <= h.seq {
		for _, m := range h.ring {
			if (m.Kind == KindEvent && m.Seq > uint64(since)) || (m.Kind == KindStatus && m.Seq >= uint64(since)) {
				first = append(first, m)
			}
		}
	} else {
		first = []*Message{h.snapshotLocked()}
	}
	h.subs[s] = struct{}{}
	return s, first, nil
}

// Subscription is one subscriber's bounded queue. Read C until Done is
// closed; then Err says why it ended.
type Subscription struct {
	C     <-chan *Message
	hub   *Hub
	limit int // messages waiting beyond this: the subscriber has fallen behind
	ch    chan *Message
	done  chan struct{}
	err   error // set before done is closed

	filter atomic.Pointer[Filter]
}

// Filter narrows what a subscriber receives. Snapshots always pass.
type Filter struct {
	Devices map[string]bool // nil: every device
	Logs    bool
}

// SetFilter replaces the subscriber's filter; nil devices means all devices.
func (s *Subscription) SetFilter(devices []string, logs bool) {
	f := &Filter{Logs: logs}
	if len(devices) > 0 {
		f.Devices = map[string]bool{}
		for _, d := range devices {
			f.Devices[d] = true
		}
	}
	s.filter.Store(f)
}

func (s *Subscription) wants(m *Message) bool {
	f := s.filter.Load()
	if m.Kind == KindSnapshot {
		return true
	}
	if f == nil {
		return m.Kind != KindLog
	}
	if m.Kind == KindLog && !f.Logs {
		return false
	}
	return f.Devices == nil || f.Devices[m.Device]
}

// Done is closed when the subscription ends.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err says why the subscription ended: ErrSlowConsumer, ErrShutdown, or nil
// after Close.
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close ends the subscription; safe to call more than once.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.hub.dropLocked(s, nil)
}

// Subscribers is the number of live subscriptions.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// DeviceState is a device as the snapshot and /api/devices show it.
type DeviceState struct {
	ID         string                `json:"id"`
	Name       string                `json:"name"`
	Gateway    string                `json:"gateway"`
	Transport  string                `json:"transport"`
	Remote     bool                  `json:"remote,omitempty"`
	Online     bool                  `json:"online"`
	Reason     string                `json:"reason,omitempty"`
	LastSeen   *string               `json:"last_seen"`
	Reconnects int                   `json:"reconnects"`
	Commands   []string              `json:"commands"`
	Labels     map[string]LabelValue `json:"labels"`
	// Counters for /metrics; not part of the JSON object.
	Events    uint64 `json:"-"`
	Malformed uint64 `json:"-"`
}

// LabelValue is a label's last value and its kind.
type LabelValue struct {
	Value json.RawMessage `json:"value"`
	TS    string          `json:"ts"`
	Seq   uint64          `json:"seq"`
	Kind  Kind            `json:"kind"`
}

// Snapshot returns every device's state and the seq it reflects.
func (h *Hub) Snapshot() (seq uint64, devices []DeviceState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	devices = make([]DeviceState, 0, len(h.order))
	for _, id := range h.order {
		devices = append(devices, h.stateLocked(h.devices[id]))
	}
	return h.seq, devices
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
		Remote: d.info.Remote, Online: d.online(), Reason: d.reason, Reconnects: d.reconnects,
		Commands: append([]string{}, d.info.Commands...), Labels: make(map[string]LabelValue, len(d.labels)),
		Events: d.events, Malformed: d.malformed,
	}
	if !d.lastSeen.IsZero() {
		s := FormatTime(d.lastSeen)
		st.LastSeen = &s
	}
	for name, ls := range d.labels {
		st.Labels[name] = LabelValue{Value: ls.last.Value, TS: FormatTime(ls.last.TS), Seq: ls.last.Seq, Kind: ls.kind}
	}
	return st
}

// online: a device is online while a transport (or, for a remote device,
// the MQTT bridge) holds a link for it.
func (d *device) online() bool { return d.link != nil }

func (h *Hub) snapshotLocked() *Message {
	devices := make([]DeviceState, 0, len(h.order))
	for _, id := range h.order {
		devices = append(devices, h.stateLocked(h.devices[id]))
	}
	m := &Message{Kind: KindSnapshot, Seq: h.seq}
	m.Data = mustJSON(struct {
		Type    string        `json:"type"`
		Seq     uint64        `json:"seq"`
		Gateway string        `json:"gateway"`
		Devices []DeviceState `json:"devices"`
	}{"snapshot", h.seq, h.gatewayID, devices})
	return m
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
		pts := make([]Point, 0, len(ls.hist))
		pts = append(pts, ls.hist[ls.head:]...)
		pts = append(pts, ls.hist[:ls.head]...)
		out[name] = pts
	}
	return out, nil
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

// Command checks a command against the device's allow-list and rate limit
// and hands it to the board link, waiting at most CommandTimeout. It returns
// nil once the link has written the command.
func (h *Hub) Command(ctx context.Context, id string, c Command) (err error) {
	defer func() {
		if err != nil {
			h.counters.CommandErrors.Add(1)
		} else {
			h.counters.Commands.Add(1)
		}
	}()
	if len(c.Label) > MaxLabelLen || !utf8.ValidString(c.Label) {
		return fmt.Errorf("%w: label must be valid UTF-8 of at most %d bytes", ErrBadCommand, MaxLabelLen)
	}
	if len(c.Value) == 0 || !json.Valid(c.Value) {
		return fmt.Errorf("%w: value must be JSON", ErrBadCommand)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, c.Value); err != nil {
		return fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	c.Value = compact.Bytes()
	h.mu.Lock()
	d, ok := h.devices[id]
	if !ok {
		h.mu.Unlock()
		return fmt.Errorf("device %s: %w", id, ErrUnknownDevice)
	}
	key := CommandKey(c.Value)
	if !d.allowed[key] {
		h.mu.Unlock()
		return fmt.Errorf("device %s: command %q: %w (allowed: %s)", id, key, ErrNotAllowed, strings.Join(sortedKeys(d.allowed), ", "))
	}
	link := d.link
	if link == nil {
		h.mu.Unlock()
		return fmt.Errorf("device %s: %w", id, ErrOffline)
	}
	if !d.commands.Allow(h.now()) {
		h.mu.Unlock()
		return fmt.Errorf("device %s: %w", id, ErrRateLimited)
	}
	h.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	if err := link.send(ctx, c); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("device %s: %w", id, ErrTimeout)
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// The link's own write deadline (set from ctx) fired first.
			return fmt.Errorf("device %s: %w (%v)", id, ErrTimeout, err)
		}
		if link.dead.Load() && !errors.Is(err, ErrOffline) {
			return fmt.Errorf("device %s: %w (%v)", id, ErrOffline, err)
		}
		return fmt.Errorf("device %s: %w", id, err)
	}
	return nil
}

// CommandKey is the allow-list key of a command value: a JSON string's text,
// or any other JSON value's compact text (so `commands: ["1", "true"]` work).
func CommandKey(value json.RawMessage) string {
	var s string
	if len(value) > 0 && value[0] == '"' && json.Unmarshal(value, &s) == nil {
		return s
	}
	return string(value)
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

// ValidID reports whether id is a valid device id: [a-z0-9_-]+, at most 64 bytes.
func ValidID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only RawMessage values can fail, and they were validated on entry.
		panic(fmt.Sprintf("gateway: encode message: %v", err))
	}
	return b
}

// Truncate shortens s to at most n bytes without cutting a UTF-8 character
// in two (for reasons and log lines built from a board's bytes).
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

func toValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string([]rune(s)) // invalid bytes become U+FFFD
}
