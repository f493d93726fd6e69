package gateway

import (
	"encoding/json"
	"sync"
	"time"
)

// MessageKind says what a Message carries.
type MessageKind int

const (
	KindEvent MessageKind = iota
	KindStatus
	KindLog
	KindSnapshot
	// KindInfo: a device's board attributes changed (Info holds them all,
	// Value their JSON object).
	KindInfo
	// KindPending: the boards waiting for adoption changed (Data only; see
	// Hub.PendingChanged). Every subscriber gets it, like a snapshot.
	KindPending
)

// Message is one item of the hub's stream. Data is its /ws JSON frame,
// encoded once for every subscriber (see frames.go); the other fields let other consumers
// (the compatibility endpoint, MQTT) use it without decoding. A Message is
// shared and must not be modified.
type Message struct {
	Kind   MessageKind
	Device string
	Seq    uint64 // events: their seq; statuses: the seq current when they happened
	TS     time.Time

	Label string          // events
	Value json.RawMessage // events

	Online bool   // statuses
	Reason string // statuses

	Line string // logs

	Info map[string]json.RawMessage // infos: attribute name (no '$') → value

	// Snapshots: every device's state, as Data holds it, for consumers that
	// want the structure (the compatibility endpoint) without decoding Data.
	Devices []DeviceState

	Data []byte

	prepOnce sync.Once
	prepared any
}

// Prepared returns make(m.Data), computed once per message however many
// subscribers ask: the web layer keeps a websocket.PreparedMessage here.
func (m *Message) Prepared(make func([]byte) any) any {
	m.prepOnce.Do(func() { m.prepared = make(m.Data) })
	return m.prepared
}
