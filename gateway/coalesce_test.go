package gateway

import (
	"fmt"
	"testing"
	"time"
)

// A storm of device-set changes (a remote device renamed over and over)
// costs a few snapshots, not one per change, and the last one is current.
func TestSnapshotsCoalesced(t *testing.T) {
	h := NewHub(Options{GatewayID: "gw"})
	defer h.Close()
	sub, _, err := h.Subscribe(-1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	const renames = 2000
	start := time.Now()
	for i := range renames {
		if err := h.AddDevice(DeviceInfo{ID: "remote1", Name: fmt.Sprint("name", i), Gateway: "gw2", Remote: true}); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	n := 0
	deadline := time.After(2 * time.Second)
	for {
		select {
		case m := <-sub.C:
			if m.Kind != KindSnapshot {
				continue
			}
			n++
			if len(m.Devices) == 1 && m.Devices[0].Name == fmt.Sprint("name", renames-1) {
				// Current: at most one per SnapshotEvery, plus the first.
				if limit := int(elapsed/SnapshotEvery) + 2; n > limit {
					t.Errorf("%d snapshots for %d renames in %v, want at most %d", n, renames, elapsed, limit)
				}
				if time.Since(start) > elapsed+4*SnapshotEvery {
					t.Errorf("the current snapshot came %v after the last change, want within %v", time.Since(start)-elapsed, SnapshotEvery)
				}
				return
			}
		case <-deadline:
			t.Fatalf("no snapshot with the last name within 2 s (%d snapshots)", n)
		}
	}
}
