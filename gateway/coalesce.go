package gateway

import "time"

// SnapshotEvery is the least time between two device-set snapshots
// broadcast to subscribers. The first change after a quiet spell goes out
// at once; changes within SnapshotEvery of the last snapshot are coalesced
// into one snapshot at the end of the interval, so a client renaming remote
// devices thousands of times a second costs at most 1/SnapshotEvery
// snapshots a second (and readings keep flowing between them).
const SnapshotEvery = 250 * time.Millisecond

// snapshots coalesces device-set snapshots; guarded by Hub.mu.
type snapshots struct {
	last    time.Time   // when the last snapshot was broadcast
	pending *time.Timer // armed while a coalesced snapshot is due; nil otherwise
	sent    uint64      // snapshots broadcast (for tests)
}

// snapshotDueLocked broadcasts a snapshot now, or arranges one at the end
// of the current interval if one went out less than SnapshotEvery ago.
func (h *Hub) snapshotDueLocked() {
	if h.snaps.pending != nil {
		return // already due: it will carry this change too
	}
	wait := SnapshotEvery - time.Since(h.snaps.last)
	if wait <= 0 {
		h.broadcastSnapshotLocked()
		return
	}
	h.snaps.pending = time.AfterFunc(wait, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.snaps.pending = nil
		if !h.closed && len(h.subs) > 0 {
			h.broadcastSnapshotLocked()
		}
	})
}

func (h *Hub) broadcastSnapshotLocked() {
	h.snaps.last = time.Now()
	h.snaps.sent++
	h.broadcastLocked(h.snapshotLocked())
}

// stopSnapshotsLocked cancels a due snapshot (the hub is closing). A timer
// that already fired finds the hub closed and sends nothing.
func (h *Hub) stopSnapshotsLocked() {
	if h.snaps.pending != nil {
		h.snaps.pending.Stop()
		h.snaps.pending = nil
	}
}
