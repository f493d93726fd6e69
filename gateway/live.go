package gateway

import (
	"context"
	"fmt"
	"time"
)

// Liveness and batch device changes, for main: the systemd watchdog asks
// Alive before every ping, the status line reads Boards, and a config
// reload applies its device changes with ApplyDevices.

// Alive reports whether the hub's lock can be taken before ctx ends: nil
// when the hub answers, an error when it is stuck (a deadlock, a method that
// never returns). It starts no goroutine: it polls with TryLock, backing off
// from 50µs to 5ms, so a hub that is merely busy (each holder keeps the
// lock for microseconds) answers within a few milliseconds.
func (h *Hub) Alive(ctx context.Context) error {
	wait := 50 * time.Microsecond
	var t *time.Timer
	for {
		if h.mu.TryLock() {
			h.mu.Unlock()
			return nil
		}
		if t == nil {
			t = time.NewTimer(wait)
			defer t.Stop()
		} else {
			t.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("hub did not answer: %w", context.Cause(ctx))
		case <-t.C:
		}
		if wait *= 2; wait > 5*time.Millisecond {
			wait = 5 * time.Millisecond
		}
	}
}

// Stall holds the hub's lock until ctx ends, so every method blocks as in
// a deadlock. It exists only for tests of what watches the hub (the systemd
// watchdog in main); nothing else may call it.
func (h *Hub) Stall(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	<-ctx.Done()
}

// Boards counts the local devices (not those imported from other gateways)
// and how many of them are online now.
func (h *Hub) Boards() (online, total int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range h.devices {
		if d.info.Remote {
			continue
		}
		total++
		if d.online() {
			online++
		}
	}
	return online, total
}

// ApplyDevices removes the devices in remove (as RemoveDevice does) and adds
// or updates those in upsert (as AddDevice does) in one step, so subscribers
// get one snapshot with the new set instead of one per change, and none when
// nothing changed. The transports of removed devices should have been
// stopped first. It stops at the first invalid entry in upsert; the changes
// before it stay applied and are told to subscribers.
func (h *Hub) ApplyDevices(remove []string, upsert []DeviceInfo) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	changed := false
	for _, id := range remove {
		changed = h.removeDeviceLocked(id) || changed
	}
	var err error
	for _, info := range upsert {
		var c bool
		if c, err = h.addDeviceLocked(info); err != nil {
			break
		}
		changed = c || changed
	}
	if changed {
		h.devicesChangedLocked()
	}
	return err
}
