package gateway

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// HistoryConfig is the on-disk history (DESIGN.md, history:).
type HistoryConfig struct {
	Raw            Duration `yaml:"raw"`             // every reading, this long
	Minute         Duration `yaml:"minute"`          // then 1-minute rollups
	Hour           Duration `yaml:"hour"`            // then 1-hour rollups
	MaxSize        ByteSize `yaml:"max_size"`        // past this the oldest data goes first
	CommitInterval Duration `yaml:"commit_interval"` // readings reach the disk at least this often
}

// LimitsConfig bounds what boards and clients can make the gateway hold.
type LimitsConfig struct {
	LabelsPerDevice  int      `yaml:"labels_per_device"`
	ValueBytes       ByteSize `yaml:"value_bytes"`
	Browsers         int      `yaml:"browsers"`
	ConnectionsPerIP int      `yaml:"connections_per_ip"`
}

// MDNSConfig turns on advertising and browsing over mDNS.
type MDNSConfig struct {
	Enabled bool `yaml:"enabled"`
}

const day = 24 * time.Hour

func defaultHistory() HistoryConfig {
	return HistoryConfig{
		Raw: Duration(7 * day), Minute: Duration(90 * day), Hour: Duration(5 * 365 * day),
		MaxSize: 2 << 30, CommitInterval: Duration(5 * time.Second),
	}
}

func defaultLimits() LimitsConfig {
	return LimitsConfig{LabelsPerDevice: 256, ValueBytes: 4096, Browsers: 2000, ConnectionsPerIP: 64}
}

// ParseDuration reads a duration with Go's units (ms, s, m, h, and
// combinations like 1h30m) plus d (days) and y (365 days): "7d", "5y", "1.5d".
func ParseDuration(s string) (time.Duration, error) {
	if n := len(s); n > 1 && (s[n-1] == 'd' || s[n-1] == 'y') {
		f, err := strconv.ParseFloat(s[:n-1], 64)
		unit := day
		if s[n-1] == 'y' {
			unit = 365 * day
		}
		if err != nil || !(f >= 0 && f <= 200*365*float64(day)/float64(unit)) { // also refuses NaN
			return 0, fmt.Errorf("not a duration (e.g. 500ms, 5s, 24h, 7d, 5y): %q", s)
		}
		return time.Duration(f * float64(unit)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("not a duration (e.g. 500ms, 5s, 24h, 7d, 5y): %q", s)
	}
	return d, nil
}

// ByteSize is a size in bytes written as 4096, "512KB", "100MB", "2GB"
// (powers of 1024).
type ByteSize int64

// UnmarshalText parses a size.
func (b *ByteSize) UnmarshalText(t []byte) error {
	s := strings.ToUpper(strings.TrimSpace(string(t)))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 0 && f*float64(mult) <= 1<<50) { // also refuses NaN
		return fmt.Errorf("not a size (e.g. 4096, 512KB, 100MB, 2GB): %q", t)
	}
	*b = ByteSize(f * float64(mult))
	return nil
}

// MarshalText writes the size in the largest whole unit.
func (b ByteSize) MarshalText() ([]byte, error) {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}} {
		if int64(b) >= u.mult && int64(b)%u.mult == 0 {
			return []byte(strconv.FormatInt(int64(b)/u.mult, 10) + u.suffix), nil
		}
	}
	return []byte(strconv.FormatInt(int64(b), 10)), nil
}

// validateStore checks history: and limits:.
func (c *Config) validateStore(bad func(field, format string, args ...any)) {
	h := c.History
	for _, d := range []struct {
		field string
		v     Duration
		min   time.Duration
	}{{"history.raw", h.Raw, time.Hour}, {"history.minute", h.Minute, time.Hour}, {"history.hour", h.Hour, time.Hour}} {
		if time.Duration(d.v) < d.min {
			bad(d.field, "must be at least %v, got %v", d.min, time.Duration(d.v))
		}
	}
	if ci := time.Duration(h.CommitInterval); ci < 100*time.Millisecond || ci > time.Minute {
		bad("history.commit_interval", "must be between 100ms and 1m (a power cut loses at most this), got %v", ci)
	}
	if h.MaxSize < 16<<20 {
		bad("history.max_size", "must be at least 16MB, got %d bytes", int64(h.MaxSize))
	}
	l := c.Limits
	for _, v := range []struct {
		field    string
		n        int64
		min, max int64
	}{
		{"limits.labels_per_device", int64(l.LabelsPerDevice), 1, 4096},
		{"limits.value_bytes", int64(l.ValueBytes), 16, 64 << 10},
		{"limits.browsers", int64(l.Browsers), 1, 100000},
		{"limits.connections_per_ip", int64(l.ConnectionsPerIP), 1, 100000},
	} {
		if v.n < v.min || v.n > v.max {
			bad(v.field, "must be between %d and %d, got %d", v.min, v.max, v.n)
		}
	}
}
