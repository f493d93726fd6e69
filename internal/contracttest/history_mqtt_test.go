package contracttest

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/mosquittotest"
	"github.com/esp32gw/esp32gw/internal/testgw"
)

// TestHistoryMQTTStaleRetained is the crash regression: values the board
// sent within commit_interval before a SIGKILL may be lost from the
// history, but the restarted gateway must not publish the older value it
// recovered over the newer one the broker retains.
func TestHistoryMQTTStaleRetained(t *testing.T) {
	t.Parallel()
	br := mosquittotest.Start(t, mosquittotest.Options{})
	const token = "stale-token-0123456789"
	g := testgw.Start(t, header("gwstale", mqttConfig(br, "gwstale-ct", ""))+`  - id: stale
    transport: ws-listen
    token: "`+token+`"
history:
  commit_interval: 5s
`)
	live := newWatcher(t, br, "esp32gw/#")
	live.wait(t, 0, 10*time.Second, "bridge/state online", func(m mqttMsg) bool {
		return m.topic == "esp32gw/bridge/state" && m.payload == "online"
	})
	b := dialBoard(t, g, "stale", token, true)
	waitOnline(t, g, "stale", true, 10*time.Second)

	// 1..M, committed to the history; then M+1..N quickly, so that at the
	// kill (well within the 5 s commit interval) the history's newest is M
	// while the broker holds N.
	const m, n = 150, 300
	send := func(from, to int) {
		for i := from; i <= to; i += 50 {
			frame := "["
			for j := i; j < i+50 && j <= to; j++ {
				if j > i {
					frame += ","
				}
				frame += fmt.Sprintf(`{"label":"n","value":%d}`, j)
			}
			b.send(t, frame+"]")
		}
	}
	send(1, m)
	histPoll(t, 15*time.Second, func() string {
		if c := histMetric(t, g, "esp32gw_history_readings_stored_total"); c < m {
			return fmt.Sprintf("esp32gw_history_readings_stored_total %v, want %d", c, m)
		}
		return ""
	})
	send(m+1, n)
	topic := "esp32gw/stale/n"
	want := strconv.Itoa(n)
	live.wait(t, 0, 10*time.Second, "n = "+want, func(m mqttMsg) bool { return m.topic == topic && m.payload == want })
	// The broker retains N: a new subscriber gets it.
	check := newWatcher(t, br, topic)
	if r, _ := check.wait(t, 0, 5*time.Second, "retained "+topic, topicIs(topic)); !r.retained || r.payload != want {
		t.Fatalf("before the kill the broker holds %s = %q (retained %v), want retained %s", topic, r.payload, r.retained, want)
	}

	mark := len(live.all())
	g.Kill()
	// The Last Will says the bridge went away; then the restart says online.
	_, willAt := live.wait(t, mark, 15*time.Second, "bridge/state offline (Last Will)", func(m mqttMsg) bool {
		return m.topic == "esp32gw/bridge/state" && m.payload == "offline"
	})
	g.Restart()
	_, onlineAt := live.wait(t, willAt, 15*time.Second, "bridge/state online after the restart", func(m mqttMsg) bool {
		return m.topic == "esp32gw/bridge/state" && m.payload == "online"
	})
	// The restart's own round of publishes: the board is not back, so its
	// status goes offline; its meta follows.
	live.wait(t, onlineAt, 10*time.Second, "stale/status offline after the restart", func(m mqttMsg) bool {
		return m.topic == "esp32gw/stale/status" && m.payload == "offline"
	})
	live.wait(t, onlineAt, 10*time.Second, "stale/meta after the restart", topicIs("esp32gw/stale/meta"))
	// And a little more: a round trip through the broker after that (the
	// gateway's publishes are ordered before our own on a single broker).
	probe := newWatcher(t, br, "esp32gw-histprobe/#")
	probe.publish(t, "esp32gw-histprobe/x", "1", false)
	probe.wait(t, 0, 5*time.Second, "the probe round trip", topicIs("esp32gw-histprobe/x"))
	if code, body := g.Get("/api/devices/stale"); code != 200 {
		t.Fatalf("after restart: %d %s", code, body)
	}

	for _, p := range live.all()[mark:] {
		if p.topic != topic {
			continue
		}
		if v, err := strconv.Atoi(p.payload); err != nil || v < n {
			t.Errorf("during the restart the gateway published %s = %q (retained %v): older than %d, the value the broker held", topic, p.payload, p.retained, n)
		}
	}
	after := newWatcher(t, br, topic)
	r, _ := after.wait(t, 0, 5*time.Second, "retained "+topic+" after the restart", topicIs(topic))
	if r.payload != want || !r.retained {
		t.Errorf("after SIGKILL and restart the broker retains %s = %q (retained %v), want %s: the gateway re-published a stale value", topic, r.payload, r.retained, want)
	}
	// What the history recovered (for the report).
	l, _ := device(t, g, "stale")["labels"].(map[string]any)
	ln, _ := l["n"].(map[string]any)
	t.Logf("last value of n recovered from the history after the kill: %v (the board sent %d, %d committed before)", ln["value"], n, m)
}
