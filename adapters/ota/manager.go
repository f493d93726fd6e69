// Package ota owns firmware updates of boards (DESIGN.md, "Updates"): the
// store of uploaded ESP32 app images (state_dir/firmware), update jobs and
// their persistence (state_dir/ota), the ota frame sent to each board, the
// per-board one-time download URL, and each board's progress read from its
// $ota and $fw attributes. The image format is read by the espimage
// subpackage.
//
// Manager.Run is the only goroutine the package starts; it returns when its
// context ends. Every other method is safe for concurrent use and never
// blocks on a board.
package ota

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/atomicfile"
)

// Numbers of the contract and the choices made where it is silent
// (docs/contract-notes.md, "Firmware updates").
const (
	// DefaultParallel boards update at once when a job does not say; at
	// most MaxParallel (a larger value is lowered to it).
	DefaultParallel = 1
	MaxParallel     = 16
	// ReturnTimeout: a board not back on the new version this long after
	// its ota frame has failed.
	ReturnTimeout = 3 * time.Minute
	// URLValidity: a download URL works this long after its frame.
	URLValidity = 10 * time.Minute
	// readyGrace: a board offline, or not yet reporting $fw, when its turn
	// comes is waited for this long, then failed.
	readyGrace = 15 * time.Second
	// resumeGrace: after a restart, a board that was updating gets at
	// least this long to come back (boards retry every 30 s at most).
	resumeGrace = time.Minute
	// maxJobDevices bounds a job's boards.
	maxJobDevices = 1000
	// keepFinished is how many finished jobs are kept (the oldest go).
	keepFinished = 50
	// tickEvery: deadlines are checked this often.
	tickEvery = time.Second
)

// Options configure a Manager.
type Options struct {
	Hub    *gateway.Hub
	Store  *Store
	Dir    string // where jobs persist (state_dir/ota)
	Logger *slog.Logger
	// HTTPAddr is the HTTP listener's address; the download URL takes its
	// port (the host is the board link's local address).
	HTTPAddr func() string
	TLS      bool
	// ReturnTimeout and URLValidity: 0 is the contract's 3 and 10 minutes
	// (tests shorten them).
	ReturnTimeout time.Duration
	URLValidity   time.Duration
	// Now and Tick drive every deadline (tests inject a clock); nil: the
	// wall clock and a one-second ticker.
	Now  func() time.Time
	Tick <-chan time.Time
}

// Manager runs update jobs. See the package doc.
type Manager struct {
	hub      *gateway.Hub
	store    *Store
	dir      string
	log      *slog.Logger
	httpAddr func() string
	scheme   string
	timeout  time.Duration
	validity time.Duration
	now      func() time.Time
	tick     <-chan time.Time
	kick     chan struct{}
	started  time.Time

	mu      sync.Mutex
	jobs    map[string]*job
	lastOTA map[string]string // device → the raw $ota last acted on
	watch   map[chan struct{}]struct{}
}

// NewManager loads the persisted jobs; Run resumes them.
func NewManager(o Options) (*Manager, error) {
	m := &Manager{hub: o.Hub, store: o.Store, dir: o.Dir, log: o.Logger, httpAddr: o.HTTPAddr,
		scheme: "http", timeout: cmp.Or(o.ReturnTimeout, ReturnTimeout), validity: cmp.Or(o.URLValidity, URLValidity),
		now: o.Now, tick: o.Tick, kick: make(chan struct{}, 1),
		jobs: map[string]*job{}, lastOTA: map[string]string{}, watch: map[chan struct{}]struct{}{}}
	if o.TLS {
		m.scheme = "https"
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, fmt.Errorf("ota jobs %s: %w", m.dir, err)
	}
	if err := m.load(); err != nil {
		return nil, err
	}
	m.started = m.now()
	return m, nil
}

// load reads every persisted job; a file that cannot be read is moved aside.
func (m *Manager) load() error {
	ents, err := os.ReadDir(m.dir)
	if err != nil {
		return fmt.Errorf("ota jobs %s: %w", m.dir, err)
	}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !validJobID(id) {
			continue
		}
		path := filepath.Join(m.dir, e.Name())
		b, err := os.ReadFile(path)
		var j job
		if err == nil {
			err = json.Unmarshal(b, &j)
		}
		if err == nil && (j.ID != id || len(j.Devices) == 0) {
			err = errors.New("not a job")
		}
		if err != nil {
			aside := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405")
			os.Rename(path, aside)
			m.log.Warn("ota: a job file could not be read; kept aside", "file", aside, "err", err)
			continue
		}
		resumed := 0
		for _, en := range j.Devices {
			if en.active() {
				resumed++
			}
		}
		if j.State == JobRunning || resumed > 0 {
			m.log.Info("ota: resuming job", "job", j.ID, "state", j.State, "waiting", resumed)
		}
		m.jobs[id] = &j
	}
	return nil
}

func validJobID(s string) bool {
	if len(s) != 16 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// save persists a job; the caller holds m.mu. A job no longer kept (just
// pruned: finishing it may make it the oldest of too many finished jobs)
// is not written back.
func (m *Manager) saveLocked(j *job) {
	if m.jobs[j.ID] != j {
		return
	}
	b, err := json.Marshal(j)
	if err == nil {
		err = atomicfile.Write(filepath.Join(m.dir, j.ID+".json"), b)
	}
	if err != nil {
		m.log.Error("ota: cannot save job; a restart may lose its progress", "job", j.ID, "err", err)
	}
}

// Run follows the boards' attributes and links, starts boards as slots
// free up and applies deadlines, until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	tick := m.tick
	if tick == nil {
		t := time.NewTicker(tickEvery)
		defer t.Stop()
		tick = t.C
	}
	m.mu.Lock()
	changed := false
	for _, j := range m.jobs {
		for _, e := range j.Devices {
			if e.active() {
				if info, ok := m.hub.Info(e.ID); ok {
					m.lastOTA[e.ID] = string(info["ota"])
					if failureFor(info["ota"], j.ID) {
						m.applyOTALocked(j, e, info["ota"])
						changed = true
					}
				}
			}
		}
	}
	if changed {
		m.notifyLocked()
	}
	m.mu.Unlock()
	for ctx.Err() == nil {
		sub, _, err := m.hub.Subscribe(-1, 0)
		if err != nil { // the hub is closed: the gateway is stopping
			<-ctx.Done()
			return
		}
		sub.SkipEvents() // board state is enough: no work per reading
		m.step(ctx)
		m.follow(ctx, sub, tick)
		sub.Close()
	}
}

// follow handles one subscription until it ends (a slow consumer: Run
// subscribes again, and the next step reads each board's info afresh).
func (m *Manager) follow(ctx context.Context, sub *gateway.Subscription, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.Done():
			return
		case msg := <-sub.C:
			if m.observe(msg) {
				m.step(ctx)
			}
		case <-tick:
			m.step(ctx)
		case <-m.kick:
			m.step(ctx)
		}
	}
}

func (m *Manager) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Changes returns a channel that receives (coalesced, never blocking the
// manager) after any change of the stored firmware or of a job, and a
// function that stops it. The channel has room for one signal: read it,
// then ask Latest, Jobs or DeviceUpdate for the news.
func (m *Manager) Changes() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	m.mu.Lock()
	m.watch[c] = struct{}{}
	m.mu.Unlock()
	return c, func() {
		m.mu.Lock()
		delete(m.watch, c)
		m.mu.Unlock()
	}
}

func (m *Manager) notifyLocked() {
	for c := range m.watch {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// activeEntries calls f for every board of device id that is updating,
// in any job (a stopped or cancelled job's running boards finish).
func (m *Manager) activeEntries(id string, f func(j *job, e *entry)) {
	for _, j := range m.jobs {
		for _, e := range j.Devices {
			if e.ID == id && e.active() {
				f(j, e)
			}
		}
	}
}

// observe applies one hub message; it reports whether anything changed.
func (m *Manager) observe(msg *gateway.Message) bool {
	switch msg.Kind {
	case gateway.KindStatus:
		if msg.Online {
			return false
		}
	case gateway.KindInfo:
	default:
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	if msg.Kind == gateway.KindStatus {
		// A link drop means a reboot only once the image is complete (the
		// board said so, or every byte was served). Before that it is a
		// Wi-Fi blip or a board that reconnects before downloading: the
		// state stays (sent or downloading) and later $ota reports apply.
		m.activeEntries(msg.Device, func(j *job, e *entry) {
			complete := e.Progress >= 100 || j.Size > 0 && e.served >= j.Size
			if e.State != StateRebooting && complete && m.progressLocked(j, e, StateRebooting, 100) {
				changed = true
			}
		})
	} else {
		b := readInfo(msg.Info)
		raw := string(b.ota)
		newOTA := raw != "" && raw != m.lastOTA[msg.Device]
		if raw != "" {
			m.lastOTA[msg.Device] = raw
		}
		m.activeEntries(msg.Device, func(j *job, e *entry) {
			if b.hasFW && b.fw == j.Version {
				m.finishLocked(j, e, StateDone, "")
				changed = true
				return
			}
			// A failure that names this job counts even when it is the
			// $ota last seen (see failureFor).
			if (newOTA || failureFor(b.ota, j.ID)) && m.applyOTALocked(j, e, b.ota) {
				changed = true
			}
		})
	}
	if changed {
		m.notifyLocked()
	}
	return changed
}

// applyOTALocked takes a board's $ota report. downloading (or writing)
// applies from any active state: a new report means the board is
// downloading (again), whatever the link did meanwhile. rebooting (and
// done, and verifying: the image is complete) means the board is about to
// restart.
func (m *Manager) applyOTALocked(j *job, e *entry, raw json.RawMessage) bool {
	var r otaReport
	if json.Unmarshal(raw, &r) != nil || (r.Job != "" && r.Job != j.ID) {
		return false
	}
	switch strings.ToLower(r.State) {
	case "downloading", "writing":
		first := !e.Reported
		e.Reported = true
		p := int(min(max(r.Progress, 0), 100))
		if m.progressLocked(j, e, StateDownloading, p) {
			return true
		}
		if first {
			m.saveLocked(j)
		}
		return false
	case "failed", "error":
		reason := gateway.Truncate(r.Error, 200)
		if reason == "" {
			reason = "the board reported a failure"
		}
		m.finishLocked(j, e, StateFailed, "board: "+reason)
		return true
	case "verifying", "rebooting", "restarting", "applied", "success", "done":
		e.Reported = true
		return m.progressLocked(j, e, StateRebooting, 100)
	}
	return false
}

// failureFor reports whether a $ota is a failure that names job id. The
// gateway only sees an attribute when its value changes, and a board that
// fails a second job exactly as it failed the one before sends nothing
// new: only a job field tells the reports apart (docs/contract-notes.md).
// Such a failure also counts when it is already the board's $ota when the
// manager starts (it came just before a restart).
func failureFor(raw json.RawMessage, id string) bool {
	var r otaReport
	if len(raw) == 0 || json.Unmarshal(raw, &r) != nil || r.Job != id {
		return false
	}
	s := strings.ToLower(r.State)
	return s == "failed" || s == "error"
}

// progressLocked sets a board's state and progress and reports whether
// either changed. The job is saved on a change of state and each time the
// progress crosses a multiple of 10 %, so a restart shows the progress
// (within 10 %) without a write per percent.
func (m *Manager) progressLocked(j *job, e *entry, state string, p int) bool {
	p = min(max(p, 0), 100)
	if e.State == state && e.Progress == p {
		return false
	}
	save := e.State != state || e.Progress/10 != p/10
	e.State, e.Progress = state, p
	if save {
		m.saveLocked(j)
	}
	return true
}

// finishLocked ends a board's update; a failure stops its job.
func (m *Manager) finishLocked(j *job, e *entry, state, errText string) {
	e.State, e.Error = state, errText
	if state == StateDone {
		e.Progress = 100
	}
	m.log.Info("ota: board "+state, "job", j.ID, "device", e.ID, "version", j.Version, "err", errText)
	if state == StateFailed && j.State == JobRunning {
		j.State = JobStopped
		j.Error = fmt.Sprintf("stopped after board %s failed: %s; no further board starts", e.ID, errText)
		for _, q := range j.Devices {
			if q.State == StateQueued {
				q.Error = "not started: the job stopped"
			}
		}
		m.log.Warn("ota: job stopped", "job", j.ID, "device", e.ID, "err", errText)
	}
	m.settleLocked(j)
	m.saveLocked(j)
}

// settleLocked marks a running job done when every board has ended, and
// notes when any job's last board ended.
func (m *Manager) settleLocked(j *job) {
	for _, e := range j.Devices {
		if !e.final() && !(j.State != JobRunning && e.State == StateQueued) {
			return
		}
	}
	if j.State == JobRunning {
		j.State = JobDone
		m.log.Info("ota: job done", "job", j.ID, "version", j.Version)
	}
	if j.Finished == nil {
		t := m.now().UTC()
		j.Finished = &t
		m.pruneLocked()
	}
}

// pruneLocked forgets the oldest finished jobs beyond keepFinished.
func (m *Manager) pruneLocked() {
	var done []*job
	for _, j := range m.jobs {
		if j.Finished != nil {
			done = append(done, j)
		}
	}
	if len(done) <= keepFinished {
		return
	}
	slices.SortFunc(done, func(a, b *job) int { return a.Finished.Compare(*b.Finished) })
	for _, j := range done[:len(done)-keepFinished] {
		delete(m.jobs, j.ID)
		os.Remove(filepath.Join(m.dir, j.ID+".json"))
	}
}

// sendItem is an ota frame to write once the lock is released.
type sendItem struct {
	j     *job
	e     *entry
	frame []byte
}

// step applies deadlines, notices boards back on the new version, starts
// boards while slots are free, and sends their frames.
func (m *Manager) step(ctx context.Context) {
	now := m.now()
	var sends []sendItem
	m.mu.Lock()
	changed := false
	jobs := make([]*job, 0, len(m.jobs))
	for _, j := range m.jobs {
		jobs = append(jobs, j)
	}
	slices.SortFunc(jobs, func(a, b *job) int { return a.Created.Compare(b.Created) })
	for _, j := range jobs {
		if j.Finished != nil {
			continue
		}
		inflight := 0
		for _, e := range j.Devices {
			if !e.active() {
				continue
			}
			if info, ok := m.hub.Info(e.ID); ok {
				if b := readInfo(info); b.hasFW && b.fw == j.Version {
					m.finishLocked(j, e, StateDone, "")
					changed = true
					continue
				}
			}
			if e.deadline.IsZero() {
				e.deadline = e.Sent.Add(m.timeout)
				if r := m.started.Add(resumeGrace); e.Sent.Before(m.started) && e.deadline.Before(r) {
					e.deadline = r
				}
			}
			if !now.Before(e.deadline) {
				m.finishLocked(j, e, StateFailed, fmt.Sprintf("not back on version %s within %s of the update", j.Version, m.timeout))
				changed = true
				continue
			}
			inflight++
		}
		if j.State != JobRunning {
			m.settleLocked(j)
			continue
		}
		for _, e := range j.Devices {
			if j.State != JobRunning {
				break
			}
			if e.State != StateQueued {
				continue
			}
			if inflight >= j.Parallel {
				break
			}
			item, ok := m.startLocked(j, e, now)
			if ok {
				sends = append(sends, item)
			}
			changed = true
			if e.State == StateQueued || e.active() {
				inflight++
			}
		}
		m.settleLocked(j)
	}
	if changed {
		m.notifyLocked()
	}
	m.mu.Unlock()

	for _, s := range sends {
		err := m.hub.SendFrame(ctx, s.e.ID, s.frame)
		if err == nil {
			m.log.Info("ota: update sent", "job", s.j.ID, "device", s.e.ID, "version", s.j.Version)
			continue
		}
		m.mu.Lock()
		if s.e.active() {
			m.finishLocked(s.j, s.e, StateFailed, fmt.Sprintf("sending the update: %v", err))
			m.notifyLocked()
		}
		m.mu.Unlock()
	}
}

// startLocked begins one queued board: skipped, waited for, failed, or
// marked sent (and persisted so, before its frame goes out: a crash then
// never sends a board a second frame).
func (m *Manager) startLocked(j *job, e *entry, now time.Time) (sendItem, bool) {
	info, _ := m.hub.Info(e.ID)
	b := readInfo(info)
	if why := j.skipReason(b); why != "" {
		e.State, e.Reason = StateSkipped, why
		m.saveLocked(j)
		return sendItem{}, false
	}
	local, remote, online := m.hub.LinkAddr(e.ID)
	notReady := ""
	switch {
	case !online:
		notReady = "the board is offline"
	case !b.hasFW:
		notReady = "the board does not report $fw (updates need a board that reports its version)"
	}
	if notReady != "" {
		if e.waitSince.IsZero() {
			e.waitSince = now
		}
		if now.Sub(e.waitSince) >= readyGrace {
			m.finishLocked(j, e, StateFailed, notReady)
		}
		return sendItem{}, false
	}
	u, err := m.downloadURL(local, j.ID, e.ID)
	if err != nil {
		m.finishLocked(j, e, StateFailed, err.Error())
		return sendItem{}, false
	}
	token := randomHex(16)
	e.Token = token
	e.IP = hostIP(remote)
	e.MAC = b.mac
	e.Sent = now
	e.deadline = now.Add(m.timeout)
	e.State, e.Error, e.Progress, e.Reported, e.served = StateSent, "", 0, false, 0
	m.lastOTA[e.ID] = string(b.ota)
	m.saveLocked(j)
	frame, _ := json.Marshal(struct {
		Type    string `json:"type"`
		Job     string `json:"job"`
		URL     string `json:"url"`
		Size    int64  `json:"size"`
		SHA256  string `json:"sha256"`
		Version string `json:"version"`
	}{"ota", j.ID, u + token + ".bin", j.Size, j.Firmware, j.Version})
	return sendItem{j: j, e: e, frame: frame}, true
}

// downloadURL is http(s)://LINK-LOCAL-IP:HTTP-PORT/ota/JOB/DEVICE/ (the
// secret and ".bin" follow).
func (m *Manager) downloadURL(linkLocal, jobID, device string) (string, error) {
	host := hostIP(linkLocal)
	if host == "" {
		return "", errors.New("the board link's local address is unknown, so no download URL can be made")
	}
	port := ""
	if m.httpAddr != nil {
		_, port, _ = net.SplitHostPort(m.httpAddr())
	}
	if port == "" {
		return "", errors.New("the gateway's HTTP port is unknown")
	}
	return fmt.Sprintf("%s://%s/ota/%s/%s/", m.scheme, net.JoinHostPort(host, port), jobID, device), nil
}

// hostIP is the IP of "IP:port" (zone and IPv4-in-IPv6 mapping removed), or "".
func hostIP(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		if a, err := netip.ParseAddr(addr); err == nil {
			return a.Unmap().WithZone("").String()
		}
		return ""
	}
	return ap.Addr().Unmap().WithZone("").String()
}

// Error is an error with the HTTP status the API answers it with.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string   { return e.Msg }
func (e *Error) HTTPStatus() int { return e.Status }

func apiError(status int, format string, args ...any) error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// used reports whether a firmware is the image of a job that still runs a board.
func (m *Manager) usedLocked(sum string) string {
	for _, j := range m.jobs {
		if j.Firmware == sum && j.Finished == nil {
			return j.ID
		}
	}
	return ""
}
