package ota

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/adapters/ota/espimage"
	"github.com/esp32gw/esp32gw/gateway"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// rig is a real hub with emulated boards and a manager on a fake clock.
type rig struct {
	t     *testing.T
	dir   string
	hub   *gateway.Hub
	clock *clock
	tick  chan time.Time
	m     *Manager
	stop  func()

	mu     sync.Mutex
	boards map[string]*fakeBoard
	frames map[string]int // ota frames received per board
	active int
	peak   int
}

type fakeBoard struct {
	id   string
	link gateway.Link
	// onFrame runs (in its own goroutine) when the board gets an ota frame.
	onFrame func(b *fakeBoard, f otaFrame)
}

type otaFrame struct {
	Type, Job, URL, SHA256, Version string
	Size                            int64
}

func newRig(t *testing.T, dir string) *rig {
	t.Helper()
	r := &rig{t: t, dir: dir, clock: &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)},
		tick: make(chan time.Time), boards: map[string]*fakeBoard{}, frames: map[string]int{}}
	r.hub = gateway.NewHub(gateway.Options{GatewayID: "gw"})
	r.start()
	return r
}

func (r *rig) start() {
	st, err := OpenStore(filepath.Join(r.dir, "firmware"), nil)
	if err != nil {
		r.t.Fatal(err)
	}
	r.m, err = NewManager(Options{Hub: r.hub, Store: st, Dir: filepath.Join(r.dir, "ota"),
		HTTPAddr: func() string { return "127.0.0.1:8080" }, Now: r.clock.Now, Tick: r.tick})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.m.Run(ctx); close(done) }()
	r.stop = func() { cancel(); <-done }
	r.t.Cleanup(func() { r.stop() })
}

// restart stops the manager and makes a new one from the same directory.
func (r *rig) restart() {
	r.stop()
	r.start()
}

func (r *rig) upload(spec espimage.Spec) Firmware {
	r.t.Helper()
	fw, err := r.m.UploadFirmware(bytes.NewReader(espimage.Build(spec)))
	if err != nil {
		r.t.Fatal(err)
	}
	return fw
}

// addBoard adds a ws-listen device and connects it reporting fw, project, chip.
func (r *rig) addBoard(id, fw, project, chip string, onFrame func(*fakeBoard, otaFrame)) *fakeBoard {
	r.t.Helper()
	if err := r.hub.AddDevice(gateway.DeviceInfo{ID: id, Transport: gateway.TransportWSListen}); err != nil {
		r.t.Fatal(err)
	}
	b := &fakeBoard{id: id, onFrame: onFrame}
	r.mu.Lock()
	r.boards[id] = b
	r.mu.Unlock()
	r.connect(b, fw, project, chip)
	return b
}

func (r *rig) connect(b *fakeBoard, fw, project, chip string) {
	l, err := r.hub.Attach(b.id, func(ctx context.Context, c gateway.Command) error {
		if !c.Frame {
			return nil
		}
		var f otaFrame
		json.Unmarshal(c.Value, &f)
		r.mu.Lock()
		r.frames[b.id]++
		r.active++
		r.peak = max(r.peak, r.active)
		r.mu.Unlock()
		if b.onFrame != nil {
			go b.onFrame(b, f)
		}
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
	l.SetAddr("127.0.0.1:8080", "127.0.0.1:40000")
	b.link = l
	b.attr("fw", fw)
	b.attr("project", project)
	b.attr("chip", chip)
	b.attr("mac", "AA:BB:CC:00:00:"+fmt.Sprintf("%02x", len(b.id)))
}

func (b *fakeBoard) attr(name string, v any) {
	raw, _ := json.Marshal(v)
	b.link.Publish(gateway.Reading{Label: name, Value: raw, Attr: true})
}

// reboot is a board that took the image: offline, then back on version.
func (r *rig) reboot(b *fakeBoard, version string) {
	b.link.Detach("rebooting")
	r.mu.Lock()
	r.active--
	r.mu.Unlock()
	r.connect(b, version, "weather", "esp32s3")
}

// good downloads (as progress), reboots and comes back on the version.
func (r *rig) good(b *fakeBoard, f otaFrame) {
	b.attr("ota", map[string]any{"state": "downloading", "progress": 50})
	r.reboot(b, f.Version)
}

func (r *rig) step() { r.tick <- r.clock.Now() }

func (r *rig) waitJob(id string, cond func(JobView) bool) JobView {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.step()
		v, _ := r.m.Job(id)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("job %s: condition not met: %+v", id, v)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *rig) frameCount(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.frames[id]
}

func states(v JobView) map[string]string {
	m := map[string]string{}
	for _, d := range v.Devices {
		m[d.ID] = d.State
	}
	return m
}

func finished(v JobView) bool { return v.State != JobRunning }
