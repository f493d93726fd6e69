package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// recorder is a SendFunc that keeps what the board link was asked to write.
type recorder struct {
	mu  sync.Mutex
	got []Command
}

func (rc *recorder) send(_ context.Context, c Command) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	c.Value = append(json.RawMessage(nil), c.Value...)
	rc.got = append(rc.got, c)
	return nil
}

func TestCommand(t *testing.T) {
	errWrite := errors.New("write: broken pipe")
	blocking := func(ctx context.Context, _ Command) error { <-ctx.Done(); return ctx.Err() }
	// A link whose write deadline fires with the command's deadline reports a
	// net timeout, not ctx's error.
	writeTimeout := func(ctx context.Context, _ Command) error {
		<-ctx.Done()
		return errors.New("write tcp 10.0.0.2:80: i/o timeout")
	}
	tests := []struct {
		name     string
		device   string
		cmd      Command
		send     SendFunc // nil: leave the device offline
		detached bool     // attach, then detach before the command
		wantErr  error
		wantMsg  string
	}{
		{"success text value", "kitchen", Command{Value: json.RawMessage(`"toggle"`)}, nopSend, false, nil, ""},
		{"success with label and spaces", "kitchen", Command{Label: "led", Value: json.RawMessage(` "toggle" `)}, nopSend, false, nil, ""},
		{"success number", "kitchen", Command{Label: "setpoint", Value: json.RawMessage(`1`)}, nopSend, false, nil, ""},
		{"unknown device", "nope", Command{Value: json.RawMessage(`"toggle"`)}, nopSend, false, ErrUnknownDevice, ""},
		{"not allowed", "kitchen", Command{Value: json.RawMessage(`"reboot"`)}, nopSend, false, ErrNotAllowed, "allowed: 1, toggle"},
		{"not allowed for another label type", "kitchen", Command{Value: json.RawMessage(`true`)}, nopSend, false, ErrNotAllowed, ""},
		{"offline, never attached", "kitchen", Command{Value: json.RawMessage(`"toggle"`)}, nil, false, ErrOffline, ""},
		{"offline after detach", "kitchen", Command{Value: json.RawMessage(`"toggle"`)}, nopSend, true, ErrOffline, ""},
		{"value not JSON", "kitchen", Command{Value: json.RawMessage(`toggle`)}, nopSend, false, ErrBadCommand, ""},
		{"value empty", "kitchen", Command{}, nopSend, false, ErrBadCommand, ""},
		{"label invalid UTF-8", "kitchen", Command{Label: "\xff", Value: json.RawMessage(`"toggle"`)}, nopSend, false, ErrBadCommand, ""},
		{"label too long", "kitchen", Command{Label: strings.Repeat("l", MaxLabelLen+1), Value: json.RawMessage(`"toggle"`)}, nopSend, false, ErrBadCommand, ""},
		{"link write fails", "kitchen", Command{Value: json.RawMessage(`"toggle"`)}, func(context.Context, Command) error { return errWrite }, false, errWrite, ""},
		{"board never takes it", "kitchen", Command{Value: json.RawMessage(`"toggle"`)}, blocking, false, ErrTimeout, ""},
		{"link write deadline", "kitchen", Command{Value: json.RawMessage(`"toggle"`)}, writeTimeout, false, ErrTimeout, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newTestHub(t, Options{}, DeviceInfo{ID: "kitchen", Commands: []string{"toggle", "1"}})
				if tt.send != nil {
					l := mustAttach(t, h, "kitchen", tt.send)
					if tt.detached {
						l.Detach("gone")
					}
				}
				start := time.Now()
				err := h.Command(context.Background(), tt.device, tt.cmd)
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("answer took %v, the contract promises 2 s", took)
				}
				if tt.wantErr == nil {
					if err != nil {
						t.Fatalf("err %v", err)
					}
					if h.Counters().Commands.Load() != 1 {
						t.Error("Commands counter not incremented")
					}
					return
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("err %q lacks %q", err, tt.wantMsg)
				}
				if h.Counters().CommandErrors.Load() != 1 {
					t.Error("CommandErrors counter not incremented")
				}
			})
		})
	}
}

func TestCommandReachesLink(t *testing.T) {
	h := newTestHub(t, Options{}, DeviceInfo{ID: "relays", Commands: []string{"on", "toggle"}})
	var rc recorder
	mustAttach(t, h, "relays", rc.send)
	cmds := []Command{
		{Label: "relay1", Value: json.RawMessage(`"on"`)},
		{Label: `say "hi"`, Value: json.RawMessage(` "toggle"`)},
		{Value: json.RawMessage(`"toggle"`)},
	}
	for _, c := range cmds {
		if err := h.Command(context.Background(), "relays", c); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{`relay1="on"`, `say "hi"="toggle"`, `="toggle"`}
	for i, c := range rc.got {
		if got := c.Label + "=" + string(c.Value); got != want[i] {
			t.Errorf("command %d reached the link as %s, want %s", i, got, want[i])
		}
	}
}

func TestCommandRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHub(t, Options{}, DeviceInfo{ID: "a", Commands: []string{"toggle"}}, DeviceInfo{ID: "b", Commands: []string{"toggle"}})
		mustAttach(t, h, "a", nil)
		mustAttach(t, h, "b", nil)
		toggle := Command{Value: json.RawMessage(`"toggle"`)}
		ok := 0
		for i := 0; i < 100; i++ {
			if err := h.Command(context.Background(), "a", toggle); err == nil {
				ok++
			} else if !errors.Is(err, ErrRateLimited) {
				t.Fatalf("command %d: %v", i, err)
			}
		}
		if ok != int(CommandBurst) {
			t.Errorf("%d of 100 commands in a burst accepted, want %v", ok, CommandBurst)
		}
		if err := h.Command(context.Background(), "b", toggle); err != nil {
			t.Errorf("another device was rate-limited too: %v", err)
		}
		time.Sleep(time.Second / CommandRate) // fake time: refill one token
		if err := h.Command(context.Background(), "a", toggle); err != nil {
			t.Errorf("after one refill period: %v", err)
		}
		if err := h.Command(context.Background(), "a", toggle); !errors.Is(err, ErrRateLimited) {
			t.Errorf("second command after one refill period: %v, want ErrRateLimited", err)
		}
		time.Sleep(time.Minute)
		ok = 0
		for i := 0; i < 100; i++ {
			if h.Command(context.Background(), "a", toggle) == nil {
				ok++
			}
		}
		if ok != int(CommandBurst) {
			t.Errorf("after a long pause %d accepted, want the burst %v (tokens must be capped)", ok, CommandBurst)
		}
	})
}

func TestCommandKey(t *testing.T) {
	tests := []struct{ value, want string }{
		{`"toggle"`, "toggle"},
		{`"say \"hi\""`, `say "hi"`},
		{`1`, "1"},
		{`true`, "true"},
		{`{"a":1}`, `{"a":1}`},
		{`"\u00e9"`, "é"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			if got := CommandKey(json.RawMessage(tt.value)); got != tt.want {
				t.Errorf("CommandKey(%s) = %q, want %q", tt.value, got, tt.want)
			}
		})
	}
}
