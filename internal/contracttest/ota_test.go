package contracttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/adapters/ota/espimage"
	"github.com/esp32gw/esp32gw/internal/otaboard"
	"github.com/esp32gw/esp32gw/internal/testgw"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// otaFleet starts a gateway with ws-listen boards ota0…otaN-1 and returns it.
func otaFleet(t *testing.T, n int, env ...string) *testgw.Gateway {
	t.Helper()
	var b strings.Builder
	b.WriteString(header("otagw", ""))
	for i := range n {
		fmt.Fprintf(&b, "  - id: ota%d\n    transport: ws-listen\n    token: \"ota-board-token-%d\"\n", i, i)
	}
	return testgw.StartEnv(t, b.String(), env...)
}

// otaBoard connects emulated board i of otaFleet.
func otaBoard(t *testing.T, gw *testgw.Gateway, i int, fw string, fail string, mod func(*otaboard.Config)) *otaboard.Board {
	t.Helper()
	cfg := otaboard.Config{URL: gw.WSURL(fmt.Sprintf("/device/ota%d", i)), Token: fmt.Sprintf("ota-board-token-%d", i),
		FW: fw, Project: "weather", Chip: "ESP32-S3", MAC: fmt.Sprintf("AA:BB:CC:DD:EE:%02X", i), Fail: fail, Logf: t.Logf}
	if mod != nil {
		mod(&cfg)
	}
	b := otaboard.Start(cfg)
	t.Cleanup(b.Close)
	return b
}

// otaWaitInfo waits until every board's $fw has reached the gateway.
func otaWaitInfo(t *testing.T, gw *testgw.Gateway, n int) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, "boards online reporting $fw", func() bool {
		for i := range n {
			st, body := gw.Get(fmt.Sprintf("/api/devices/ota%d", i))
			var d struct {
				Online bool                       `json:"online"`
				Info   map[string]json.RawMessage `json:"info"`
			}
			if st != 200 || json.Unmarshal(body, &d) != nil || !d.Online || d.Info["fw"] == nil {
				return false
			}
		}
		return true
	})
}

func otaUpload(t *testing.T, gw *testgw.Gateway, img []byte) map[string]any {
	t.Helper()
	st, body := gw.Do(http.MethodPost, "/api/firmware", img)
	if st != http.StatusOK {
		t.Fatalf("upload: %d %s", st, body)
	}
	var fw map[string]any
	json.Unmarshal(body, &fw)
	return fw
}

type otaJob struct {
	Job     string `json:"job"`
	State   string `json:"state"`
	Error   string `json:"error"`
	Devices []struct {
		ID       string `json:"id"`
		State    string `json:"state"`
		Progress int    `json:"progress"`
		Error    string `json:"error"`
	} `json:"devices"`
}

func (j otaJob) states() map[string]string {
	m := map[string]string{}
	for _, d := range j.Devices {
		m[d.ID] = d.State
	}
	return m
}

func otaStart(t *testing.T, gw *testgw.Gateway, sha string, devices []string, parallel int) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"firmware": sha, "devices": devices, "parallel": parallel})
	st, resp := gw.Do(http.MethodPost, "/api/ota", body)
	if st != http.StatusAccepted {
		t.Fatalf("POST /api/ota: %d %s", st, resp)
	}
	var r struct{ Job string }
	json.Unmarshal(resp, &r)
	return r.Job
}

func otaGet(t *testing.T, gw *testgw.Gateway, job string) otaJob {
	t.Helper()
	st, body := gw.Get("/api/ota/" + job)
	var j otaJob
	if st != 200 || json.Unmarshal(body, &j) != nil {
		t.Fatalf("GET /api/ota/%s: %d %s", job, st, body)
	}
	return j
}

// otaWait polls the job until it is no longer running; each poll is passed to check.
func otaWait(t *testing.T, gw *testgw.Gateway, job string, within time.Duration, check func(otaJob)) otaJob {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		j := otaGet(t, gw, job)
		if check != nil {
			check(j)
		}
		if j.State != "running" {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still running after %s: %+v", within, j)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOTAUploadRejects(t *testing.T) {
	// Not parallel: it loads both cores (boards, downloads, a browser or
	// namespaces), and the timed contract tests beside it would measure the
	// machine, not the gateway.
	gw := otaFleet(t, 1)
	good := espimage.Build(espimage.Spec{Chip: "esp32s3", Project: "weather", Version: "2.0.0", IDF: "v5.3.1", Date: "Nov 23 2026", Time: "10:00:00", Size: 64 << 10})
	other := uint16(0x00F0)
	for name, img := range map[string][]byte{
		"text file":  []byte("#include <Arduino.h>\nvoid setup() {}\n"),
		"truncated":  good[:len(good)/2],
		"other chip": espimage.Build(espimage.Spec{ChipID: &other, Project: "weather", Version: "2.0.0"}),
		"oversized":  append(bytes.Clone(good), make([]byte, 8<<20)...),
	} {
		st, body := gw.Do(http.MethodPost, "/api/firmware", img)
		var e struct{ Error string }
		json.Unmarshal(body, &e)
		if st != http.StatusBadRequest || !strings.Contains(e.Error, "ESP32 app image") {
			t.Errorf("%s: %d %s, want 400 with the reason", name, st, body)
		}
	}
	fw := otaUpload(t, gw, good)
	want := map[string]any{"chip": "esp32s3", "project": "weather", "version": "2.0.0", "idf": "v5.3.1", "size": float64(len(good))}
	for k, v := range want {
		if fw[k] != v {
			t.Errorf("upload answer %s = %v, want %v (%v)", k, fw[k], v, fw)
		}
	}
	if b, _ := fw["built"].(string); !strings.Contains(b, "Nov 23 2026") || len(fw["sha256"].(string)) != 64 {
		t.Errorf("upload answer %v", fw)
	}
	st, body := gw.Get("/api/firmware")
	if st != 200 || !strings.Contains(string(body), fw["sha256"].(string)) {
		t.Fatalf("list: %d %s", st, body)
	}
	if st, _ := gw.Do(http.MethodDelete, "/api/firmware/"+fw["sha256"].(string), nil); st != http.StatusNoContent {
		t.Fatalf("delete: %d", st)
	}
	if st, body := gw.Get("/api/firmware"); st != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("list after delete: %d %s", st, body)
	}
}

func TestOTAJobParallel(t *testing.T) {
	// Not parallel: it loads both cores (boards, downloads, a browser or
	// namespaces), and the timed contract tests beside it would measure the
	// machine, not the gateway.
	gw := otaFleet(t, 7)
	var boards []*otaboard.Board
	for i := range 6 {
		boards = append(boards, otaBoard(t, gw, i, "1.0.0", "", nil))
	}
	current := otaBoard(t, gw, 6, "2.0.0", "", nil)
	otaWaitInfo(t, gw, 7)
	fw := otaUpload(t, gw, espimage.Build(espimage.Spec{Chip: "esp32s3", Project: "weather", Version: "2.0.0", Size: 256 << 10}))
	var ids []string
	for i := range 7 {
		ids = append(ids, fmt.Sprintf("ota%d", i))
	}
	job := otaStart(t, gw, fw["sha256"].(string), ids, 2)
	j := otaWait(t, gw, job, 90*time.Second, func(j otaJob) {
		busy := 0
		for _, d := range j.Devices {
			if d.State == "sent" || d.State == "downloading" || d.State == "rebooting" {
				busy++
			}
		}
		if busy > 2 {
			t.Errorf("%d boards updating at once with parallel 2: %v", busy, j.states())
		}
	})
	if j.State != "done" {
		t.Fatalf("job %+v", j)
	}
	for i, d := range j.Devices {
		want := "done"
		if i == 6 {
			want = "skipped"
		}
		if d.State != want || (want == "done" && d.Progress != 100) {
			t.Errorf("%s: %+v, want %s", d.ID, d, want)
		}
	}
	for i, b := range boards {
		if n := len(b.Frames()); n != 1 || b.FW() != "2.0.0" {
			t.Errorf("board %d: %d frames, fw %s", i, n, b.FW())
		}
	}
	if len(current.Frames()) != 0 {
		t.Error("the up-to-date board got an ota frame")
	}
}

func TestOTABadHashStops(t *testing.T) {
	// Not parallel: it loads both cores (boards, downloads, a browser or
	// namespaces), and the timed contract tests beside it would measure the
	// machine, not the gateway.
	gw := otaFleet(t, 3)
	bad := otaBoard(t, gw, 0, "1.0.0", otaboard.FailHash, nil)
	rest := []*otaboard.Board{otaBoard(t, gw, 1, "1.0.0", "", nil), otaBoard(t, gw, 2, "1.0.0", "", nil)}
	otaWaitInfo(t, gw, 3)
	fw := otaUpload(t, gw, espimage.Build(espimage.Spec{Chip: "esp32s3", Project: "weather", Version: "2.0.0", Size: 64 << 10}))
	job := otaStart(t, gw, fw["sha256"].(string), []string{"ota0", "ota1", "ota2"}, 1)
	j := otaWait(t, gw, job, 60*time.Second, nil)
	st := j.states()
	if j.State != "stopped" || st["ota0"] != "failed" || !strings.Contains(j.Devices[0].Error, "sha256") {
		t.Fatalf("job %+v", j)
	}
	time.Sleep(2 * time.Second) // no further board starts, even later
	j = otaGet(t, gw, job)
	for _, d := range j.Devices[1:] {
		if d.State != "queued" {
			t.Errorf("%s: %s after the failure", d.ID, d.State)
		}
	}
	for i, b := range rest {
		if len(b.Frames()) != 0 {
			t.Errorf("board %d got a frame after the failure", i+1)
		}
	}
	if len(bad.Frames()) != 1 {
		t.Errorf("bad board: %d frames", len(bad.Frames()))
	}
}

func TestOTAResumesAfterKill(t *testing.T) {
	// Not parallel: it loads both cores (boards, downloads, a browser or
	// namespaces), and the timed contract tests beside it would measure the
	// machine, not the gateway.
	const n = 4
	gw := otaFleet(t, n)
	var boards []*otaboard.Board
	for i := range n {
		// 128 KiB at 64 KiB/s: about 2 s each, so the kill lands mid-job.
		boards = append(boards, otaBoard(t, gw, i, "1.0.0", "", func(c *otaboard.Config) { c.BytesPerSec = 64 << 10 }))
	}
	otaWaitInfo(t, gw, n)
	fw := otaUpload(t, gw, espimage.Build(espimage.Spec{Chip: "esp32s3", Project: "weather", Version: "2.0.0", Size: 128 << 10}))
	job := otaStart(t, gw, fw["sha256"].(string), []string{"ota0", "ota1", "ota2", "ota3"}, 2)
	testutil.Eventually(t, 30*time.Second, "a board downloading", func() bool {
		for _, d := range otaGet(t, gw, job).Devices {
			if d.State == "downloading" && d.Progress > 0 {
				return true
			}
		}
		return false
	})
	gw.Kill()
	gw.Restart()
	j := otaWait(t, gw, job, 120*time.Second, nil)
	if j.State != "done" {
		t.Fatalf("job after restart: %+v", j)
	}
	for i, b := range boards {
		if f := len(b.Frames()); f != 1 || len(b.Applied()) != 1 || b.FW() != "2.0.0" {
			t.Errorf("board %d: %d ota frames, applied %v", i, f, b.Applied())
		}
	}
}

func TestOTAURLBoundToBoard(t *testing.T) {
	// Not parallel: it loads both cores (boards, downloads, a browser or
	// namespaces), and the timed contract tests beside it would measure the
	// machine, not the gateway.
	gw := otaFleet(t, 2, "ESP32GW_TEST_OTA_URL_TTL=4s")
	a := otaBoard(t, gw, 0, "1.0.0", otaboard.FailIgnore, nil)
	otaBoard(t, gw, 1, "1.0.0", otaboard.FailIgnore, nil)
	otaWaitInfo(t, gw, 2)
	fw := otaUpload(t, gw, espimage.Build(espimage.Spec{Chip: "esp32s3", Project: "weather", Version: "2.0.0", Size: 32 << 10}))
	otaStart(t, gw, fw["sha256"].(string), []string{"ota0", "ota1"}, 2)
	testutil.Eventually(t, 20*time.Second, "board A's frame", func() bool { return len(a.Frames()) == 1 })
	var f struct{ URL string }
	json.Unmarshal(a.Frames()[0], &f)
	get := func(localIP, mac string) int {
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}).DialContext}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, f.URL, nil)
		if mac != "" {
			req.Header.Set("x-ESP32-STA-MAC", mac)
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", f.URL, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if !strings.HasPrefix(f.URL, "http://127.0.0.1:") {
		t.Fatalf("URL %s: want the link's local address", f.URL)
	}
	if st := get("127.0.0.2", ""); st != http.StatusForbidden {
		t.Errorf("A's URL from another address: %d, want 403", st)
	}
	if st := get("127.0.0.1", "AA:BB:CC:DD:EE:01"); st != http.StatusForbidden {
		t.Errorf("A's URL with B's MAC: %d, want 403", st)
	}
	if st := get("127.0.0.1", "AA:BB:CC:DD:EE:00"); st != http.StatusOK {
		t.Errorf("A's URL for A: %d, want 200", st)
	}
	time.Sleep(4 * time.Second)
	if st := get("127.0.0.1", "AA:BB:CC:DD:EE:00"); st != http.StatusGone {
		t.Errorf("expired URL: %d, want 410", st)
	}
}
