package contracttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/testgw"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// A history database that cannot be read must not stop the gateway: it
// logs an Error, moves the file aside as history.db.corrupt-TIMESTAMP,
// starts a new one and keeps serving live data (and history again).
func TestHistoryCorruptDatabaseMovedAside(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gw1", "")+`  - id: demo
    transport: sim
    sim: {board: climate, interval: 50ms}
`)
	waitOnline(t, g, "demo", true, 10*time.Second)
	if err, _ := g.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	db := filepath.Join(g.Dir, "data", "history.db")
	garbage := []byte(strings.Repeat("this is not a SQLite database, a damaged SD card wrote it. ", 200))
	if err := os.WriteFile(db, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(db + "-wal")
	os.Remove(db + "-shm")

	g.Restart()
	// Live data flows.
	_, br := browser(t, g, "/ws")
	br.NextMsg(t, 10*time.Second)
	br.WaitFor(t, 10*time.Second, "a live event from demo", func(m msg) bool { return isEvent(m) && str(m, "device") == "demo" })
	// The damaged file is kept aside, untouched, and the log says so at Error.
	aside, _ := filepath.Glob(db + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("files moved aside: %v, want one history.db.corrupt-TIMESTAMP", aside)
	}
	if b, err := os.ReadFile(aside[0]); err != nil || string(b) != string(garbage) {
		t.Errorf("the damaged file was not kept as it was (%v)", err)
	}
	logs := g.Logs()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "corrupt") {
		t.Errorf("no Error log line about the damaged database:\n%s", logs)
	}
	// History works again in the new database.
	testutil.Eventually(t, 10*time.Second, "history in the new database", func() bool {
		code, body := g.Get("/api/devices/demo/history?label=temperature&from=-1m")
		return code == 200 && strings.Contains(string(body), `"resolution":"raw"`) && strings.Contains(string(body), `"value":`)
	})
}
