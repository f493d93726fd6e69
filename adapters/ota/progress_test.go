package ota

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// holdBoard adds a board that keeps its ota frames in a channel and does
// nothing else.
func (r *rig) holdBoard(id string) (*fakeBoard, chan otaFrame) {
	frames := make(chan otaFrame, 4)
	return r.addBoard(id, "1.0.0", "weather", "esp32s3", func(b *fakeBoard, f otaFrame) { frames <- f }), frames
}

func devState(v JobView, i int) (string, int) { return v.Devices[i].State, v.Devices[i].Progress }

// A link drop before the image is complete (a Wi-Fi blip, a board that
// reconnects before downloading) is not a reboot: later $ota progress
// still applies. Once the download is complete a link drop is the reboot.
func TestLinkDropBeforeDownloadKeepsState(t *testing.T) {
	r := newRig(t, t.TempDir())
	fw := r.upload(v2)
	b, frames := r.holdBoard("a")
	job, _ := r.m.StartJob(fw.SHA256, []string{"a"}, 1)
	f := <-frames

	// Reconnects before downloading: still sent, then downloading.
	b.link.Detach("wifi blip")
	r.connect(b, "1.0.0", "weather", "esp32s3")
	b.attr("ota", map[string]any{"state": "downloading", "progress": 20})
	r.waitJob(job, func(v JobView) bool { s, p := devState(v, 0); return s == StateDownloading && p == 20 })

	// A blip mid-download: the next report applies.
	b.link.Detach("wifi blip")
	r.connect(b, "1.0.0", "weather", "esp32s3")
	b.attr("ota", map[string]any{"state": "downloading", "progress": 60})
	r.waitJob(job, func(v JobView) bool { s, p := devState(v, 0); return s == StateDownloading && p == 60 })

	// Complete, then the link drops: rebooting; back on the version: done.
	b.attr("ota", map[string]any{"state": "downloading", "progress": 100})
	r.waitJob(job, func(v JobView) bool { _, p := devState(v, 0); return p == 100 })
	b.link.Detach("rebooting")
	r.waitJob(job, func(v JobView) bool { s, _ := devState(v, 0); return s == StateRebooting })
	r.connect(b, f.Version, "weather", "esp32s3")
	r.waitJob(job, func(v JobView) bool { s, _ := devState(v, 0); return s == StateDone })
}

// $ota rebooting (or verifying: the image is complete) means rebooting.
func TestOTAReportRebooting(t *testing.T) {
	r := newRig(t, t.TempDir())
	fw := r.upload(v2)
	b, frames := r.holdBoard("a")
	job, _ := r.m.StartJob(fw.SHA256, []string{"a"}, 1)
	<-frames
	b.attr("ota", map[string]any{"state": "downloading", "progress": 30})
	r.waitJob(job, func(v JobView) bool { _, p := devState(v, 0); return p == 30 })
	b.attr("ota", map[string]any{"state": "verifying"})
	r.waitJob(job, func(v JobView) bool { s, p := devState(v, 0); return s == StateRebooting && p == 100 })
}

// Downloading progress is saved (at each 10 % step), so a restart shows it.
func TestDownloadProgressSurvivesRestart(t *testing.T) {
	r := newRig(t, t.TempDir())
	fw := r.upload(v2)
	b, frames := r.holdBoard("a")
	job, _ := r.m.StartJob(fw.SHA256, []string{"a"}, 1)
	<-frames
	b.attr("ota", map[string]any{"state": "downloading", "progress": 42})
	r.waitJob(job, func(v JobView) bool { _, p := devState(v, 0); return p == 42 })
	b.attr("ota", map[string]any{"state": "downloading", "progress": 45})
	r.waitJob(job, func(v JobView) bool { _, p := devState(v, 0); return p == 45 })
	r.restart()
	v, _ := r.m.Job(job)
	if s, p := devState(v, 0); s != StateDownloading || p != 42 {
		t.Fatalf("after a restart: %s %d%%, want downloading 42%% (saved at the 40%% step)", s, p)
	}
}

// The gateway's figure is the bytes served contiguously from 0, not the
// file position: a tail range is not a complete download. Once the board
// reports, its figure is shown.
func TestServedProgressIsContiguous(t *testing.T) {
	r := newRig(t, t.TempDir())
	fw := r.upload(v2)
	b, frames := r.holdBoard("a")
	job, _ := r.m.StartJob(fw.SHA256, []string{"a"}, 1)
	f := <-frames
	p := strings.Split(strings.TrimPrefix(f.URL, "http://127.0.0.1:8080/ota/"), "/")
	get := func(rng string) int {
		t.Helper()
		d, err := r.m.OpenDownload(p[0], p[1], p[2], "127.0.0.1:5000", "")
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		req := httptest.NewRequest(http.MethodGet, f.URL, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		w := httptest.NewRecorder()
		http.ServeContent(w, req, d.Name, d.ModTime, d)
		return w.Code
	}
	progress := func() (string, int) { v, _ := r.m.Job(job); return devState(v, 0) }

	if c := get("bytes=-10"); c != http.StatusPartialContent {
		t.Fatal(c)
	}
	if s, pct := progress(); s != StateDownloading || pct != 0 {
		t.Fatalf("after a 10-byte tail range: %s %d%%, want downloading 0%%", s, pct)
	}
	half := fw.Size / 2
	get("bytes=0-" + itoa(half-1))
	if _, pct := progress(); pct != 50 {
		t.Fatalf("after the first half: %d%%", pct)
	}
	// A resume from where it stopped continues the count.
	get("bytes=" + itoa(half) + "-" + itoa(half+fw.Size/4-1))
	if _, pct := progress(); pct != 75 {
		t.Fatalf("after a resume to 3/4: %d%%", pct)
	}
	// The board's own report wins from then on.
	b.attr("ota", map[string]any{"state": "downloading", "progress": 30})
	r.waitJob(job, func(v JobView) bool { _, p := devState(v, 0); return p == 30 })
	get("")
	if s, pct := progress(); s != StateDownloading || pct != 30 {
		t.Fatalf("after the whole image was served: %s %d%%, want the board's 30%%", s, pct)
	}
	// Every byte served, then the link drops: the board is rebooting.
	b.link.Detach("rebooting")
	r.waitJob(job, func(v JobView) bool { s, _ := devState(v, 0); return s == StateRebooting })
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// Finished jobs are pruned oldest finished first: a long job that started
// before many short ones and finishes last is kept (pruning by start time
// made it vanish the moment it finished), the earliest finished job goes,
// with its file, and a restart agrees.
func TestPruneKeepsTheJobThatFinishedLast(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir)
	fw := r.upload(v2)
	b, frames := r.holdBoard("a")
	r.addBoard("same", "2.0.0", "weather", "esp32s3", nil)
	long, _ := r.m.StartJob(fw.SHA256, []string{"a"}, 1)
	<-frames
	var short []string
	for range keepFinished {
		r.clock.Add(1e9)
		j, err := r.m.StartJob(fw.SHA256, []string{"same"}, 1) // skipped: finished at once
		if err != nil {
			t.Fatal(err)
		}
		short = append(short, j)
	}
	if n := len(r.m.Jobs()); n != keepFinished+1 {
		t.Fatalf("%d jobs", n)
	}
	r.clock.Add(1e9)
	b.attr("ota", map[string]any{"state": "failed", "error": "no space"})
	r.waitJob(long, func(v JobView) bool { return v.State == "stopped" })
	if _, ok := r.m.Job(short[0]); ok {
		t.Fatalf("the earliest finished job %s is still kept", short[0])
	}
	if _, err := os.Stat(filepath.Join(dir, "ota", short[0]+".json")); !os.IsNotExist(err) {
		t.Fatalf("the pruned job's file: %v", err)
	}
	r.restart()
	if _, ok := r.m.Job(long); !ok || len(r.m.Jobs()) != keepFinished {
		t.Fatalf("after a restart: job %s kept: %v, %d jobs", long, ok, len(r.m.Jobs()))
	}
	if _, ok := r.m.Job(short[0]); ok {
		t.Fatalf("after a restart: pruned job %s is back", short[0])
	}
}

// A failure naming the job counts even when it is already the board's
// $ota as the manager starts (it came just before a restart); and a
// board that fails a second job with the same error is seen because the
// job field differs.
func TestFailureNamingJob(t *testing.T) {
	r := newRig(t, t.TempDir())
	fw := r.upload(v2)
	b, frames := r.holdBoard("a")
	job, _ := r.m.StartJob(fw.SHA256, []string{"a"}, 1)
	<-frames
	r.stop()
	b.attr("ota", map[string]any{"state": "failed", "error": "image too big", "job": job})
	r.start()
	v := r.waitJob(job, finished)
	if s, _ := devState(v, 0); s != StateFailed || !strings.Contains(v.Devices[0].Error, "image too big") {
		t.Fatalf("%+v", v)
	}
	job2, err := r.m.StartJob(fw.SHA256, []string{"a"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	<-frames
	b.attr("ota", map[string]any{"state": "failed", "error": "image too big", "job": job2})
	v = r.waitJob(job2, finished)
	if s, _ := devState(v, 0); s != StateFailed {
		t.Fatalf("%+v", v)
	}
}

// Every device entry has "error", as DESIGN shows it.
func TestDeviceEntriesCarryError(t *testing.T) {
	r := newRig(t, t.TempDir())
	fw := r.upload(v2)
	r.addBoard("a", "1.0.0", "weather", "esp32s3", r.good)
	job, _ := r.m.StartJob(fw.SHA256, []string{"a"}, 1)
	v := r.waitJob(job, finished)
	raw, _ := json.Marshal(v)
	var out struct{ Devices []map[string]json.RawMessage }
	json.Unmarshal(raw, &out)
	for _, d := range out.Devices {
		for _, k := range []string{"id", "state", "progress", "error"} {
			if _, ok := d[k]; !ok {
				t.Fatalf("device entry %s has no %q", raw, k)
			}
		}
	}
}
