package contracttest

import (
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/mosquittotest"
	"github.com/esp32gw/esp32gw/internal/testgw"
)

// A publisher's QoS 1 retransmission (the same payload on the same set
// topic within 1 s) must not toggle twice: one command, one result, and the
// duplicate counted. After the window the same command runs again.
func TestMQTTDuplicateCommands(t *testing.T) {
	t.Parallel()
	testgw.Require(t, "mosquitto")
	b := mosquittotest.Start(t, mosquittotest.Options{})
	g := testgw.Start(t, header("gw1", mqttConfig(b, "gw1-dup", ""))+`  - id: lb
    transport: ws-listen
    token: "lb-token-0123456789"
    commands: [toggle]
    command_format: text
`)
	live := newWatcher(t, b, "esp32gw/#")
	live.wait(t, 0, 10*time.Second, "bridge/state online", func(m mqttMsg) bool {
		return m.topic == "esp32gw/bridge/state" && m.payload == "online"
	})
	board := dialBoard(t, g, "lb", "lb-token-0123456789", true)
	waitOnline(t, g, "lb", true, 5*time.Second)

	from := len(live.all())
	live.publish(t, "esp32gw/lb/set/led", "toggle", false)
	live.publish(t, "esp32gw/lb/set/led", "toggle", false) // the retransmission
	if got := string(board.r.Next(t, 3*time.Second)); got != "toggle" {
		t.Fatalf("the board received %q, want toggle", got)
	}
	select {
	case f := <-board.r.Frames():
		t.Fatalf("a duplicate command reached the board: %q", f)
	case <-time.After(1200 * time.Millisecond): // past the 1 s window
	}
	results := 0
	for _, m := range live.all()[from:] {
		if m.topic == "esp32gw/lb/set/led/result" {
			results++
		}
	}
	if results != 1 {
		t.Errorf("%d results for a command and its duplicate, want 1", results)
	}
	if v := metricValue(t, g, "esp32gw_mqtt_duplicate_commands_total"); v != 1 {
		t.Errorf("esp32gw_mqtt_duplicate_commands_total = %v, want 1", v)
	}
	// After the window the same command is a new one.
	live.publish(t, "esp32gw/lb/set/led", "toggle", false)
	if got := string(board.r.Next(t, 3*time.Second)); got != "toggle" {
		t.Fatalf("after the window the board received %q, want toggle", got)
	}
}
