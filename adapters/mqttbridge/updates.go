package mqttbridge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/esp32gw/esp32gw/adapters/mqttbridge/hadiscovery"
	"github.com/esp32gw/esp32gw/gateway"
)

// Updates is the fleet's firmware catalogue and update jobs (DESIGN.md,
// "Updates") as Home Assistant's update entity needs them. Both methods
// are safe for concurrent use.
type Updates interface {
	// Latest returns the version of the newest uploaded firmware for a
	// project and chip (a board's $project and $chip), and false when
	// there is none. It is called on the bridge's pump goroutine for
	// every change of a board's attributes: it must answer from memory at
	// once (no I/O, no waiting on a job).
	Latest(project, chip string) (version string, ok bool)
	// Install starts an update job that brings device to the newest
	// firmware of its project and chip, and returns the job's id. It
	// should return as soon as the job is created; it must return when ctx
	// ends (the bridge allows installTimeout). Its error is shown to the
	// user as the result's "error": the core's sentinels
	// (gateway.ErrUnknownDevice, ErrOffline, …) give the usual sentences
	// and codes, a *gateway.UserError its own text, anything else its
	// Error().
	Install(ctx context.Context, device string) (job string, err error)
}

// Option configures a Bridge in New.
type Option func(*Bridge)

// WithUpdates gives Home Assistant's update entities their latest version
// and an install command (with homeassistant.enabled). Without it (or with
// nil) a board's update entity shows its installed version as the latest
// and offers no install.
func WithUpdates(u Updates) Option { return func(b *Bridge) { b.updates = u } }

// FirmwareChanged tells the bridge that the firmware catalogue changed
// (an upload, a removal): the update entities' latest versions are
// published again where they changed. It never blocks; safe to call from
// any goroutine, before, during or after Run, and on a nil Bridge (MQTT
// off), where it does nothing.
func (b *Bridge) FirmwareChanged() {
	if b == nil {
		return
	}
	select {
	case b.pump.firmware <- struct{}{}:
	default:
	}
}

// Install tunables; each has its unit and its reason.
const (
	// installQueueLen bounds install requests waiting for the installer;
	// beyond it a request is answered "gateway busy" at once. Installs
	// come from people pressing a button: a handful at most.
	installQueueLen = 16
	// installTimeout bounds one Updates.Install call (creating a job, not
	// running it).
	installTimeout = 10 * time.Second
	// installRepeatWindow: a second install request for the same device
	// less than this after the first (a QoS 1 retransmission, a double
	// click) is dropped and counted, so one press starts one job.
	installRepeatWindow = 2 * time.Second
)

// installer runs the install requests Home Assistant publishes on
// PREFIX/<device>/update/install and answers each on …/result. paho's
// handler calls take, which never blocks; run, started and waited for by
// Bridge.Run, calls Updates.Install one request at a time.
type installer struct {
	updates   Updates
	hub       *gateway.Hub
	out       *outbox
	topics    topics
	m         *metrics
	log       *slog.Logger
	clustered bool // install topics of devices we do not know may be another gateway's

	reqs chan installReq // from take to run, capacity installQueueLen
}

type installReq struct {
	dev string
	at  time.Time
}

// take queues an install request without blocking. Retained requests are
// ignored (a retained install would start a job on every restart);
// requests for another gateway's device are its gateway's to answer.
func (in *installer) take(dev string, m mqtt.Message) {
	if m.Retained() {
		in.m.retainedIgnored.Add(1)
		in.log.Debug("mqtt: ignored retained install request", "device", dev)
		return
	}
	info, known := in.hub.Device(dev)
	if known && info.Remote {
		return
	}
	if !known && in.clustered {
		return
	}
	select {
	case in.reqs <- installReq{dev: dev, at: time.Now()}:
	default:
		in.m.inboundDropped.Add(1)
		in.answer(dev, "", errBusy)
	}
}

// run answers install requests until ctx ends.
func (in *installer) run(ctx context.Context) {
	last := map[string]time.Time{} // known local devices only, at most maxRecentSets beyond the window
	for {
		var r installReq
		select {
		case <-ctx.Done():
			return
		case r = <-in.reqs:
		}
		if _, known := in.hub.Device(r.dev); !known {
			in.answer(r.dev, "", fmt.Errorf("device %s: %w", r.dev, gateway.ErrUnknownDevice))
			continue
		}
		if t, ok := last[r.dev]; ok && r.at.Sub(t) < installRepeatWindow {
			in.m.duplicateCommands.Add(1)
			in.log.Debug("mqtt: repeated install request dropped", "device", r.dev)
			continue
		}
		if len(last) >= maxRecentSets {
			// Devices come and go (adopted, forgotten): forget the old.
			for dev, t := range last {
				if r.at.Sub(t) >= installRepeatWindow {
					delete(last, dev)
				}
			}
		}
		last[r.dev] = r.at
		ictx, cancel := context.WithTimeout(ctx, installTimeout)
		job, err := in.updates.Install(ictx, r.dev)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			in.log.Info("mqtt: install request refused", "device", r.dev, "err", err)
		} else {
			in.log.Info("mqtt: update job started from Home Assistant", "device", r.dev, "job", job)
		}
		in.answer(r.dev, job, err)
	}
}

// answer publishes an install request's result (never retained):
// {"ok":true,"job":J}, or {"ok":false,"error":…,"code":…} as for commands.
func (in *installer) answer(dev, job string, err error) {
	var p []byte
	if err == nil {
		in.m.commandsOK.Add(1)
		p, _ = json.Marshal(struct {
			OK  bool   `json:"ok"`
			Job string `json:"job"`
		}{true, job})
	} else {
		in.m.commandsErr.Add(1)
		p = resultPayload(dev, err)
	}
	in.out.pushFront(&outMsg{topic: in.topics.installResult(dev), payload: p, qos: 1})
}

// boardFW is what the update entity needs of a board's attributes.
type boardFW struct {
	fw, project, chip string
	ota               json.RawMessage // $ota as the board sent it
	// staleOTA is the $ota the board reported before its $fw last
	// changed: it is about the update that is now installed, not a
	// running one, until the board reports a different $ota.
	staleOTA json.RawMessage
	hasStale bool
}

// take records the board's attributes (all of them, from an info message
// or a snapshot).
func (b *boardFW) take(info map[string]json.RawMessage) {
	fw := attrText(info["fw"])
	ota := info["ota"]
	if b.fw != "" && fw != b.fw {
		b.staleOTA, b.hasStale = append(json.RawMessage(nil), ota...), true
	}
	if b.hasStale && string(ota) != string(b.staleOTA) {
		b.staleOTA, b.hasStale = nil, false
	}
	b.fw, b.project, b.chip = fw, attrText(info["project"]), attrText(info["chip"])
	b.ota = append(b.ota[:0], ota...)
}

// otaDone are the $ota states that mean no update is running.
var otaDone = map[string]bool{
	"": true, "idle": true, "done": true, "ok": true, "success": true, "failed": true, "error": true,
	"cancelled": true, "canceled": true, "skipped": true, "aborted": true, "rolled_back": true, "rollback": true,
}

// state is the update entity's state: installed from $fw, latest from the
// catalogue (the installed version when it has none), progress from $ota.
// An $ota left over from before the board's $fw changed, or one that
// claims a running update while the board already runs the latest
// firmware, counts as no update running.
func (b *boardFW) state(u Updates, name string) hadiscovery.UpdateState {
	s := hadiscovery.UpdateState{InstalledVersion: b.fw, LatestVersion: b.fw, Title: b.project}
	if s.Title == "" {
		s.Title = name + " firmware"
	}
	fromCatalogue := false
	if u != nil && b.project != "" && b.chip != "" {
		if v, ok := u.Latest(b.project, b.chip); ok && v != "" {
			s.LatestVersion, fromCatalogue = v, true
		}
	}
	var ota struct {
		State    string   `json:"state"`
		Progress *float64 `json:"progress"`
	}
	if len(b.ota) == 0 || b.hasStale || json.Unmarshal(b.ota, &ota) != nil {
		return s
	}
	if otaDone[strings.ToLower(ota.State)] || (fromCatalogue && s.LatestVersion == b.fw) {
		return s
	}
	s.InProgress = true
	if ota.Progress != nil {
		pct := int(min(max(*ota.Progress, 0), 100))
		s.UpdatePercentage = &pct
	}
	return s
}

// attrText is an attribute as text: a JSON string's contents, a number or
// bool as written, "" for anything else.
func attrText(v json.RawMessage) string {
	if len(v) == 0 {
		return ""
	}
	switch v[0] {
	case '"':
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s
		}
		return ""
	case '{', '[', 'n':
		return ""
	}
	return string(v)
}
