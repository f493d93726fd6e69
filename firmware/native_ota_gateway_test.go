package firmware_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/adapters/ota/espimage"
	"github.com/esp32gw/esp32gw/internal/testgw"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// TestNativeBoardsUpdateThroughGateway: the built gateway updates native
// boards end to end: two take the image (each prints "ota applied" once
// and comes back on the new version), the third fails its hash check, the
// job stops there.
func TestNativeBoardsUpdateThroughGateway(t *testing.T) {
	nativeBoard(t) // builds it, or skips without a toolchain
	var cfg strings.Builder
	cfg.WriteString("gateway_id: nat\nstate_dir: data\nhttp:\n  listen: \"127.0.0.1:0\"\ndevices:\n")
	for i := range 3 {
		fmt.Fprintf(&cfg, "  - id: n%d\n    transport: ws-listen\n    token: \"native-token-%d\"\n", i, i)
	}
	gw := testgw.Start(t, cfg.String())
	var lines []<-chan string
	for i := range 3 {
		args := []string{"--mode", "ws-client", "--url", gw.WSURL(fmt.Sprintf("/device/n%d", i)), "--token", fmt.Sprintf("native-token-%d", i),
			"--id", fmt.Sprintf("n%d", i), "--fw", "1.0.0", "--project", "weather", "--chip", "esp32s3",
			"--interval-ms", "500", "--duration-s", "120", "--backoff-min-ms", "100", "--backoff-max-ms", "400"}
		if i == 2 {
			args = append(args, "--ota-fail", "hash")
		}
		lines = append(lines, startBoard(t, args...).stdoutLines())
	}
	testutil.Eventually(t, 20*time.Second, "native boards reporting $fw", func() bool {
		for i := range 3 {
			st, body := gw.Get(fmt.Sprintf("/api/devices/n%d", i))
			if st != 200 || !strings.Contains(string(body), `"fw":"1.0.0"`) {
				return false
			}
		}
		return true
	})
	img := espimage.Build(espimage.Spec{Chip: "esp32s3", Project: "weather", Version: "2.0.0", Size: 200 << 10})
	st, body := gw.Do(http.MethodPost, "/api/firmware", img)
	if st != 200 {
		t.Fatalf("upload: %d %s", st, body)
	}
	var fw struct{ SHA256 string }
	json.Unmarshal(body, &fw)
	req, _ := json.Marshal(map[string]any{"firmware": fw.SHA256, "devices": []string{"n0", "n1", "n2"}, "parallel": 1})
	st, body = gw.Do(http.MethodPost, "/api/ota", req)
	if st != http.StatusAccepted {
		t.Fatalf("POST /api/ota: %d %s", st, body)
	}
	var job struct{ Job string }
	json.Unmarshal(body, &job)
	var j struct {
		State   string
		Devices []struct{ ID, State, Error string }
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, body = gw.Get("/api/ota/" + job.Job)
		json.Unmarshal(body, &j)
		if j.State != "running" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if j.State != "stopped" || len(j.Devices) != 3 || j.Devices[0].State != "done" || j.Devices[1].State != "done" ||
		j.Devices[2].State != "failed" || !strings.Contains(j.Devices[2].Error, "sha256") {
		t.Fatalf("job: %s", body)
	}
	for i := range 2 {
		waitLine(t, lines[i], "ota applied version=2.0.0", 5*time.Second)
	}
}
