package gateway

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCodeAndDescribe(t *testing.T) {
	tests := []struct {
		err      error
		code     Code
		contains string
	}{
		{nil, "", ""},
		{fmt.Errorf("device k: %w", ErrUnknownDevice), CodeUnknownDevice, "unknown device k"},
		{fmt.Errorf("device k: %w", ErrOffline), CodeOffline, "device k is offline"},
		{fmt.Errorf("device k: %w", ErrRateLimited), CodeRateLimited, "at most 20 commands per second"},
		{fmt.Errorf("device k: %w", ErrTimeout), CodeTimeout, "within 2 s"},
		{fmt.Errorf("device k: command %q: %w (allowed: toggle)", "on", ErrNotAllowed), CodeNotAllowed, "allowed: toggle"},
		{fmt.Errorf("%w: value must be JSON", ErrBadCommand), CodeBadCommand, "value must be JSON"},
		{errors.New("disk on fire"), CodeError, "disk on fire"},
		{&UserError{"gateway busy", ErrRateLimited}, CodeRateLimited, "gateway busy"},
		{fmt.Errorf("device k: %w (queue full)", &UserError{"gateway busy", ErrRateLimited}), CodeRateLimited, "device k: gateway busy (queue full)"},
	}
	for _, tt := range tests {
		if got := CodeOf(tt.err); got != tt.code {
			t.Errorf("CodeOf(%v) = %q, want %q", tt.err, got, tt.code)
		}
		if got := Describe("k", tt.err); !strings.Contains(got, tt.contains) || (tt.err == nil) != (got == "") {
			t.Errorf("Describe(%v) = %q, want it to contain %q", tt.err, got, tt.contains)
		}
		if tt.code != "" && tt.code != CodeError {
			if s := Sentinel(tt.code); !errors.Is(tt.err, s) {
				t.Errorf("Sentinel(%q) = %v, not what %v wraps", tt.code, s, tt.err)
			}
		}
	}
	if Sentinel(CodeError) != nil || Sentinel("nonsense") != nil {
		t.Error("Sentinel of an unknown code must be nil")
	}
}

func TestTokenBucket(t *testing.T) {
	b := NewTokenBucket(20, 40)
	now := time.Unix(1000, 0)
	for i := range 40 {
		if !b.Allow(now) {
			t.Fatalf("burst: call %d refused", i)
		}
	}
	if b.Allow(now) {
		t.Fatal("41st call in the same instant allowed")
	}
	now = now.Add(100 * time.Millisecond) // refills 2
	if !b.Allow(now) || !b.Allow(now) || b.Allow(now) {
		t.Fatal("after 100 ms at 20/s, want exactly 2 more")
	}
	now = now.Add(time.Hour)
	n := 0
	for b.Allow(now) {
		n++
	}
	if n != 40 {
		t.Fatalf("after an hour, %d allowed, want the burst of 40", n)
	}
	var zero TokenBucket
	if zero.Allow(now) {
		t.Fatal("the zero bucket must refuse")
	}
}
