package wire

import (
	"errors"
	"testing"
	"time"
)

func TestParseTS(t *testing.T) {
	at := time.Date(2025, 12, 2, 10, 0, 0, 123e6, time.UTC)
	tests := []struct {
		name    string
		frame   string
		labels  string    // fmtReadings of the result
		ts      time.Time // of every reading
		badTime bool      // the frame is counted as malformed, readings still come
	}{
		{"seed form, unix ms", `{"label":"temp","value":21.5,"ts":1764669600123}`, "temp=21.5", at, false},
		{"seed form, RFC 3339", `{"label":"temp","value":21.5,"ts":"2025-12-02T10:00:00.123Z"}`, "temp=21.5", at, false},
		{"RFC 3339 with offset", `{"label":"temp","value":21.5,"ts":"2025-12-02T11:00:00.123+01:00"}`, "temp=21.5", at, false},
		{"flat form: ts is the time of all, never a label", `{"temp":21.5,"hum":40,"ts":1764669600123}`, "temp=21.5 hum=40", at, false},
		{"array of both", `[{"label":"a","value":1,"ts":1764669600123},{"b":2,"ts":"2025-12-02T10:00:00.123Z"}]`, "a=1 b=2", at, false},
		{"no ts: stamped on arrival", `{"temp":21.5}`, "temp=21.5", time.Time{}, false},
		{"1970 is a time", `{"label":"x","value":1,"ts":0}`, "x=1", time.UnixMilli(0).UTC(), false},
		{"not a time: text", `{"label":"x","value":1,"ts":"yesterday"}`, "x=1", time.Time{}, true},
		{"not a time: negative", `{"x":1,"ts":-5}`, "x=1", time.Time{}, true},
		{"not a time: past year 9999", `{"x":1,"ts":1e300}`, "x=1", time.Time{}, true},
		{"not a time: object", `{"x":1,"ts":{"s":1}}`, "x=1", time.Time{}, true},
		{"not a time: null", `{"x":1,"ts":null}`, "x=1", time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Parse([]byte(tt.frame))
			if got := fmtReadings(rs); got != tt.labels {
				t.Fatalf("readings %q, want %q (err %v)", got, tt.labels, err)
			}
			if tt.badTime != (err != nil) || (err != nil && !errors.Is(err, ErrMalformed)) {
				t.Fatalf("err = %v, want malformed: %v", err, tt.badTime)
			}
			for _, r := range rs {
				if !r.TS.Equal(tt.ts) {
					t.Errorf("%s: ts %v, want %v", r.Label, r.TS, tt.ts)
				}
			}
		})
	}
}
