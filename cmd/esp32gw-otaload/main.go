// Command esp32gw-otaload measures a firmware update job on the real
// gateway: it builds and starts esp32gw on loopback with N ws-listen
// boards, connects N emulated boards (internal/otaboard), uploads images
// and runs one job over every board, then reports the job's wall time and
// the gateway's peak RSS (VmHWM) and CPU time. Uploading several images
// first shows that memory does not grow with the image count (images are
// streamed from disk). Linux only (it reads /proc).
//
//	go run ./cmd/esp32gw-otaload -boards 50 -size 1500000 -parallel 8 -images 5
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/esp32gw/esp32gw/adapters/ota/espimage"
	"github.com/esp32gw/esp32gw/internal/gwproc"
	"github.com/esp32gw/esp32gw/internal/otaboard"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "esp32gw-otaload:", err)
		os.Exit(1)
	}
}

func run() error {
	boards := flag.Int("boards", 50, "emulated boards")
	size := flag.Int("size", 1_500_000, "image size in bytes")
	parallel := flag.Int("parallel", 8, "boards updating at once")
	images := flag.Int("images", 5, "images uploaded before the job (the last one is installed)")
	flag.Parse()
	ctx := context.Background()

	dir, err := os.MkdirTemp("", "esp32gw-otaload")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := gwproc.BuildGateway(ctx, dir)
	if err != nil {
		return err
	}
	addr, err := gwproc.FreeAddr()
	if err != nil {
		return err
	}
	token := gwproc.RandomToken()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "gateway_id: otaload\nstate_dir: data\nhttp:\n  listen: %q\n  token: %q\nlimits:\n  connections_per_ip: %d\n  browsers: 100\ndevices:\n", addr, token, 4*(*boards)+64)
	for i := range *boards {
		fmt.Fprintf(&cfg, "  - id: b%d\n    transport: ws-listen\n    token: \"board-token-%d\"\n", i, i)
	}
	if err := os.WriteFile(dir+"/config.yaml", []byte(cfg.String()), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(bin, "-config", dir+"/config.yaml", "-log-level", "warn")
	cmd.Dir = dir
	cmd.SysProcAttr = gwproc.ChildAttrs()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
	}()
	api := func(method, path string, body []byte) (int, []byte, error) {
		req, _ := http.NewRequest(method, "http://"+addr+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes(), nil
	}
	if err := waitFor(30*time.Second, func() bool { st, _, err := api("GET", "/healthz", nil); return err == nil && st == 200 }); err != nil {
		return fmt.Errorf("gateway did not start: %w", err)
	}
	var bs []*otaboard.Board
	for i := range *boards {
		bs = append(bs, otaboard.Start(otaboard.Config{URL: fmt.Sprintf("ws://%s/device/b%d", addr, i), Token: fmt.Sprintf("board-token-%d", i),
			FW: "1.0.0", Project: "loadtest", Chip: "esp32s3", MAC: fmt.Sprintf("02:00:00:00:%02x:%02x", i/256, i%256)}))
	}
	defer func() {
		for _, b := range bs {
			b.Close()
		}
	}()
	if err := waitFor(60*time.Second, func() bool {
		_, body, err := api("GET", "/api/devices", nil)
		return err == nil && bytes.Count(body, []byte(`"fw":"1.0.0"`)) == *boards
	}); err != nil {
		return fmt.Errorf("boards did not come online: %w", err)
	}
	hwm0, _, _ := procStats(cmd.Process.Pid)
	fmt.Printf("gateway up with %d boards online: VmHWM %d kB\n", *boards, hwm0)
	var sha string
	for n := range *images {
		img := espimage.Build(espimage.Spec{Chip: "esp32s3", Project: "loadtest", Version: fmt.Sprintf("2.0.%d", n), Size: *size})
		st, body, err := api("POST", "/api/firmware", img)
		if err != nil || st != 200 {
			return fmt.Errorf("upload: %d %s %v", st, body, err)
		}
		var fw struct{ SHA256 string }
		json.Unmarshal(body, &fw)
		sha = fw.SHA256
		hwm, _, _ := procStats(cmd.Process.Pid)
		fmt.Printf("after uploading image %d (%d bytes): VmHWM %d kB\n", n+1, len(img), hwm)
	}
	_, cpu0, _ := procStats(cmd.Process.Pid)
	req, _ := json.Marshal(map[string]any{"firmware": sha, "devices": nil, "parallel": *parallel})
	start := time.Now()
	st, body, err := api("POST", "/api/ota", req)
	if err != nil || st != http.StatusAccepted {
		return fmt.Errorf("POST /api/ota: %d %s %v", st, body, err)
	}
	var job struct{ Job string }
	json.Unmarshal(body, &job)
	var j struct {
		State   string
		Devices []struct{ State string }
	}
	for {
		_, body, err = api("GET", "/api/ota/"+job.Job, nil)
		if err == nil && json.Unmarshal(body, &j) == nil && j.State != "running" {
			break
		}
		if time.Since(start) > 15*time.Minute {
			return errors.New("job still running after 15 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	wall := time.Since(start)
	hwm, cpu1, err := procStats(cmd.Process.Pid)
	if err != nil {
		return err
	}
	done := 0
	for _, d := range j.Devices {
		if d.State == "done" {
			done++
		}
	}
	fmt.Printf("job %s: %s, %d/%d boards done, image %d bytes, parallel %d\n", job.Job, j.State, done, len(j.Devices), *size, *parallel)
	fmt.Printf("wall time %.1f s; gateway CPU during the job %.2f s; gateway peak RSS (VmHWM) %d kB\n", wall.Seconds(), (cpu1 - cpu0).Seconds(), hwm)
	if done != *boards {
		return fmt.Errorf("%d of %d boards done", done, *boards)
	}
	return nil
}

func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// procStats reads a process's VmHWM (kB) and CPU time (utime+stime).
func procStats(pid int) (hwmKB int64, cpu time.Duration, err error) {
	st, err := gwproc.ReadStatus(pid)
	if err != nil {
		return 0, 0, err
	}
	if cpu, err = gwproc.CPUTime(pid); err != nil {
		return 0, 0, err
	}
	return st.HWMKB, cpu, nil
}
