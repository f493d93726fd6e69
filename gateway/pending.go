package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"
)

// Boards waiting for adoption (DESIGN.md, "Fleet"): an enrolled board (it
// dialed /device/ID with the enroll token and stays connected) or a
// discovered one (it advertises _esp32gw-board._tcp over mDNS). The Pending
// registry holds them, bounded, until they are adopted, leave, are evicted
// or (discovered ones) are not seen again for a while. It never publishes a
// pending board's readings: only its attributes are kept, to show.

// Pending limits.
const (
	// MaxPending bounds the boards waiting for adoption; one more evicts the
	// one waiting longest. Discovered boards go first: a new board evicts
	// the oldest discovered one while there is one, and only an enrolled
	// board evicts an enrolled one (its connection is closed with a
	// reason). A discovered board finding only enrolled ones is not listed.
	MaxPending = 32
	// MaxPendingAttrs bounds the attributes kept per pending board (fewer
	// when limits.labels_per_device is lower); each is further bounded by
	// limits.value_bytes. 32 boards × 64 × 4 KiB is at most 8 MiB.
	MaxPendingAttrs = 64
	// DiscoveredTTL is how long a discovered board stays listed after it was
	// last seen over mDNS.
	DiscoveredTTL = 3 * time.Minute
	// PendingNotifyEvery is the least time between two "pending changed"
	// notices (a board reporting $rssi every second must not flood browsers).
	PendingNotifyEvery = time.Second
)

// Errors of adoption and forgetting; edges map them with errors.Is.
var (
	// ErrUnknownPending: no board waits for adoption under that id (404).
	ErrUnknownPending = errors.New("no board waits for adoption under that id")
	// ErrIDTaken: a device with that id exists (409).
	ErrIDTaken = errors.New("a device with that id exists")
	// ErrConfigured: the device comes from config.yaml, which the gateway
	// never rewrites (409).
	ErrConfigured = errors.New("the device is configured in config.yaml")
	// ErrBadID: an id that does not match [a-z0-9_-]+ (400).
	ErrBadID = errors.New("device ids must match [a-z0-9_-]+ (at most 64 characters)")
	// ErrInvalid: the device adoption would make is not valid (400).
	ErrInvalid = errors.New("invalid device")
	// ErrBoardGone: the enrolled board left before it was told its token (409).
	ErrBoardGone = errors.New("the board disconnected before it was told its token")
)

// Pending transports: how an adopted board will be linked.
const (
	PendingEnrolled   = TransportWSListen // dialed in with the enroll token
	PendingDiscovered = TransportWSDial   // found over mDNS
)

// PendingBoard is one board waiting for adoption, as GET /api/pending lists it.
type PendingBoard struct {
	ID        string                     `json:"id"`
	Transport string                     `json:"transport"` // PendingEnrolled or PendingDiscovered
	Addr      string                     `json:"addr"`      // the board's address ("IP:port" of its link, or from mDNS)
	URL       string                     `json:"url"`       // a discovered board's WebSocket URL; "" for enrolled ones
	Info      map[string]json.RawMessage `json:"info"`      // its $ attributes, names without '$'
	FirstSeen time.Time                  `json:"-"`
}

// MarshalJSON adds first_seen as RFC 3339 with milliseconds, as everywhere.
func (b PendingBoard) MarshalJSON() ([]byte, error) {
	type plain PendingBoard
	info := b.Info
	if info == nil {
		info = map[string]json.RawMessage{}
	}
	p := plain(b)
	p.Info = info
	return json.Marshal(struct {
		plain
		FirstSeen string `json:"first_seen"`
	}{p, FormatTime(b.FirstSeen)})
}

// AdoptRequest is what adopting a pending board may choose; every field is
// optional (id: the pending id; name: the id; commands: none).
type AdoptRequest struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Commands []string `json:"commands"`
}

// PendingLink is an enrolled board's open connection as the registry sees
// it. Its methods are safe for concurrent use.
type PendingLink interface {
	// Adopt sends the board {"type":"adopted","id":ID,"token":TOKEN} once
	// and then closes the connection with 1000. It returns when the frame
	// was written, or with an error (the board is gone, ctx ended).
	Adopt(ctx context.Context, id, token string) error
	// Close ends the connection with a close frame saying why; it does not wait.
	Close(code int, reason string)
}

// PendingOptions configure a Pending registry; zero fields take the defaults.
type PendingOptions struct {
	Max       int           // MaxPending
	MaxAttrs  int           // MaxPendingAttrs
	AttrBytes int           // an attribute's JSON value at most this long; 4096
	TTL       time.Duration // DiscoveredTTL
	// Taken reports that a discovered board is a device already (by id or
	// URL); it is then not listed. Prune asks it again about every pending
	// board (url "" for an enrolled one). Called without the registry's lock.
	Taken func(id, url string) bool
	// Changed is told the number of pending boards after a change, at most
	// once per PendingNotifyEvery (the last change always reaches it), from
	// a timer's goroutine, without the registry's lock.
	Changed func(count int)
}

// Pending is the registry of boards waiting for adoption. It is safe for
// concurrent use and never blocks long. Its only goroutines are two
// timers': one for Changed, one that expires discovered boards (armed while
// any is listed); Close stops both.
type Pending struct {
	o PendingOptions

	mu      sync.Mutex
	entries map[string]*PendingEntry
	order   uint64 // insertion counter: the oldest entry is evicted first
	notify  *time.Timer
	expiry  *time.Timer // fires when the next discovered board expires
	lastOut time.Time
	closed  bool
	now     func() time.Time // tests move time
}

// PendingEntry is one registry entry; a transport keeps the one Enroll gave
// it to report attributes and its leaving, which do nothing once the entry
// was replaced or removed.
type PendingEntry struct {
	board    PendingBoard
	link     PendingLink // nil for a discovered board
	lastSeen time.Time
	order    uint64
}

// NewPending returns an empty registry.
func NewPending(o PendingOptions) *Pending {
	if o.Max <= 0 {
		o.Max = MaxPending
	}
	if o.MaxAttrs <= 0 || o.MaxAttrs > MaxPendingAttrs {
		o.MaxAttrs = MaxPendingAttrs
	}
	if o.AttrBytes <= 0 {
		o.AttrBytes = 4096
	}
	if o.TTL <= 0 {
		o.TTL = DiscoveredTTL
	}
	return &Pending{o: o, entries: map[string]*PendingEntry{}, now: time.Now}
}

// Enroll holds an enrolled board that dialed in as id from addr. A board
// already pending under id is replaced (its connection closed); when the
// registry is full the board waiting longest is evicted.
func (p *Pending) Enroll(id, addr string, link PendingLink) *PendingEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	var closeOld []*PendingEntry
	if old, ok := p.entries[id]; ok {
		closeOld = append(closeOld, old)
		delete(p.entries, id)
	}
	p.makeRoomLocked(true)
	for _, old := range closeOld {
		if old.link != nil {
			old.link.Close(1000, "replaced by a new connection from the same board")
		}
	}
	p.order++
	e := &PendingEntry{
		board:    PendingBoard{ID: id, Transport: PendingEnrolled, Addr: addr, Info: map[string]json.RawMessage{}, FirstSeen: now},
		link:     link,
		lastSeen: now,
		order:    p.order,
	}
	p.entries[id] = e
	p.changedLocked()
	return e
}

// oldestLocked is the entry waiting longest among the discovered boards
// (enrolled false) or the enrolled ones (enrolled true); nil when none.
func (p *Pending) oldestLocked(enrolled bool) *PendingEntry {
	var oldest *PendingEntry
	for _, e := range p.entries {
		if (e.link != nil) == enrolled && (oldest == nil || e.order < oldest.order) {
			oldest = e
		}
	}
	return oldest
}

// makeRoomLocked evicts until one more board fits: the oldest discovered
// board first; an enrolled one only for a new enrolled board (enrolled),
// its connection closed with 1013. It reports whether there is room: a
// discovered board never evicts an enrolled one.
func (p *Pending) makeRoomLocked(enrolled bool) bool {
	for len(p.entries) >= p.o.Max {
		victim := p.oldestLocked(false)
		if victim == nil && enrolled {
			victim = p.oldestLocked(true)
		}
		if victim == nil {
			return false
		}
		delete(p.entries, victim.board.ID)
		p.changedLocked()
		if victim.link != nil {
			victim.link.Close(1013, "evicted: more boards wait for adoption than the gateway holds; dial again later")
		}
	}
	return true
}

// Attrs keeps the attribute readings among rs (Reading.Attr) as e's info;
// other readings are ignored (a pending board publishes nothing). Bounded:
// at most MaxAttrs names, each value at most AttrBytes; more are dropped.
func (p *Pending) Attrs(e *PendingEntry, rs []Reading) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.entries[e.board.ID] != e {
		return
	}
	e.lastSeen = p.now()
	changed := false
	for _, r := range rs {
		if !r.Attr || checkReading(r) != nil || len(r.Value) > p.o.AttrBytes {
			continue
		}
		old, ok := e.board.Info[r.Label]
		if !ok && len(e.board.Info) >= p.o.MaxAttrs {
			continue
		}
		if ok && string(old) == string(r.Value) {
			continue
		}
		e.board.Info[r.Label] = append(json.RawMessage(nil), r.Value...)
		changed = true
	}
	if changed {
		p.changedLocked()
	}
}

// Leave removes e (its connection ended); nothing when e was replaced.
func (p *Pending) Leave(e *PendingEntry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.entries[e.board.ID] == e {
		delete(p.entries, e.board.ID)
		p.changedLocked()
		if e.link == nil {
			p.armExpiryLocked()
		}
	}
}

// AddDiscovered lists (or refreshes) a board found over mDNS at url
// ("ws://192.168.1.50/ws") and addr, with its TXT attributes as info. It is
// ignored when id is not a valid device id, while an enrolled board is
// pending under id, or when only enrolled boards fill the registry. When a
// device already has that id or URL (Taken) it is not listed, and a
// discovered board listed under id before is removed.
func (p *Pending) AddDiscovered(id, url, addr string, info map[string]string) {
	if !ValidID(id) || url == "" {
		return
	}
	if p.o.Taken != nil && p.o.Taken(id, url) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if e, ok := p.entries[id]; ok && e.link == nil {
			delete(p.entries, id)
			p.changedLocked()
			p.armExpiryLocked()
		}
		return
	}
	attrs := map[string]json.RawMessage{}
	for k, v := range info {
		if len(attrs) >= p.o.MaxAttrs {
			break
		}
		b, err := json.Marshal(v)
		if err != nil || len(b) > p.o.AttrBytes || checkReading(Reading{Label: k, Value: b}) != nil {
			continue
		}
		attrs[k] = b
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.expireLocked(now)
	if e, ok := p.entries[id]; ok {
		if e.link != nil {
			return // an enrolled board is waiting under this id
		}
		e.lastSeen = now
		if e.board.URL != url || e.board.Addr != addr || !sameAttrs(e.board.Info, attrs) {
			e.board.URL, e.board.Addr, e.board.Info = url, addr, attrs
			p.changedLocked()
		}
		p.armExpiryLocked()
		return
	}
	if !p.makeRoomLocked(false) {
		return // every place is an enrolled board's, waiting on its connection
	}
	p.order++
	p.entries[id] = &PendingEntry{
		board:    PendingBoard{ID: id, Transport: PendingDiscovered, Addr: addr, URL: url, Info: attrs, FirstSeen: now},
		lastSeen: now,
		order:    p.order,
	}
	p.changedLocked()
	p.armExpiryLocked()
}

func sameAttrs(a, b map[string]json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || string(v) != string(w) {
			return false
		}
	}
	return true
}

// expireLocked drops discovered boards not seen for TTL.
func (p *Pending) expireLocked(now time.Time) {
	for id, e := range p.entries {
		if e.link == nil && now.Sub(e.lastSeen) > p.o.TTL {
			delete(p.entries, id)
			p.changedLocked()
		}
	}
}

// armExpiryLocked sets the expiry timer for the discovered board that
// expires next, so its leaving is noticed (and Changed told) without
// anyone listing; no timer while no discovered board is listed.
func (p *Pending) armExpiryLocked() {
	if p.expiry != nil {
		p.expiry.Stop()
		p.expiry = nil
	}
	if p.closed {
		return
	}
	var next time.Time
	for _, e := range p.entries {
		if e.link == nil && (next.IsZero() || e.lastSeen.Before(next)) {
			next = e.lastSeen
		}
	}
	if next.IsZero() {
		return
	}
	// expireLocked drops a board strictly after TTL.
	wait := max(next.Add(p.o.TTL).Sub(p.now()), 0) + time.Millisecond
	var t *time.Timer
	t = time.AfterFunc(wait, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed || p.expiry != t {
			return // stopped or re-armed meanwhile
		}
		p.expiry = nil
		p.expireLocked(p.now())
		p.armExpiryLocked()
	})
	p.expiry = t
}

// Prune drops the boards that have become devices (Taken by id, or by URL
// for a discovered board), as after a reload or an adoption: a discovered
// board is no longer listed, an enrolled board's connection is closed with
// a reason (the enroll token does not open a configured device's link).
// The entries in keep stay (the board being adopted, told its token next).
func (p *Pending) Prune(keep ...*PendingEntry) {
	if p.o.Taken == nil {
		return
	}
	p.mu.Lock()
	es := make([]*PendingEntry, 0, len(p.entries))
	keys := make([][2]string, 0, len(p.entries))
	for _, e := range p.entries {
		if slices.Contains(keep, e) {
			continue
		}
		es = append(es, e)
		keys = append(keys, [2]string{e.board.ID, e.board.URL})
	}
	p.mu.Unlock()
	var gone []*PendingEntry
	for i, e := range es {
		if p.o.Taken(keys[i][0], keys[i][1]) {
			gone = append(gone, e)
		}
	}
	if len(gone) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range gone {
		if p.entries[e.board.ID] != e {
			continue // replaced or gone meanwhile
		}
		delete(p.entries, e.board.ID)
		p.changedLocked()
		if e.link != nil {
			e.link.Close(1008, "device "+e.board.ID+" is configured now: the enroll token does not open its link")
		}
	}
	p.armExpiryLocked()
}

// List is every pending board, the longest waiting first, each a copy.
func (p *Pending) List() []PendingBoard {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expireLocked(p.now())
	es := make([]*PendingEntry, 0, len(p.entries))
	for _, e := range p.entries {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b *PendingEntry) int { return cmp.Compare(a.order, b.order) })
	out := make([]PendingBoard, len(es))
	for i, e := range es {
		out[i] = e.copyBoard()
	}
	return out
}

func (e *PendingEntry) copyBoard() PendingBoard {
	b := e.board
	b.Info = make(map[string]json.RawMessage, len(e.board.Info))
	for k, v := range e.board.Info {
		b.Info[k] = v
	}
	return b
}

// Get returns the board pending under id: a copy, its entry (for Remove)
// and its link (nil for a discovered board).
func (p *Pending) Get(id string) (PendingBoard, *PendingEntry, PendingLink, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expireLocked(p.now())
	e, ok := p.entries[id]
	if !ok {
		return PendingBoard{}, nil, nil, false
	}
	return e.copyBoard(), e, e.link, true
}

// Remove drops e (adopted); nothing when e was replaced or already gone.
func (p *Pending) Remove(e *PendingEntry) { p.Leave(e) }

// Len is the number of pending boards.
func (p *Pending) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

// Close stops the notice and expiry timers; later changes notify nobody.
func (p *Pending) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.notify != nil {
		p.notify.Stop()
		p.notify = nil
	}
	if p.expiry != nil {
		p.expiry.Stop()
		p.expiry = nil
	}
}

// changedLocked arranges a Changed notice: at once after a quiet spell,
// else at the end of the current PendingNotifyEvery.
func (p *Pending) changedLocked() {
	if p.o.Changed == nil || p.closed || p.notify != nil {
		return
	}
	wait := max(PendingNotifyEvery-p.now().Sub(p.lastOut), 0)
	p.notify = time.AfterFunc(wait, func() {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		p.notify = nil
		p.lastOut = p.now()
		n := len(p.entries)
		p.mu.Unlock()
		p.o.Changed(n)
	})
}

// PendingChanged tells every subscriber that the boards waiting for
// adoption changed: {"type":"pending","count":N}. A browser that wants the
// list asks GET /api/pending. Not an event: no seq, not replayed.
func (h *Hub) PendingChanged(count int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.subs) == 0 {
		return
	}
	h.broadcastLocked(newPendingMessage(count))
}
