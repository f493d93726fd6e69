package ota

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/esp32gw/esp32gw/adapters/ota/espimage"
	"github.com/esp32gw/esp32gw/gateway"
)

// UploadFirmware stores an image (POST /api/firmware). A body that is not a
// valid ESP32 app image answers 400 with the reason.
func (m *Manager) UploadFirmware(r io.Reader) (Firmware, error) {
	fw, err := m.store.Add(r)
	if errors.Is(err, espimage.ErrInvalid) {
		return fw, apiError(http.StatusBadRequest, "%s", err.Error())
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fw, apiError(http.StatusBadRequest, "%s: larger than the 8 MiB an image may have", espimage.ErrInvalid)
		}
		return fw, err
	}
	m.log.Info("ota: firmware stored", "sha256", fw.SHA256, "project", fw.Project, "version", fw.Version, "chip", fw.Chip, "size", fw.Size)
	m.mu.Lock()
	m.notifyLocked()
	m.mu.Unlock()
	return fw, nil
}

// Firmware lists the stored images, newest upload first (GET /api/firmware).
func (m *Manager) Firmware() []Firmware { return m.store.List() }

// DeleteFirmware removes an image (DELETE /api/firmware/{sha256}): 404 when
// unknown, 409 while a job that still updates boards uses it.
func (m *Manager) DeleteFirmware(sum string) error {
	sum = strings.ToLower(sum)
	m.mu.Lock()
	defer m.mu.Unlock()
	if id := m.usedLocked(sum); id != "" {
		return apiError(http.StatusConflict, "firmware %s is in use by job %s, which is still running", sum, id)
	}
	ok, err := m.store.Remove(sum)
	if !ok {
		return apiError(http.StatusNotFound, "no firmware with sha256 %s", sum)
	}
	m.notifyLocked()
	return err
}

// StartJob creates a job (POST /api/ota) and returns its id. With no
// devices it takes every board that reports the image's project and chip on
// another version. parallel 0 is DefaultParallel; above MaxParallel it is
// lowered to MaxParallel.
func (m *Manager) StartJob(firmware string, devices []string, parallel int) (string, error) {
	fw, ok := m.store.Get(firmware)
	if !ok {
		return "", apiError(http.StatusNotFound, "no firmware with sha256 %q (upload it with POST /api/firmware)", gateway.Truncate(firmware, 80))
	}
	switch {
	case parallel < 0:
		return "", apiError(http.StatusBadRequest, "parallel must be 1 to %d, not %d", MaxParallel, parallel)
	case parallel == 0:
		parallel = DefaultParallel
	case parallel > MaxParallel:
		parallel = MaxParallel
	}
	j := &job{ID: randomHex(8), Firmware: fw.SHA256, Version: fw.Version, Project: fw.Project, Chip: fw.Chip,
		Size: fw.Size, Parallel: parallel, State: JobRunning, Created: m.now().UTC()}
	if len(devices) == 0 {
		_, states := m.hub.Snapshot()
		for _, d := range states {
			b := readInfo(d.Info)
			if !d.Remote && updatable(d.Transport) && b.hasFW && b.fw != fw.Version && b.project == fw.Project && chipFamily(b.chip) == fw.Chip {
				devices = append(devices, d.ID)
			}
		}
		if len(devices) == 0 {
			return "", apiError(http.StatusBadRequest, "no board reports project %q on chip %s with a version other than %s", fw.Project, fw.Chip, fw.Version)
		}
	}
	if len(devices) > maxJobDevices {
		return "", apiError(http.StatusBadRequest, "a job updates at most %d boards", maxJobDevices)
	}
	seen := map[string]bool{}
	for _, id := range devices {
		if seen[id] {
			continue
		}
		seen[id] = true
		d, ok := m.hub.Device(id)
		if !ok {
			return "", apiError(http.StatusNotFound, "unknown device %q", gateway.Truncate(id, 80))
		}
		if d.Remote {
			return "", apiError(http.StatusBadRequest, "device %s is attached to another gateway; update it there", id)
		}
		if !updatable(d.Transport) {
			return "", apiError(http.StatusBadRequest, "device %s uses transport %s; updates need a WebSocket link (ws-listen or ws-dial)", id, d.Transport)
		}
		e := &entry{ID: id, State: StateQueued}
		if info, ok := m.hub.Info(id); ok {
			if why := j.skipReason(readInfo(info)); why != "" {
				e.State, e.Reason = StateSkipped, why
			}
		}
		j.Devices = append(j.Devices, e)
	}
	m.mu.Lock()
	for _, other := range m.jobs {
		if other.Finished != nil {
			continue
		}
		for _, oe := range other.Devices {
			if seen[oe.ID] && (oe.active() || oe.State == StateQueued && other.State == JobRunning) {
				m.mu.Unlock()
				return "", apiError(http.StatusConflict, "device %s is already being updated by job %s", oe.ID, other.ID)
			}
		}
	}
	m.jobs[j.ID] = j
	m.settleLocked(j)
	m.saveLocked(j)
	m.notifyLocked()
	m.mu.Unlock()
	m.log.Info("ota: job started", "job", j.ID, "version", j.Version, "devices", len(j.Devices), "parallel", parallel)
	m.poke()
	return j.ID, nil
}

func updatable(transport string) bool {
	return transport == gateway.TransportWSListen || transport == gateway.TransportWSDial
}

// Job is one job's view (GET /api/ota/{job}).
func (m *Manager) Job(id string) (JobView, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return JobView{}, false
	}
	return j.view(), true
}

// Jobs lists the jobs kept, newest first (GET /api/ota).
func (m *Manager) Jobs() []JobView {
	m.mu.Lock()
	js := make([]*job, 0, len(m.jobs))
	for _, j := range m.jobs {
		js = append(js, j)
	}
	slices.SortFunc(js, func(a, b *job) int { return b.Created.Compare(a.Created) })
	out := make([]JobView, len(js))
	for i, j := range js {
		out[i] = j.view()
	}
	m.mu.Unlock()
	return out
}

// CancelJob cancels what has not started (DELETE /api/ota/{job}): queued
// boards become cancelled; boards already updating finish. A running job
// becomes cancelled; a finished one is left as it is.
func (m *Manager) CancelJob(id string) (JobView, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return JobView{}, apiError(http.StatusNotFound, "no job %q", gateway.Truncate(id, 40))
	}
	n := 0
	for _, e := range j.Devices {
		if e.State == StateQueued {
			e.State, e.Error = StateCancelled, ""
			n++
		}
	}
	if j.State == JobRunning {
		j.State = JobCancelled
	}
	if n > 0 || j.State == JobCancelled {
		m.log.Info("ota: job cancelled", "job", j.ID, "not_started", n)
		m.settleLocked(j)
		m.saveLocked(j)
		m.notifyLocked()
	}
	return j.view(), nil
}

// Latest is the version of the newest uploaded firmware (by upload time)
// of a project and chip ($chip as a board reports it: "ESP32-S3" and
// "esp32s3" are the same), for Home Assistant's update entity.
func (m *Manager) Latest(project, chip string) (version string, ok bool) {
	fw, ok := m.latest(project, chip)
	return fw.Version, ok
}

func (m *Manager) latest(project, chip string) (Firmware, bool) {
	c := chipFamily(chip)
	for _, fw := range m.store.List() {
		if fw.Project == project && fw.Chip == c {
			return fw, true
		}
	}
	return Firmware{}, false
}

// Install starts a one-board job that puts the newest uploaded firmware of
// the board's project and chip on it (Home Assistant's "install").
func (m *Manager) Install(ctx context.Context, device string) (job string, err error) {
	info, ok := m.hub.Info(device)
	if !ok {
		return "", apiError(http.StatusNotFound, "unknown device %q", gateway.Truncate(device, 80))
	}
	b := readInfo(info)
	if b.project == "" || b.chip == "" {
		return "", apiError(http.StatusBadRequest, "device %s does not report $project and $chip", device)
	}
	fw, ok := m.latest(b.project, b.chip)
	if !ok {
		return "", apiError(http.StatusNotFound, "no firmware uploaded for project %s on %s", b.project, chipFamily(b.chip))
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return m.StartJob(fw.SHA256, []string{device}, 1)
}

// DeviceUpdate is the newest job's view of one board: its job, state and
// progress (for Home Assistant's in-progress display); ok is false when no
// kept job includes the board.
func (m *Manager) DeviceUpdate(device string) (jobID, state string, progress int, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var best *job
	var be *entry
	for _, j := range m.jobs {
		for _, e := range j.Devices {
			if e.ID == device && (best == nil || j.Created.After(best.Created)) {
				best, be = j, e
			}
		}
	}
	if best == nil {
		return "", "", 0, false
	}
	return best.ID, be.State, be.Progress, true
}

// Download is one board's image being served; http.ServeContent reads it.
// Each read tells the job which bytes were served (see downloadServed).
type Download struct {
	Name    string
	Size    int64
	ModTime time.Time
	f       *os.File
	pos     int64
	report  func(off, n int64)
}

func (d *Download) Read(p []byte) (int, error) {
	off := d.pos
	n, err := d.f.Read(p)
	d.pos += int64(n)
	if n > 0 {
		d.report(off, int64(n))
	}
	return n, err
}

func (d *Download) Seek(off int64, whence int) (int64, error) {
	n, err := d.f.Seek(off, whence)
	if err == nil {
		d.pos = n
	}
	return n, err
}

func (d *Download) Close() error { return d.f.Close() }

// OpenDownload checks a download request (GET /ota/JOB/DEVICE/SECRET.bin)
// and opens the image. The URL is refused when the secret is wrong (404),
// when it is older than URLValidity or the board's update has ended (410),
// and when it is not that board asking (403): the request's address must
// be the board link's remote address when the frame was sent, and an
// x-ESP32-STA-MAC header (ESP32 HTTPUpdate sends one) must match the
// board's $mac when both are known.
func (m *Manager) OpenDownload(jobID, device, file, remoteAddr, mac string) (*Download, error) {
	notFound := apiError(http.StatusNotFound, "no such download")
	secret, ok := strings.CutSuffix(file, ".bin")
	if !ok {
		return nil, notFound
	}
	m.mu.Lock()
	j, ok := m.jobs[jobID]
	var e *entry
	if ok {
		for _, x := range j.Devices {
			if x.ID == device {
				e = x
			}
		}
	}
	if e == nil || e.Token == "" || subtle.ConstantTimeCompare([]byte(e.Token), []byte(secret)) != 1 {
		m.mu.Unlock()
		return nil, notFound
	}
	now := m.now()
	sent, state, ip, boardMAC, sum := e.Sent, e.State, e.IP, e.MAC, j.Firmware
	m.mu.Unlock()
	switch {
	case !e.activeState(state):
		return nil, apiError(http.StatusGone, "the update of %s in job %s has ended (%s): this URL no longer works", device, jobID, state)
	case now.Sub(sent) >= m.validity:
		return nil, apiError(http.StatusGone, "this download URL expired: it is valid for %s after the update was sent", m.validity)
	case ip != "" && hostIP(remoteAddr) != ip:
		return nil, apiError(http.StatusForbidden, "this download URL is for board %s only (it asked from %s)", device, hostIP(remoteAddr))
	case mac != "" && boardMAC != "" && normalizeMAC(mac) != normalizeMAC(boardMAC):
		return nil, apiError(http.StatusForbidden, "this download URL is for board %s only (MAC %s is not its $mac)", device, gateway.Truncate(mac, 40))
	}
	f, err := m.store.Open(sum)
	if err != nil {
		return nil, apiError(http.StatusGone, "the firmware of job %s is no longer stored", jobID)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	d := &Download{Name: device + ".bin", Size: st.Size(), ModTime: st.ModTime(), f: f}
	d.report = func(off, n int64) { m.downloadServed(jobID, device, d.Size, off, n) }
	return d, nil
}

func (e *entry) activeState(s string) bool {
	return s == StateSent || s == StateDownloading || s == StateRebooting
}

func normalizeMAC(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'f' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// downloadServed notes that bytes [off, off+n) of a board's image were
// read for it: the board is downloading. The gateway's progress figure is
// the highest offset reached contiguously from 0, over every request of the
// board (a resume continues it; a range further on, such as "bytes=-10",
// adds nothing until the bytes before it were served). It is only a
// stand-in: once the board reports progress in $ota (DESIGN: the board
// "reports progress in $ota"), the board's figure is shown instead, since
// bytes read here are not yet bytes the board has written.
func (m *Manager) downloadServed(jobID, device string, size, off, n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[jobID]
	if !ok || size <= 0 {
		return
	}
	for _, e := range j.Devices {
		if e.ID != device || (e.State != StateSent && e.State != StateDownloading) {
			continue
		}
		if off <= e.served {
			e.served = max(e.served, min(off+n, size))
		}
		p := e.Progress
		if !e.Reported {
			p = max(p, int(e.served*100/size))
		}
		if m.progressLocked(j, e, StateDownloading, p) {
			m.notifyLocked()
		}
	}
}

// Info names the download and gives its modification time, for http.ServeContent.
func (d *Download) Info() (string, time.Time) { return d.Name, d.ModTime }
