package gateway

import (
	"strings"
	"testing"
	"time"
)

func TestParseDurationUnits(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"5s", 5 * time.Second, false}, {"250ms", 250 * time.Millisecond, false}, {"1h30m", 90 * time.Minute, false},
		{"7d", 7 * day, false}, {"1.5d", 36 * time.Hour, false}, {"5y", 5 * 365 * day, false},
		{"", 0, true}, {"d", 0, true}, {"7days", 0, true}, {"-1d", 0, true}, {"-5s", 0, true}, {"1000y", 0, true}, {"NaNd", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v (bad %v)", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		bad  bool
	}{
		{"4096", 4096, false}, {"512KB", 512 << 10, false}, {"100MB", 100 << 20, false}, {"2GB", 2 << 30, false},
		{"2 gb", 2 << 30, false}, {"1.5GB", 3 << 29, false}, {"10B", 10, false},
		{"lots", 0, true}, {"-1MB", 0, true}, {"2TB", 0, true}, {"", 0, true},
	}
	for _, tt := range tests {
		var b ByteSize
		err := b.UnmarshalText([]byte(tt.in))
		if (err != nil) != tt.bad || (!tt.bad && b != tt.want) {
			t.Errorf("ByteSize(%q) = %d, %v; want %d (bad %v)", tt.in, b, err, tt.want, tt.bad)
		}
	}
	for _, b := range []ByteSize{4096, 2 << 30, 100 << 20, 1000} {
		text, _ := b.MarshalText()
		var back ByteSize
		if back.UnmarshalText(text) != nil || back != b {
			t.Errorf("%d → %s → %d", b, text, back)
		}
	}
}

func TestValidateStoreKeys(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c.History.CommitInterval = Duration(time.Hour)
	c.History.Raw = 0
	c.History.MaxSize = 1 << 20
	c.Limits.ValueBytes = 0
	c.Limits.ConnectionsPerIP = -1
	err := c.Validate()
	for _, want := range []string{"history.commit_interval", "history.raw", "history.max_size", "limits.value_bytes", "limits.connections_per_ip"} {
		if err == nil || !strings.Contains(err.Error(), want+":") {
			t.Errorf("Validate() = %v; want an error naming %s", err, want)
		}
	}
}
