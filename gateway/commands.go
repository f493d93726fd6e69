package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// Command checks a command against the device's allow-list and rate limit
// and hands it to the board link, waiting at most CommandTimeout. It returns
// nil once the link has written the command.
func (h *Hub) Command(ctx context.Context, id string, c Command) (err error) {
	defer func() {
		if err != nil {
			h.counters.CommandErrors.Add(1)
		} else {
			h.counters.Commands.Add(1)
		}
	}()
	if len(c.Label) > MaxLabelLen || !utf8.ValidString(c.Label) {
		return fmt.Errorf("%w: label must be valid UTF-8 of at most %d bytes", ErrBadCommand, MaxLabelLen)
	}
	if len(c.Value) == 0 || !json.Valid(c.Value) {
		return fmt.Errorf("%w: value must be JSON", ErrBadCommand)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, c.Value); err != nil {
		return fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	c.Value = compact.Bytes()
	c.Frame = false // gateway frames go through SendFrame only
	h.mu.Lock()
	d, ok := h.devices[id]
	if !ok {
		h.mu.Unlock()
		return fmt.Errorf("device %s: %w", id, ErrUnknownDevice)
	}
	key := CommandKey(c.Value)
	if !d.allowed[key] {
		h.mu.Unlock()
		return fmt.Errorf("device %s: command %q: %w (allowed: %s)", id, key, ErrNotAllowed, strings.Join(sortedKeys(d.allowed), ", "))
	}
	link := d.link
	if link == nil {
		h.mu.Unlock()
		return fmt.Errorf("device %s: %w", id, ErrOffline)
	}
	if !d.commands.Allow(h.now()) {
		h.mu.Unlock()
		return fmt.Errorf("device %s: %w", id, ErrRateLimited)
	}
	h.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	if err := link.send(ctx, c); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("device %s: %w", id, ErrTimeout)
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// The link's own write deadline (set from ctx) fired first.
			return fmt.Errorf("device %s: %w (%v)", id, ErrTimeout, err)
		}
		if link.dead.Load() && !errors.Is(err, ErrOffline) {
			return fmt.Errorf("device %s: %w (%v)", id, ErrOffline, err)
		}
		return fmt.Errorf("device %s: %w", id, err)
	}
	return nil
}

// CommandKey is the allow-list key of a command value: a JSON string's text,
// or any other JSON value's compact text (so `commands: ["1", "true"]` work).
func CommandKey(value json.RawMessage) string {
	var s string
	if len(value) > 0 && value[0] == '"' && json.Unmarshal(value, &s) == nil {
		return s
	}
	return string(value)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
