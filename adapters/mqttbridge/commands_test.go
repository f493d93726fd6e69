package mqttbridge

import (
	"fmt"
	"testing"
	"time"
)

func TestCommandValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`toggle`, `"toggle"`},
		{`"toggle"`, `"toggle"`},
		{` 42 `, `42`},
		{`-1.5`, `-1.5`},
		{`true`, `true`},
		{`{"a": 1}`, `{"a":1}`},
		{`[1,2]`, `"[1,2]"`},
		{`null`, `"null"`},
		{"toggle\n", `"toggle"`},
		{``, `""`},
		{"\xff", "\"\ufffd\""},
	} {
		if got := string(commandValue([]byte(tc.in))); got != tc.want {
			t.Errorf("commandValue(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestRecentSetsDuplicates(t *testing.T) {
	r := recentSets{}
	t0 := time.Unix(1000, 0)
	cmd := func(dev, label, payload string, after time.Duration) setMsg {
		return setMsg{dev: dev, label: label, payload: []byte(payload), at: t0.Add(after)}
	}
	for _, tc := range []struct {
		m    setMsg
		want bool
	}{
		{cmd("demo", "led", "toggle", 0), false},
		{cmd("demo", "led", "toggle", 300*time.Millisecond), true},   // a retransmission
		{cmd("demo", "led2", "toggle", 400*time.Millisecond), false}, // another topic
		{cmd("demo", "led", "on", 500*time.Millisecond), false},      // another payload
		{cmd("demo", "led", "on", 1600*time.Millisecond), false},     // after the window
		{cmd("demo", "led", "on", 1700*time.Millisecond), true},
	} {
		if got := r.duplicate(tc.m); got != tc.want {
			t.Errorf("%s/%s %q at +%v: duplicate %v, want %v", tc.m.dev, tc.m.label, tc.m.payload, tc.m.at.Sub(t0), got, tc.want)
		}
	}
	// Bounded whatever topics arrive.
	for i := range 3 * maxRecentSets {
		r.duplicate(cmd("demo", fmt.Sprint("l", i), "x", 2*time.Second))
	}
	if len(r) > maxRecentSets {
		t.Errorf("%d topics remembered, want at most %d", len(r), maxRecentSets)
	}
}
