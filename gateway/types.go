package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Sentinel errors that the edges map to a /ws error, an HTTP status or an
// MQTT result with errors.Is.
var (
	ErrUnknownDevice = errors.New("unknown device")
	ErrNotAllowed    = errors.New("not in the device's allow-list")
	ErrOffline       = errors.New("device is offline")
	ErrRateLimited   = errors.New("too many commands, slow down")
	ErrTimeout       = errors.New("board did not take the command in time")
	ErrBadCommand    = errors.New("bad command")
	ErrSlowConsumer  = errors.New("subscriber fell behind")
	ErrShutdown      = errors.New("gateway is shutting down")
)

// CommandTimeout bounds how long a command may wait for the board link to
// write it, below CommandAnswerWithin so the answer is on time.
const CommandTimeout = 1800 * time.Millisecond

// Reading is one labelled value from a board. Value is compact, valid JSON.
// TS is the board's own time for it (a "ts" in the frame), zero when the
// board sent none: the core stamps it on arrival.
type Reading struct {
	Label string
	Value json.RawMessage
	TS    time.Time
	// Attr: the reading describes the board, not a sensor (a "$fw",
	// "$rssi", … label on the wire); Label is the name without the '$'.
	// Attributes are kept under the device's info, not as labels.
	Attr bool
}

// AttrPrefix marks an attribute label on the wire and in the history store
// ("$rssi").
const AttrPrefix = "$"

// Command is what a browser, HTTP client or MQTT publisher asks a board to do.
// Label may be empty (a bare "toggle"). Value is compact, valid JSON.
type Command struct {
	Label string
	Value json.RawMessage
	// Frame: Value is a gateway frame for the board ({"type":"ota",…},
	// {"type":"adopted",…}), written verbatim whatever the device's
	// command_format. Only the gateway itself sends these (Hub.SendFrame).
	Frame bool
}

// SendFunc hands one command to a board link. It must return once the link
// has written the command (nil), failed, or ctx ended; it must not keep a
// reference to c after it returns. Implementations are called concurrently.
type SendFunc func(ctx context.Context, c Command) error

// Transport keeps links to boards alive until ctx ends. Run returns only after
// every goroutine it started has exited.
type Transport interface {
	Run(ctx context.Context, s Sink) error
}

// Sink is the core as a transport sees it. It is safe for concurrent use and
// never blocks long.
type Sink interface {
	// Attach reports that the board link for device is up and hands the core
	// the function that writes commands to it. The device goes online. The
	// returned Link publishes the board's readings and must be detached when
	// the link goes down. Attaching a device that already has a link replaces
	// that link (the old Link's methods become no-ops).
	Attach(device string, send SendFunc) (Link, error)
	// SetOfflineReason says why an offline device cannot be reached (a
	// failing redial); browsers see a status event when the reason changes.
	SetOfflineReason(device, reason string)
}

// Link is one live board link as the core sees it: what a transport calls
// while the link is up. Its methods are safe for concurrent use, never block
// long, and become no-ops once the link is detached or replaced.
type Link interface {
	// Device is the id of the device this link serves.
	Device() string
	// Publish hands the board's readings to the core. Readings with a bad
	// label or value are dropped and counted.
	Publish(rs ...Reading)
	// Log hands a console line (serial boot messages, debugging prints) to
	// subscribers that asked for logs. It never becomes an event.
	Log(line string)
	// Malformed counts a frame or line from the board that could not be
	// used. It reports whether the caller should log it now (at most once a
	// second per device, so a babbling board cannot flood the log).
	Malformed() (logNow bool)
	// Seen records that the board showed a sign of life (a pong) without data.
	Seen()
	// SetAddr records the link socket's local and remote addresses
	// ("IP:port"): the fleet view shows the remote one, and firmware
	// updates build the board's download URL on the local one.
	SetAddr(local, remote string)
	// Detach reports that the link went down; reason says why and reaches
	// browsers in the status event. Detaching twice, or after the link was
	// replaced, does nothing.
	Detach(reason string)
}

// DeviceInfo describes a device as browsers and other gateways see it.
type DeviceInfo struct {
	ID        string
	Name      string
	Gateway   string // the gateway the board is attached to
	Transport string
	Commands  []string // allow-list of command values
	Remote    bool     // imported from another gateway over MQTT
	// Source says where a local device is defined: SourceConfig
	// (config.yaml) or SourceAPI (devices.yaml, added by adoption); empty
	// for remote devices. Only an API device can be forgotten.
	Source string
}

// Device sources (DeviceInfo.Source, "source" in the device object).
const (
	SourceConfig = "config"
	SourceAPI    = "api"
)

// TimeFormat is how every timestamp leaves the gateway: UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// FormatTime formats t as the contract's timestamps ("2026-11-23T10:00:00.123Z").
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }
