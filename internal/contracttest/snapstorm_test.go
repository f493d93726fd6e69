package contracttest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/mosquittotest"
	"github.com/esp32gw/esp32gw/internal/testgw"
)

// Snapshot storm: an MQTT client in a cluster renames a remote device
// thousands of times a second. Device-set snapshots are coalesced (a few a
// second), and a local board's readings still reach a browser promptly.
func TestSnapshotStormKeepsReadingsFlowing(t *testing.T) {
	t.Parallel()
	testgw.Require(t, "mosquitto")
	b := mosquittotest.Start(t, mosquittotest.Options{})
	g := testgw.Start(t, header("gw-b", mqttConfig(b, "gw-b", "  cluster: true\n"))+`  - id: lb
    transport: ws-listen
    token: "lb-token-0123456789"
`)
	flooder := newWatcher(t, b)
	meta := func(name string) string {
		return fmt.Sprintf(`{"gateway":"gw-z","name":%q,"transport":"sim","commands":[]}`, name)
	}
	// Retained, as gateways publish metas: the bridge may subscribe after this.
	flooder.publish(t, "esp32gw/remote1/meta", meta("first"), true)
	imported := func() bool { code, _ := g.Get("/api/devices/remote1"); return code == 200 }
	for deadline := time.Now().Add(10 * time.Second); !imported(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the remote device was not imported within 10 s")
		}
	}
	board := dialBoard(t, g, "lb", "lb-token-0123456789", false)
	waitOnline(t, g, "lb", true, 5*time.Second)
	_, r := browser(t, g, "/ws")
	r.NextMsg(t, 5*time.Second) // the snapshot

	const storm = 4 * time.Second
	stop := make(chan struct{})
	var wg sync.WaitGroup
	published := 0
	wg.Go(func() { // ~2000 renames a second
		repeat(stop, time.Millisecond, func(int) bool {
			for _, name := range []string{"A", "B"} {
				flooder.c.Publish("esp32gw/remote1/meta", 0, false, meta(name))
				published++
			}
			return true
		})
	})
	wg.Go(func() { // the local board: 20 readings a second, each carrying its send time
		repeat(stop, 50*time.Millisecond, func(int) bool {
			board.send(t, fmt.Sprintf(`{"label":"t","value":%d}`, time.Now().UnixMicro()))
			return true
		})
	})

	var latencies []time.Duration
	snapshots := 0
	end := time.After(storm)
read:
	for {
		select {
		case f := <-r.Frames():
			var m struct {
				Type, Device string
				Value        json.Number
			}
			if json.Unmarshal(f, &m) != nil {
				continue
			}
			switch {
			case m.Type == "snapshot":
				snapshots++
			case m.Type == "event" && m.Device == "lb":
				if us, err := m.Value.Int64(); err == nil {
					latencies = append(latencies, time.Since(time.UnixMicro(us)))
				}
			}
		case <-end:
			break read
		}
	}
	close(stop)
	wg.Wait()
	if err, closed := r.Closed(0); closed {
		t.Fatalf("the browser was closed during the storm: %v", err)
	}
	if len(latencies) < 20 {
		t.Fatalf("only %d of the local board's readings reached the browser in %v", len(latencies), storm)
	}
	slices.Sort(latencies)
	p50, p99 := latencies[len(latencies)/2], latencies[len(latencies)*99/100]
	perSec := float64(snapshots) / storm.Seconds()
	t.Logf("%d renames published; browser got %d readings (latency p50 %v, p99 %v, max %v) and %d snapshots (%.1f/s)",
		published, len(latencies), p50, p99, latencies[len(latencies)-1], snapshots, perSec)
	if p50 > 250*time.Millisecond {
		t.Errorf("board-to-browser latency p50 %v during the storm, want well under 250 ms", p50)
	}
	if perSec > 6 {
		t.Errorf("%.1f snapshots a second during the storm, want at most about 4 (coalesced)", perSec)
	}
}
