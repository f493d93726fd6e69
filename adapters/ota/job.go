package ota

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/esp32gw/esp32gw/adapters/ota/espimage"
	"github.com/esp32gw/esp32gw/gateway"
)

// A board's state in a job (DESIGN.md, POST /api/ota).
const (
	StateQueued      = "queued"
	StateSent        = "sent"
	StateDownloading = "downloading"
	StateRebooting   = "rebooting"
	StateDone        = "done"
	StateFailed      = "failed"
	StateSkipped     = "skipped"
	StateCancelled   = "cancelled"
)

// A job's state.
const (
	JobRunning   = "running"
	JobDone      = "done"
	JobStopped   = "stopped"
	JobCancelled = "cancelled"
)

// job is one update job as it is persisted (state_dir/ota/JOB.json).
type job struct {
	ID       string     `json:"job"`
	Firmware string     `json:"firmware"`
	Version  string     `json:"version"`
	Project  string     `json:"project"`
	Chip     string     `json:"chip"`
	Size     int64      `json:"size"`
	Parallel int        `json:"parallel"`
	State    string     `json:"state"`
	Error    string     `json:"error,omitempty"`
	Created  time.Time  `json:"created"`
	Finished *time.Time `json:"finished,omitempty"`
	Devices  []*entry   `json:"devices"`
}

// entry is one board of a job.
type entry struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Progress int    `json:"progress"`
	Error    string `json:"error,omitempty"`
	Reason   string `json:"reason,omitempty"` // why it was skipped
	// Reported: the board has reported its progress in $ota for this job;
	// from then on its figure is the one shown (see progressLocked).
	Reported bool `json:"reported,omitempty"`
	// Set when the ota frame is sent: the download URL's secret, the link's
	// remote IP and the board's $mac then (the URL is bound to them).
	Sent  time.Time `json:"sent,omitzero"`
	Token string    `json:"token,omitempty"`
	IP    string    `json:"ip,omitempty"`
	MAC   string    `json:"mac,omitempty"`

	// In memory only.
	waitSince time.Time // its turn came while the board was offline or had no $fw
	deadline  time.Time // back on the version by then, or failed
	served    int64     // bytes of the image served contiguously from offset 0
}

func (e *entry) active() bool {
	return e.State == StateSent || e.State == StateDownloading || e.State == StateRebooting
}

func (e *entry) final() bool {
	switch e.State {
	case StateDone, StateFailed, StateSkipped, StateCancelled:
		return true
	}
	return false
}

// JobView is a job as GET /api/ota/{job} shows it.
type JobView struct {
	Job      string       `json:"job"`
	Firmware string       `json:"firmware"`
	Version  string       `json:"version"`
	Project  string       `json:"project"`
	Chip     string       `json:"chip"`
	State    string       `json:"state"`
	Error    string       `json:"error,omitempty"`
	Parallel int          `json:"parallel"`
	Created  string       `json:"created"`
	Finished string       `json:"finished,omitempty"`
	Devices  []DeviceView `json:"devices"`
}

// DeviceView is one board of a job: state, progress 0–100, the error of a
// failure ("" otherwise: DESIGN's shape always has the key) and the reason
// of a skip.
type DeviceView struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Progress int    `json:"progress"`
	Error    string `json:"error"`
	Reason   string `json:"reason,omitempty"`
}

func (j *job) view() JobView {
	v := JobView{Job: j.ID, Firmware: j.Firmware, Version: j.Version, Project: j.Project, Chip: j.Chip,
		State: j.State, Error: j.Error, Parallel: j.Parallel, Created: gateway.FormatTime(j.Created),
		Devices: make([]DeviceView, len(j.Devices))}
	if j.Finished != nil {
		v.Finished = gateway.FormatTime(*j.Finished)
	}
	for i, e := range j.Devices {
		v.Devices[i] = DeviceView{ID: e.ID, State: e.State, Progress: e.Progress, Error: e.Error, Reason: e.Reason}
	}
	return v
}

// boardInfo is what a board's attributes say, for the skip rules.
type boardInfo struct {
	fw, project, chip, mac string
	hasFW                  bool
	ota                    json.RawMessage
}

func readInfo(info map[string]json.RawMessage) boardInfo {
	var b boardInfo
	b.fw, b.hasFW = attrString(info, "fw")
	b.project, _ = attrString(info, "project")
	b.chip, _ = attrString(info, "chip")
	b.mac, _ = attrString(info, "mac")
	b.ota = info["ota"]
	return b
}

// attrString is an attribute's value as text: a JSON string, or a number
// written as it came (a board may report "$fw":2).
func attrString(info map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := info[name]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s), true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	return "", false
}

// chipFamily maps what a board reports in $chip to an image's chip name:
// "ESP32-S3" and "esp32s3" are esp32s3; the classic ESP32's package names
// (Arduino's ESP.getChipModel(): "ESP32-D0WDQ6", "ESP32-PICO-D4", …) are esp32.
func chipFamily(s string) string {
	n := espimage.NormalizeChip(s)
	if _, ok := espimage.ChipID(n); ok {
		return n
	}
	for _, p := range []string{"esp32d", "esp32pico", "esp32u4", "esp32solo", "esp32mini"} {
		if strings.HasPrefix(n, p) {
			return "esp32"
		}
	}
	return n
}

// skipReason says why a board is skipped, or "" when it takes the image.
func (j *job) skipReason(b boardInfo) string {
	switch {
	case b.hasFW && b.fw == j.Version:
		return fmt.Sprintf("already on version %s", j.Version)
	case b.chip != "" && chipFamily(b.chip) != j.Chip:
		return fmt.Sprintf("chip %s, the image is for %s", b.chip, j.Chip)
	case b.project != "" && b.project != j.Project:
		return fmt.Sprintf("project %s, the image is of %s", b.project, j.Project)
	}
	return ""
}

// otaReport is a board's $ota attribute.
type otaReport struct {
	State    string  `json:"state"`
	Progress float64 `json:"progress"`
	Error    string  `json:"error"`
	Job      string  `json:"job"`
}
