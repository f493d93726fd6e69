package ota

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/adapters/ota/espimage"
)

var v2 = espimage.Spec{Chip: "esp32s3", Project: "weather", Version: "2.0.0", Size: 8192}

func TestJobParallelCompletes(t *testing.T) {
	r := newRig(t, t.TempDir())
	fw := r.upload(v2)
	var ids []string
	for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
		r.addBoard(id, "1.0.0", "weather", "ESP32-S3", r.good)
		ids = append(ids, id)
	}
	job, err := r.m.StartJob(fw.SHA256, ids, 2)
	if err != nil {
		t.Fatal(err)
	}
	v := r.waitJob(job, finished)
	if v.State != JobDone {
		t.Fatalf("job %+v", v)
	}
	for _, d := range v.Devices {
		if d.State != StateDone || d.Progress != 100 || r.frameCount(d.ID) != 1 {
			t.Fatalf("device %+v frames %d", d, r.frameCount(d.ID))
		}
	}
	if r.peak > 2 {
		t.Fatalf("%d boards updated at once, parallel 2", r.peak)
	}
}

func TestJobSkips(t *testing.T) {
	r := newRig(t, t.TempDir())
	fw := r.upload(v2)
	r.addBoard("same", "2.0.0", "weather", "esp32s3", r.good)
	r.addBoard("chip", "1.0.0", "weather", "esp32c3", r.good)
	r.addBoard("proj", "1.0.0", "garden", "esp32s3", r.good)
	r.addBoard("old", "1.0.0", "weather", "ESP32-S3", r.good)
	job, err := r.m.StartJob(fw.SHA256, []string{"same", "chip", "proj", "old"}, 4)
	if err != nil {
		t.Fatal(err)
	}
	v := r.waitJob(job, finished)
	want := map[string]string{"same": StateSkipped, "chip": StateSkipped, "proj": StateSkipped, "old": StateDone}
	if got := states(v); !equal(got, want) || v.State != JobDone {
		t.Fatalf("states %v, job %s", got, v.State)
	}
	for _, id := range []string{"same", "chip", "proj"} {
		if r.frameCount(id) != 0 {
			t.Fatalf("%s got a frame", id)
		}
	}
	// No devices: every board of the project and chip on another version.
	r.addBoard("older", "0.9.0", "weather", "esp32s3", r.good)
	job, err = r.m.StartJob(fw.SHA256, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	v = r.waitJob(job, finished)
	if got := states(v); !equal(got, map[string]string{"older": StateDone}) {
		t.Fatalf("all-boards job: %v", got)
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestJobStopsOnFirstFailure(t *testing.T) {
	r := newRig(t, t.TempDir())
	fw := r.upload(v2)
	r.addBoard("a", "1.0.0", "weather", "esp32s3", r.good)
	r.addBoard("bad", "1.0.0", "weather", "esp32s3", func(b *fakeBoard, f otaFrame) {
		b.attr("ota", map[string]any{"state": "failed", "error": "sha256 mismatch"})
	})
	r.addBoard("c", "1.0.0", "weather", "esp32s3", r.good)
	r.addBoard("d", "1.0.0", "weather", "esp32s3", r.good)
	job, _ := r.m.StartJob(fw.SHA256, []string{"a", "bad", "c", "d"}, 1)
	v := r.waitJob(job, finished)
	got := states(v)
	if v.State != JobStopped || got["a"] != StateDone || got["bad"] != StateFailed || got["c"] != StateQueued || got["d"] != StateQueued {
		t.Fatalf("job %s, states %v", v.State, got)
	}
	if !strings.Contains(v.Devices[1].Error, "sha256 mismatch") || !strings.Contains(v.Error, "bad") {
		t.Fatalf("errors: %+v", v)
	}
	for i := 0; i < 5; i++ {
		r.step()
	}
	if r.frameCount("c")+r.frameCount("d") != 0 {
		t.Fatal("a board started after the failure")
	}
}

func TestJobTimeoutAndOffline(t *testing.T) {
	r := newRig(t, t.TempDir())
	fw := r.upload(v2)
	r.addBoard("silent", "1.0.0", "weather", "esp32s3", func(b *fakeBoard, f otaFrame) { b.link.Detach("gone") })
	job, _ := r.m.StartJob(fw.SHA256, []string{"silent"}, 1)
	r.waitJob(job, func(JobView) bool {
		_, _, online := r.hub.LinkAddr("silent")
		return r.frameCount("silent") == 1 && !online
	})
	r.clock.Add(ReturnTimeout - time.Second)
	r.step()
	// Its link dropped before it downloaded anything: still "sent".
	if v, _ := r.m.Job(job); v.Devices[0].State != StateSent {
		t.Fatalf("failed early, or rebooting without an image: %+v", v)
	}
	r.clock.Add(time.Second)
	v := r.waitJob(job, finished)
	if v.State != JobStopped || v.Devices[0].State != StateFailed || !strings.Contains(v.Devices[0].Error, "within 3m0s") {
		t.Fatalf("%+v", v)
	}

	// A board offline when its turn comes is waited for, then failed.
	b := r.boards["silent"]
	_ = b
	job, err := r.m.StartJob(fw.SHA256, []string{"silent"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	r.step()
	if v, _ := r.m.Job(job); v.Devices[0].State != StateQueued {
		t.Fatalf("%+v", v)
	}
	r.clock.Add(readyGrace)
	v = r.waitJob(job, finished)
	if v.Devices[0].State != StateFailed || !strings.Contains(v.Devices[0].Error, "offline") {
		t.Fatalf("%+v", v)
	}
}

func TestJobResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir)
	fw := r.upload(v2)
	hold := make(chan otaFrame, 8)
	for _, id := range []string{"a", "b", "c"} {
		r.addBoard(id, "1.0.0", "weather", "esp32s3", func(b *fakeBoard, f otaFrame) { hold <- f })
	}
	job, _ := r.m.StartJob(fw.SHA256, []string{"a", "b", "c"}, 2)
	r.waitJob(job, func(v JobView) bool { return states(v)["a"] == StateSent && states(v)["b"] == StateSent })
	<-hold
	<-hold
	r.restart() // the old manager is gone; a new one reads the job from disk
	r.step()
	if n := r.frameCount("a") + r.frameCount("b"); n != 2 {
		t.Fatalf("%d frames after restart, want the 2 from before", n)
	}
	r.boards["a"].onFrame, r.boards["b"].onFrame, r.boards["c"].onFrame = r.good, r.good, r.good
	r.reboot(r.boards["a"], "2.0.0")
	r.reboot(r.boards["b"], "2.0.0")
	v := r.waitJob(job, finished)
	if v.State != JobDone || r.frameCount("a") != 1 || r.frameCount("b") != 1 || r.frameCount("c") != 1 {
		t.Fatalf("%+v frames a=%d b=%d c=%d", v, r.frameCount("a"), r.frameCount("b"), r.frameCount("c"))
	}
}

func TestCancel(t *testing.T) {
	r := newRig(t, t.TempDir())
	fw := r.upload(v2)
	hold := make(chan otaFrame, 8)
	r.addBoard("a", "1.0.0", "weather", "esp32s3", func(b *fakeBoard, f otaFrame) { hold <- f })
	r.addBoard("b", "1.0.0", "weather", "esp32s3", r.good)
	job, _ := r.m.StartJob(fw.SHA256, []string{"a", "b"}, 1)
	f := <-hold
	v, err := r.m.CancelJob(job)
	if err != nil || v.State != JobCancelled || states(v)["b"] != StateCancelled || states(v)["a"] != StateSent {
		t.Fatalf("%+v %v", v, err)
	}
	r.reboot(r.boards["a"], f.Version)
	v = r.waitJob(job, func(v JobView) bool { return v.Devices[0].State == StateDone })
	if v.State != JobCancelled || r.frameCount("b") != 0 {
		t.Fatalf("%+v", v)
	}
	if _, err := r.m.CancelJob("nope"); status(err) != http.StatusNotFound {
		t.Fatal(err)
	}
}

func status(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

func TestDownloadURL(t *testing.T) {
	r := newRig(t, t.TempDir())
	fw := r.upload(v2)
	frames := make(chan otaFrame, 8)
	r.addBoard("a", "1.0.0", "weather", "esp32s3", func(b *fakeBoard, f otaFrame) { frames <- f })
	r.addBoard("b", "1.0.0", "weather", "esp32s3", func(b *fakeBoard, f otaFrame) { frames <- f })
	job, _ := r.m.StartJob(fw.SHA256, []string{"a", "b"}, 2)
	fa, fb := <-frames, <-frames
	if fa.Size != fw.Size || fa.SHA256 != fw.SHA256 || fa.Version != "2.0.0" || !strings.HasPrefix(fa.URL, "http://127.0.0.1:8080/ota/"+job+"/") {
		t.Fatalf("frame %+v", fa)
	}
	parts := func(u string) (string, string, string) {
		p := strings.Split(strings.TrimPrefix(u, "http://127.0.0.1:8080/ota/"), "/")
		return p[0], p[1], p[2]
	}
	j, dev, file := parts(fa.URL)
	_, _, fileB := parts(fb.URL)
	mac := "aa:bb:cc:00:00:01"
	cases := []struct {
		name            string
		dev, file, addr string
		mac             string
		want            int
	}{
		{"wrong secret", dev, "0000.bin", "127.0.0.1:5000", "", 404},
		{"other board's secret", dev, fileB, "127.0.0.1:5000", "", 404},
		{"other address", dev, file, "192.168.1.9:5000", "", 403},
		{"other mac", dev, file, "127.0.0.1:5000", "AA:BB:CC:00:00:09", 403},
	}
	for _, c := range cases {
		if _, err := r.m.OpenDownload(j, c.dev, c.file, c.addr, c.mac); status(err) != c.want {
			t.Fatalf("%s: %v, want %d", c.name, err, c.want)
		}
	}
	d, err := r.m.OpenDownload(j, dev, file, "[::ffff:127.0.0.1]:5000", mac)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(d)
	d.Close()
	if !bytes.Equal(b, espimage.Build(v2)) {
		t.Fatal("served bytes differ")
	}
	v, _ := r.m.Job(job)
	for _, d := range v.Devices {
		if d.ID == dev && (d.State != StateDownloading || d.Progress != 100) {
			t.Fatalf("%+v", d)
		}
	}
	r.clock.Add(URLValidity)
	if _, err := r.m.OpenDownload(j, dev, file, "127.0.0.1:5000", ""); status(err) != http.StatusGone {
		t.Fatalf("expired: %v", err)
	}
}

func TestStore(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	img := espimage.Build(v2)
	fw, err := s.Add(bytes.NewReader(img))
	if err != nil || fw.Size != int64(len(img)) || fw.Project != "weather" || fw.Chip != "esp32s3" || fw.Built == "" {
		t.Fatalf("%+v %v", fw, err)
	}
	for name, body := range map[string]io.Reader{
		"text":      strings.NewReader("hello\n"),
		"truncated": bytes.NewReader(img[:len(img)/2]),
		"oversized": io.MultiReader(bytes.NewReader(img), io.LimitReader(zeros{}, espimage.MaxSize)),
	} {
		if _, err := s.Add(body); !errors.Is(err, espimage.ErrInvalid) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	os.WriteFile(filepath.Join(dir, ".upload-123"), []byte("x"), 0o600)
	s2, err := OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l := s2.List(); len(l) != 1 || l[0].SHA256 != fw.SHA256 || l[0].Uploaded != fw.Uploaded {
		t.Fatalf("reopened: %+v", l)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("files: %v", ents)
	}
	if ok, err := s2.Remove(fw.SHA256); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("files left: %v", ents)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestLatestInstallChanges(t *testing.T) {
	r := newRig(t, t.TempDir())
	ch, stop := r.m.Changes()
	defer stop()
	if _, ok := r.m.Latest("weather", "esp32s3"); ok {
		t.Fatal("latest without firmware")
	}
	r.upload(espimage.Spec{Chip: "esp32s3", Project: "weather", Version: "1.5.0"})
	<-ch
	r.clock.Add(time.Second)
	r.upload(v2)
	r.upload(espimage.Spec{Chip: "esp32c3", Project: "weather", Version: "9.0.0"})
	if v, ok := r.m.Latest("weather", "ESP32-S3"); !ok || v != "2.0.0" {
		t.Fatal(v, ok)
	}
	r.addBoard("a", "1.0.0", "weather", "ESP32-S3", r.good)
	job, err := r.m.Install(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	<-ch
	v := r.waitJob(job, finished)
	if v.State != JobDone || v.Version != "2.0.0" {
		t.Fatalf("%+v", v)
	}
	if j, st, p, ok := r.m.DeviceUpdate("a"); !ok || j != job || st != StateDone || p != 100 {
		t.Fatal(j, st, p, ok)
	}
	if err := r.m.DeleteFirmware(v.Firmware); err != nil {
		t.Fatal(err)
	}
	if v, _ := r.m.Latest("weather", "esp32s3"); v != "1.5.0" {
		t.Fatal(v)
	}
}
