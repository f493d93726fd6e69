package gateway

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// The hub is split by concern: this file holds the hub, its options and its
// devices; link.go the board links (Attach, Publish, Detach);
// subscriptions.go the subscribers and their bounded queues; replay.go the
// ring behind /ws?since=; commands.go command routing; frames.go every /ws
// frame's encoding; views.go the device objects (snapshot, DeviceState);
// restore.go the last values a restart recovers from the history store.
// Charts read the history store (Options.History); the hub keeps only what
// the live path needs: each label's last value and the replay ring.

// Limits that bound the hub's memory whatever the boards send.
const (
	// DefaultHistoryLen is how many events /ws?since= can replay; the contract
	// promises at least 1000.
	DefaultHistoryLen = 1000
	// MaxLabelsPerDevice stops a board that invents a new key every frame from
	// growing the hub without bound; further labels are dropped and counted
	// (the default of limits.labels_per_device).
	MaxLabelsPerDevice = 256
	// DefaultValueBytes bounds a reading's JSON value (the default of
	// limits.value_bytes): with MaxLabelsPerDevice it bounds the memory of
	// a device's last values.
	DefaultValueBytes = 4096
	// DefaultLastValuesBytes bounds the last values of all devices together:
	// per-device limits alone let cluster mode's 1024 imported devices (or
	// many boards) hold 1024 × 256 × 4 KiB = 1 GiB. 32 MiB is 32 boards with
	// 256 labels of 4 KiB. A reading that would
	// grow the total past it is dropped and counted.
	DefaultLastValuesBytes = 32 << 20
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
	GatewayID  string
	HistoryLen int // events /ws?since= can replay (at least DefaultHistoryLen)
	// History records every accepted reading, backfill and status change;
	// nil records nothing.
	History History
	// LabelsPerDevice and ValueBytes bound what one device can make the hub
	// hold (limits.labels_per_device, limits.value_bytes); readings beyond
	// them are dropped and counted. Zero: MaxLabelsPerDevice, DefaultValueBytes.
	LabelsPerDevice int
	ValueBytes      int
	// LastValuesBytes bounds the last values of every device together;
	// zero: DefaultLastValuesBytes.
	LastValuesBytes int
	Logger          *slog.Logger
	Now             func() time.Time
}

// Hub owns every device's state, assigns sequence numbers, keeps history,
// fans messages out to subscribers and routes commands to board links.
// All methods are safe for concurrent use; none blocks on a subscriber.
type Hub struct {
	gatewayID  string
	history    History
	maxLabels  int
	valueBytes int
	maxLast    int // bound on lastBytes
	lastBytes  int // bytes of every label's last value, guarded by mu
	log        *slog.Logger
	now        func() time.Time
	counters   Counters

	mu      sync.Mutex
	seq     uint64
	devices map[string]*device
	order   []string
	replay  replayRing
	subs    map[*Subscription]struct{}
	closed  bool
	linkGen uint64
	snaps   snapshots // device-set snapshots, coalesced (coalesce.go)
}

// Counters are the hub's monotonic counters, read by /metrics.
type Counters struct {
	EventsIn        atomic.Uint64 // readings accepted from boards
	MessagesOut     atomic.Uint64 // frames written to browsers (counted by the web layer)
	SlowConsumers   atomic.Uint64 // subscribers dropped because their queue was full
	Malformed       atomic.Uint64 // bad frames or lines from boards
	DroppedReadings atomic.Uint64 // readings refused (bad label, too many labels)
	Backfilled      atomic.Uint64 // readings older than their label's newest: history only
	FutureTS        atomic.Uint64 // readings whose ts was too far ahead, stamped on arrival instead
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
	logs       []*Message           // the last RecentLogLines console lines
	attrs      map[string]attrState // board attributes by name without '$' (attrs.go)
	since      time.Time            // when online last changed
	rate       readingRate          // readings per minute, for the fleet view
	localAddr  string               // the link socket's addresses while attached
	remoteAddr string
}

type labelState struct {
	last     Point
	kind     Kind // of last, classified once when it arrives
	restored bool // last came from the history store at start, not from this run
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
		gatewayID:  o.GatewayID,
		replay:     replayRing{size: o.HistoryLen},
		history:    o.History,
		maxLabels:  o.LabelsPerDevice,
		valueBytes: o.ValueBytes,
		log:        o.Logger,
		now:        o.Now,
		devices:    map[string]*device{},
		subs:       map[*Subscription]struct{}{},
	}
	if h.replay.size < DefaultHistoryLen {
		h.replay.size = DefaultHistoryLen
	}
	if h.maxLabels <= 0 {
		h.maxLabels = MaxLabelsPerDevice
	}
	if h.valueBytes <= 0 {
		h.valueBytes = DefaultValueBytes
	}
	h.maxLast = o.LastValuesBytes
	if h.maxLast <= 0 {
		h.maxLast = DefaultLastValuesBytes
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
	h.mu.Lock()
	defer h.mu.Unlock()
	changed, err := h.addDeviceLocked(info)
	if changed {
		h.devicesChangedLocked()
	}
	return err
}

// addDeviceLocked is AddDevice without telling subscribers; it reports
// whether anything changed.
func (h *Hub) addDeviceLocked(info DeviceInfo) (changed bool, err error) {
	if !ValidID(info.ID) {
		return false, fmt.Errorf("add device %q: id must match [a-z0-9_-]+", info.ID)
	}
	if info.Name == "" {
		info.Name = info.ID
	}
	if info.Gateway == "" {
		info.Gateway = h.gatewayID
	}
	info.Commands = append([]string(nil), info.Commands...)
	d, ok := h.devices[info.ID]
	if ok {
		if d.info.Remote != info.Remote {
			return false, fmt.Errorf("add device %q: a %s device with that id exists", info.ID, map[bool]string{true: "remote", false: "local"}[d.info.Remote])
		}
		if sameInfo(d.info, info) {
			return false, nil // a remote gateway re-announcing: nothing changed, nothing to tell
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
	return true, nil
}

// devicesChangedLocked tells subscribers about a change to the set of
// devices (or their names and commands) with a fresh snapshot, and makes
// any later resume from before the change get a snapshot too: a replay of
// events alone would leave a browser with the old device list.
func (h *Hub) devicesChangedLocked() {
	if h.seq > 0 || len(h.subs) > 0 {
		h.replay.raiseFloor(h.seq + 1)
	}
	if len(h.subs) > 0 {
		h.snapshotDueLocked()
	}
}

func sameInfo(a, b DeviceInfo) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Gateway == b.Gateway && a.Transport == b.Transport &&
		a.Remote == b.Remote && a.Source == b.Source && slices.Equal(a.Commands, b.Commands)
}

// RemoveDevice forgets a device (a remote device whose gateway withdrew it).
func (h *Hub) RemoveDevice(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.removeDeviceLocked(id) {
		h.devicesChangedLocked()
	}
}

// removeDeviceLocked is RemoveDevice without telling subscribers; it
// reports whether the device existed.
func (h *Hub) removeDeviceLocked(id string) bool {
	d, ok := h.devices[id]
	if !ok {
		return false
	}
	if d.link != nil {
		d.link.dead.Store(true)
	}
	for _, ls := range d.labels {
		h.lastBytes -= len(ls.last.Value)
	}
	for _, as := range d.attrs {
		h.lastBytes -= len(as.value)
	}
	delete(h.devices, id)
	for i, o := range h.order {
		if o == id {
			h.order = append(h.order[:i:i], h.order[i+1:]...)
			break
		}
	}
	return true
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

// Close ends every subscription with ErrShutdown and refuses new ones and new
// links. Transports should have returned before Close.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	h.stopSnapshotsLocked()
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
