package contracttest

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/testgw"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// snapshotDevices is a snapshot's device ids in order, and their names.
func snapshotDevices(m msg) (ids []string, names map[string]string) {
	names = map[string]string{}
	devs, _ := m["devices"].([]any)
	for _, d := range devs {
		o, _ := d.(map[string]any)
		ids = append(ids, str(o, "id"))
		names[str(o, "id")] = str(o, "name")
	}
	return ids, names
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestReload: SIGHUP applies added, removed and renamed devices at once;
// browsers stay connected and get a snapshot with the new set; a broken
// config is refused with an Error naming the field and line, and the
// running config stays.
func TestReload(t *testing.T) {
	t.Parallel()
	const before = `  - id: keep
    transport: sim
    sim: {board: tutorial, interval: 200ms}
  - id: gone
    transport: sim
    sim: {board: climate, interval: 200ms}
  - id: ren
    name: "Old name"
    transport: sim
    sim: {board: relay, interval: 200ms}
  - id: lb
    transport: ws-listen
    token: "lb-token-0123456789"
`
	g := testgw.Start(t, header("gw1", "")+before)
	board := dialBoard(t, g, "lb", "lb-token-0123456789", true)
	waitOnline(t, g, "lb", true, 5*time.Second)

	var readers []*testutil.WSReader
	for i := 0; i < 3; i++ {
		_, r := browser(t, g, "/ws")
		first := r.NextMsg(t, 5*time.Second)
		if ids, _ := snapshotDevices(first); str(first, "type") != "snapshot" || !sameSet(ids, []string{"keep", "gone", "ren", "lb"}) {
			t.Fatalf("first frame: %v", first)
		}
		readers = append(readers, r)
	}

	// Added (a sim and a ws-listen board), removed, renamed; and a key that
	// needs a restart.
	after := `  - id: keep
    transport: sim
    sim: {board: tutorial, interval: 200ms}
  - id: ren
    name: "New name"
    transport: sim
    sim: {board: relay, interval: 200ms}
  - id: lb
    transport: ws-listen
    token: "lb-token-0123456789"
  - id: added
    transport: sim
    sim: {board: climate, interval: 200ms}
  - id: lb2
    transport: ws-listen
    token: "lb2-token-0123456789"
`
	cfg := strings.Replace(header("gw1", ""), "devices:\n", "limits: {browsers: 500}\ndevices:\n", 1)
	writeConfig(t, g, cfg+after)
	if err := g.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	want := []string{"keep", "ren", "lb", "added", "lb2"}
	for i, r := range readers {
		m := r.WaitFor(t, 10*time.Second, "a snapshot with the new devices", func(m msg) bool {
			ids, _ := snapshotDevices(m)
			return str(m, "type") == "snapshot" && sameSet(ids, want)
		})
		if _, names := snapshotDevices(m); names["ren"] != "New name" {
			t.Errorf("browser %d: snapshot names ren %q, want \"New name\"", i, names["ren"])
		}
	}
	waitOnline(t, g, "added", true, 5*time.Second)
	b2 := dialBoard(t, g, "lb2", "lb2-token-0123456789", true) // the new ws-listen device is served
	b2.send(t, `{"label":"t","value":1}`)
	readers[0].WaitFor(t, 5*time.Second, "an event from the added ws-listen board", func(m msg) bool {
		return str(m, "type") == "event" && str(m, "device") == "lb2"
	})
	if code, _ := g.Get("/api/devices/gone"); code != 404 {
		t.Errorf("GET /api/devices/gone after removing it: %d, want 404", code)
	}
	waitLog(t, g, 5*time.Second, "need a restart", "limits.browsers")

	// A broken config: refused, logged with file, line and field; the
	// running set stays.
	broken := cfg + after + `  - id: bad
    transport: bogus
`
	line := strings.Count(broken[:strings.Index(broken, "transport: bogus")], "\n") + 1
	writeConfig(t, g, broken)
	if err := g.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wantLog := fmt.Sprintf("config.yaml:%d: devices[5].transport:", line)
	waitLog(t, g, 10*time.Second, "level=ERROR", wantLog)
	code, body := g.Get("/api/devices")
	var m msg
	if code != 200 || jsonUnmarshal(body, &m) != nil {
		t.Fatalf("GET /api/devices after a refused reload: %d %s", code, body)
	}
	if ids, _ := snapshotDevices(m); !sameSet(ids, want) {
		t.Errorf("devices after a refused reload: %v, want the running set %v", ids, want)
	}

	// Nobody was disconnected: browsers, the unchanged ws-listen board.
	for i, r := range readers {
		if err, ended := r.Closed(0); ended {
			t.Errorf("browser %d disconnected by a reload: %v", i, err)
		}
	}
	if err, ended := board.r.Closed(0); ended {
		t.Errorf("the unchanged ws-listen board was disconnected by the reload: %v", err)
	}
	if err, _ := g.Stop(); err != nil {
		t.Errorf("exit %v, want 0", err)
	}
}

func writeConfig(t *testing.T, g *testgw.Gateway, yaml string) {
	t.Helper()
	if err := os.WriteFile(g.Config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitLog waits until one log line holds every part.
func waitLog(t *testing.T, g *testgw.Gateway, d time.Duration, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, l := range strings.Split(g.Logs(), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(l, p)
			}
			if ok {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q within %v:\n%s", parts, d, g.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
