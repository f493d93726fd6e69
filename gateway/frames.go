package gateway

import (
	"encoding/json"
	"fmt"
	"time"
)

// Every frame the gateway sends a browser on /ws is encoded here, and only
// here (DESIGN.md "Browser protocol"): the hub's stream (snapshot, event,
// status, log), encoded once per message for every subscriber, and the
// answers to a browser's own messages (ack, error), encoded by the web layer
// with AckFrame and ErrorFrame.

// newEventMessage is one accepted reading:
// {"type":"event","device":D,"label":L,"value":V,"ts":T,"seq":N}.
func newEventMessage(device, label string, value json.RawMessage, ts time.Time, seq uint64) *Message {
	m := &Message{Kind: KindEvent, Device: device, Seq: seq, Label: label, Value: value, TS: ts}
	m.Data = mustJSON(struct {
		Type   string          `json:"type"`
		Device string          `json:"device"`
		Label  string          `json:"label"`
		Value  json.RawMessage `json:"value"`
		TS     string          `json:"ts"`
		Seq    uint64          `json:"seq"`
	}{"event", device, label, value, FormatTime(ts), seq})
	return m
}

// newStatusMessage is an availability change:
// {"type":"status","device":D,"online":B,"reason":R,"ts":T,"reconnects":N}
// (reason only while offline).
func newStatusMessage(device string, online bool, reason string, ts time.Time, seq uint64, reconnects int) *Message {
	m := &Message{Kind: KindStatus, Device: device, Seq: seq, Online: online, Reason: reason, TS: ts}
	m.Data = mustJSON(struct {
		Type       string `json:"type"`
		Device     string `json:"device"`
		Online     bool   `json:"online"`
		Reason     string `json:"reason,omitempty"`
		TS         string `json:"ts"`
		Reconnects int    `json:"reconnects"`
	}{"status", device, online, reason, FormatTime(ts), reconnects})
	return m
}

// newLogMessage is a console line: {"type":"log","device":D,"line":L,"ts":T}.
func newLogMessage(device, line string, ts time.Time) *Message {
	m := &Message{Kind: KindLog, Device: device, Line: line, TS: ts}
	m.Data = mustJSON(struct {
		Type   string `json:"type"`
		Device string `json:"device"`
		Line   string `json:"line"`
		TS     string `json:"ts"`
	}{"log", device, line, FormatTime(ts)})
	return m
}

// newPendingMessage says the boards waiting for adoption changed:
// {"type":"pending","count":N}.
func newPendingMessage(count int) *Message {
	m := &Message{Kind: KindPending, TS: time.Now()}
	m.Data = mustJSON(struct {
		Type  string `json:"type"`
		Count int    `json:"count"`
	}{"pending", count})
	return m
}

// newSnapshotMessage is every device's state:
// {"type":"snapshot","seq":N,"gateway":G,"devices":[…]}. The message also
// carries devices themselves (Message.Devices), so no consumer decodes Data.
func newSnapshotMessage(gateway string, seq uint64, devices []DeviceState) *Message {
	m := &Message{Kind: KindSnapshot, Seq: seq, Devices: devices}
	m.Data = mustJSON(struct {
		Type    string        `json:"type"`
		Seq     uint64        `json:"seq"`
		Gateway string        `json:"gateway"`
		Devices []DeviceState `json:"devices"`
	}{"snapshot", seq, gateway, devices})
	return m
}

// AckFrame answers a browser's command or subscribe: {"type":"ack","id":ID}
// (id omitted when the browser sent none). An id that is not valid JSON is
// left out.
func AckFrame(id json.RawMessage) []byte {
	return answerFrame("ack", id, nil)
}

// ErrorFrame answers a browser's message that failed:
// {"type":"error","id":ID,"error":MSG} (id omitted when unknown). An id that
// is not valid JSON is left out.
func ErrorFrame(id json.RawMessage, msg string) []byte {
	return answerFrame("error", id, &msg)
}

func answerFrame(typ string, id json.RawMessage, msg *string) []byte {
	if len(id) > 0 && !json.Valid(id) {
		id = nil
	}
	return mustJSON(struct {
		Type  string          `json:"type"`
		ID    json.RawMessage `json:"id,omitempty"`
		Error *string         `json:"error,omitempty"`
	}{typ, id, msg})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only RawMessage values can fail, and they were validated on entry.
		panic(fmt.Sprintf("gateway: encode message: %v", err))
	}
	return b
}
