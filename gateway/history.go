package gateway

import (
	"context"
	"encoding/json"
	"time"
)

// Record is one stored reading: what the history keeps of an accepted
// reading (and of a backfill or an import, whose Seq is 0).
type Record struct {
	Device, Label string
	TS            time.Time
	Value         json.RawMessage // compact JSON
	Seq           uint64
}

// HistoryQuery asks for one label's readings in [From, To], in at most
// MaxPoints points (DESIGN.md, History).
type HistoryQuery struct {
	Device, Label string
	From, To      time.Time
	MaxPoints     int
}

// HistoryPoint is one point of a chart: a raw reading or a change (TS and
// Value), or a bucket of a numeric label (TS is the bucket's start).
type HistoryPoint struct {
	TS                   time.Time
	Value                json.RawMessage
	Min, Max, Mean, Last float64
	Count                int
}

// Resolutions of a HistoryResult besides a bucket width ("10s", "1m", …).
const (
	ResolutionRaw     = "raw"
	ResolutionChanges = "changes"
)

// HistoryResult answers a HistoryQuery, oldest point first.
type HistoryResult struct {
	Resolution string
	Points     []HistoryPoint
}

// Interval is a stretch of a device's availability; To is nil while it is
// still in force.
type Interval struct {
	From   time.Time
	To     *time.Time
	Online bool
	Reason string
}

// ExportFilter selects stored raw readings; empty Device or Label means all.
type ExportFilter struct {
	From, To      time.Time
	Device, Label string
}

// History is the on-disk record of every accepted reading and every link
// status change, as charts, exports, imports and restarts use it. Append
// and AppendStatus never block on I/O; the reads are safe for concurrent
// use and bounded in memory (Export streams).
type History interface {
	Append(rs ...Record)
	AppendStatus(device string, ts time.Time, online bool, reason string)
	Query(ctx context.Context, q HistoryQuery) (HistoryResult, error)
	// Recent is a label's most recent n raw readings, oldest first.
	Recent(ctx context.Context, device, label string, n int) ([]HistoryPoint, error)
	Availability(ctx context.Context, device string, from, to time.Time) ([]Interval, error)
	// Export calls fn for every stored raw reading that f selects, in time
	// order, stopping at fn's first error.
	Export(ctx context.Context, f ExportFilter, fn func(Record) error) error
}

// Limits on history requests (DESIGN.md, History).
const (
	DefaultMaxPoints = 1000
	MaxMaxPoints     = 10000
	// RecentPoints is how many raw points a chart gets without a range.
	RecentPoints = 600
	// MaxImportBytes bounds an import's body.
	MaxImportBytes = 16 << 20
	// MaxFutureSkew: a reading's ts further ahead of the gateway's clock
	// than this is replaced by the gateway's time.
	MaxFutureSkew = 60 * time.Second
)

// CheckReading reports why a reading cannot be accepted (a bad label or a
// value that is not JSON), or nil: the rule for boards, imports and MQTT.
func CheckReading(r Reading) error { return checkReading(r) }
