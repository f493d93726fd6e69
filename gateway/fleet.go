package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SendFrame writes a gateway frame ({"type":"ota",…}) to a local device's
// board link verbatim, whatever its command_format, bypassing the command
// allow-list and rate limit: only the gateway itself sends these. It waits
// at most CommandTimeout for the link to write it.
func (h *Hub) SendFrame(ctx context.Context, id string, frame json.RawMessage) error {
	if !json.Valid(frame) {
		return fmt.Errorf("device %s: frame is not JSON", id)
	}
	h.mu.Lock()
	d, ok := h.devices[id]
	if !ok {
		h.mu.Unlock()
		return fmt.Errorf("device %s: %w", id, ErrUnknownDevice)
	}
	link := d.link
	remote := d.info.Remote
	h.mu.Unlock()
	if remote {
		return fmt.Errorf("device %s is attached to another gateway: %w", id, ErrNotAllowed)
	}
	if link == nil {
		return fmt.Errorf("device %s: %w", id, ErrOffline)
	}
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	if err := link.send(ctx, Command{Value: frame, Frame: true}); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("device %s: %w", id, ErrTimeout)
		}
		return fmt.Errorf("device %s: %w", id, err)
	}
	return nil
}

// LinkAddr returns the local and remote addresses of a device's board link
// ("IP:port", as the transport reported them; empty when unknown) and
// whether the device is online.
func (h *Hub) LinkAddr(id string) (local, remote string, online bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.devices[id]
	if !ok || d.link == nil {
		return "", "", false
	}
	return d.localAddr, d.remoteAddr, true
}

// readingRate counts a device's readings in ten-second slots over the last
// minute, for the fleet view's readings per minute.
type readingRate struct {
	slot  int64 // unix seconds / 10 of counts[slot%6]
	count [6]uint32
}

func (r *readingRate) advance(now time.Time) {
	s := now.Unix() / 10
	if s <= r.slot {
		return
	}
	for i := r.slot + 1; i <= s && i <= r.slot+6; i++ {
		r.count[i%6] = 0
	}
	r.slot = s
}

func (r *readingRate) add(now time.Time) {
	r.advance(now)
	r.count[r.slot%6]++
}

// perMinute is the readings of the last minute (the current slot and the
// five before it).
func (r *readingRate) perMinute(now time.Time) int {
	r.advance(now)
	n := 0
	for _, c := range r.count {
		n += int(c)
	}
	return n
}

// StopReason is why a transport whose ctx ended should say its board went
// offline: the cause the gateway gave when it stopped just this device (a
// reload removed or changed it), else "gateway shutting down".
func StopReason(ctx context.Context) string {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause.Error()
	}
	return "gateway shutting down"
}
