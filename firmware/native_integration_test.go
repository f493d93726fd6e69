package firmware_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/testgw"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// event matches a /ws event frame; value, when not empty, is the value's JSON.
func event(device, label, value string) func(testutil.Msg) bool {
	return func(m testutil.Msg) bool {
		v, _ := json.Marshal(m["value"])
		return m["type"] == "event" && m["device"] == device && m["label"] == label &&
			(value == "" || string(v) == value)
	}
}

// ack matches the ack of command id; its error would fail the wait with the
// frame shown.
func ack(id string) func(testutil.Msg) bool {
	return func(m testutil.Msg) bool { return m["type"] == "ack" && m["id"] == id }
}

// TestGatewayWithNativeBoards runs the real esp32gw binary on loopback with
// one native board per transport, built from the same gwproto core as the
// sketches: the board dials the gateway (ws-listen), the gateway dials the
// board (ws-dial), and the board on a pty (serial). A browser on /ws sees
// each board's values, and its toggle reaches the board and the new LED
// state comes back.
func TestGatewayWithNativeBoards(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway binary and native boards")
	}
	nativeBoard(t) // build (or skip without g++) before starting anything

	kitchen := startBoard(t, "--mode", "ws-server", "--listen", "127.0.0.1:0", "--id", "kitchen",
		"--interval-ms", "200", "--duration-s", "120")
	kitchenURL := kitchen.firstLine(t)
	link := filepath.Join(t.TempDir(), "ttyBENCH")
	bench := startBoard(t, "--mode", "serial", "--link", link, "--id", "bench", "--noise",
		"--interval-ms", "200", "--duration-s", "120")
	bench.firstLine(t)

	gw := testgw.Start(t, fmt.Sprintf(`
http:
  listen: "127.0.0.1:0"
devices:
  - id: garage
    transport: ws-listen
    token: "garage-board-token"
    commands: [toggle]
    command_format: text
  - id: kitchen
    transport: ws-dial
    url: %q
    commands: [toggle]
    command_format: json
  - id: bench
    transport: serial
    port: %q
    baud: 115200
    commands: [toggle]
    command_format: text
`, kitchenURL, link))
	garage := startBoard(t, "--mode", "ws-client", "--url", gw.WSURL("/device/garage"),
		"--token", "garage-board-token", "--id", "garage", "--interval-ms", "200",
		"--duration-s", "120", "--backoff-min-ms", "100", "--backoff-max-ms", "1000")

	c := gw.Dial("/ws")
	b := testutil.NewWSReader(c)
	seq := 0
	roundTrip := func(t *testing.T, device string) {
		// Values arrive: the counter ticks (hello and the first LED state
		// may have gone by while an earlier subtest was reading).
		b.WaitAll(t, 10*time.Second, device+" values", event(device, "count", ""))
		b.WaitAll(t, 10*time.Second, device+" values", event(device, "count", ""))
		for _, want := range []string{`"LED ON"`, `"LED OFF"`} {
			seq++
			id := fmt.Sprintf("c%d", seq)
			cmd := map[string]string{"type": "command", "id": id, "device": device,
				"label": "led", "value": "toggle"}
			if err := c.WriteJSON(cmd); err != nil {
				t.Fatal(err)
			}
			b.WaitAll(t, 10*time.Second, device+" toggle to "+want, ack(id), event(device, "ledStatus", want))
		}
	}

	t.Run("ws-listen", func(t *testing.T) { roundTrip(t, "garage") })
	t.Run("ws-dial", func(t *testing.T) { roundTrip(t, "kitchen") })
	t.Run("serial", func(t *testing.T) { roundTrip(t, "bench") })

	if err, took := gw.Stop(); err != nil || took > 5*time.Second {
		t.Errorf("gateway stop: %v after %v (want exit 0 within 5 s)\n%s", err, took, gw.Logs())
	}
	for _, nb := range []*board{garage, kitchen, bench} {
		nb.stop(t, true)
	}
	if t.Failed() {
		t.Logf("gateway log:\n%s", gw.Logs())
	}
	_ = os.Remove(link)
}
