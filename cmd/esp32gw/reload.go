package main

import (
	"context"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
)

// boardStopWait bounds how long a reload waits for a removed or changed
// device's transport to return before starting its successor anyway.
const boardStopWait = 5 * time.Second

// reload re-reads config.yaml and state_dir/devices.yaml (SIGHUP, systemctl
// reload) and applies what can change while running:
//
//   - devices added, removed and changed take effect at once: the
//     transports of removed and changed devices stop, the hub gets the new
//     set (browsers keep their connections and receive one new snapshot),
//     and the transports of added and changed devices start. A change of
//     only name or commands touches the hub alone: the board's link stays.
//   - http.token (when set both before and after) is replaced at once;
//     the token file is re-read too (esp32gw token -rotate).
//   - every other key needs a restart (listeners, TLS, state_dir, MQTT,
//     history, limits, mDNS, gateway_id, auth mode, allowed origins and
//     hosts): a change is logged as such and the running value stays.
//
// A config with errors is refused: each problem is logged at Error with
// FILE:LINE: field: message, and the running config stays. It runs in
// run's goroutine, so it never overlaps shutdown.
func (g *runningGateway) reload(ctx context.Context) {
	if err := g.ctl.notify.Reloading(); err != nil {
		g.log.Debug("sd_notify RELOADING", "err", err)
	}
	defer func() {
		if err := g.ctl.notify.Ready(); err != nil {
			g.log.Debug("sd_notify READY", "err", err)
		}
	}()
	g.log.Info("reloading the config", "config", g.ctl.configPath)
	next, err := loadConfig(g.ctl.configPath, g.state.Path())
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			g.log.Error("reload refused, the running config stays: "+line, "config", g.ctl.configPath)
		}
		return
	}
	if next.GatewayID == "" {
		host, _ := os.Hostname()
		next.GatewayID = sanitizeID(host)
	}

	if keys := restartKeys(g.cfg, next); len(keys) > 0 {
		g.log.Warn("reload: changed keys need a restart; their running values stay", "keys", strings.Join(keys, ", "))
	}
	if next.HTTP.Token != g.cfg.HTTP.Token && next.HTTP.Token != "" && g.cfg.HTTP.Token != "" && g.cfg.HTTP.Auth == "token" {
		g.setToken(next.HTTP.Token)
		g.cfg.HTTP.Token = next.HTTP.Token
		g.log.Info("reload: http.token changed; the old token no longer works")
	}
	g.checkTokenFile()

	g.applyDevices(ctx, next.Devices)
}

// applyDevices makes the running devices those of want.
func (g *runningGateway) applyDevices(ctx context.Context, want []gateway.DeviceConfig) {
	old := map[string]gateway.DeviceConfig{}
	for _, d := range g.cfg.Devices {
		old[d.ID] = d
	}
	var removed, restarted, renamed, added []string
	var upsert []gateway.DeviceInfo
	for _, d := range want {
		o, ok := old[d.ID]
		switch {
		case !ok:
			added = append(added, d.ID)
			upsert = append(upsert, deviceInfo(d))
		case reflect.DeepEqual(o, d):
		case linkUnchanged(o, d):
			renamed = append(renamed, d.ID)
			upsert = append(upsert, deviceInfo(d))
		default:
			restarted = append(restarted, d.ID)
			upsert = append(upsert, deviceInfo(d))
		}
		delete(old, d.ID)
	}
	for id := range old {
		removed = append(removed, id)
	}
	slices.Sort(removed)
	if len(removed)+len(restarted)+len(renamed)+len(added) == 0 {
		g.log.Info("reload: devices unchanged", "devices", len(want))
		return
	}

	// Stop the links that go away or change first, so a changed board is
	// never served by its old and new transport at once.
	for _, id := range removed {
		g.stopBoard(id, linkClose{code: 1001, text: "device removed from the gateway"})
	}
	for _, id := range restarted {
		g.stopBoard(id, linkClose{code: 1012, text: "device settings changed in the gateway; connect again"})
	}
	if err := g.hub.ApplyDevices(removed, upsert); err != nil {
		// Only a local id that a remote (cluster) device holds gets here.
		g.log.Error("reload: device not added", "err", err)
	}
	byID := map[string]gateway.DeviceConfig{}
	for _, d := range want {
		byID[d.ID] = d
	}
	for _, id := range append(slices.Clone(restarted), added...) {
		if info, known := g.hub.Device(id); !known || info.Remote {
			continue // refused by ApplyDevices, logged above
		}
		b := g.newBoard(byID[id])
		g.boards[id] = b
		g.startBoard(ctx, b)
	}
	g.cfg.Devices = slices.Clone(want)
	g.fleet.index(want)
	g.log.Info("reload: devices updated", "devices", len(want),
		"added", strings.Join(added, ","), "removed", strings.Join(removed, ","),
		"changed", strings.Join(restarted, ","), "renamed", strings.Join(renamed, ","))
}

// linkUnchanged reports whether a and b differ at most in what only the hub
// holds (name, commands), so the board's link can stay up.
func linkUnchanged(a, b gateway.DeviceConfig) bool {
	a.Name, a.Commands = b.Name, b.Commands
	return reflect.DeepEqual(a, b)
}

// linkClose is why a device's board link is closed when the device is
// removed or changed: the close frame's code and text, and the reason in
// the device's status event (a boardlink.Closer; cmd cannot import
// adapters/internal/boardlink). Without one a link closes with 1001
// "gateway shutting down".
type linkClose struct {
	code int
	text string
}

func (c linkClose) Error() string  { return c.text }
func (c linkClose) CloseCode() int { return c.code }

// stopBoard ends a device's transport, its board link closed with why, and
// waits for it (bounded), and stops routing its ws-listen board.
func (g *runningGateway) stopBoard(id string, why linkClose) {
	g.devices.remove(id)
	b := g.boards[id]
	delete(g.boards, id)
	if b == nil || b.cancel == nil {
		return
	}
	b.cancel(why)
	select {
	case <-b.done:
	case <-time.After(boardStopWait):
		g.log.Warn("reload: the old transport has not stopped yet; starting anyway", "device", id)
	}
}

// restartKeys lists the keys (as config paths like "http.listen") whose
// value differs between the running config and next, other than the ones a
// reload applies: devices, and http.token when set in both.
func restartKeys(running, next gateway.Config) []string {
	var out []string
	var walk func(a, b reflect.Value, path string)
	walk = func(a, b reflect.Value, path string) {
		t := a.Type()
		for i := 0; i < t.NumField(); i++ {
			key := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			if key == "" || key == "-" {
				continue
			}
			p := key
			if path != "" {
				p = path + "." + key
			}
			fa, fb := a.Field(i), b.Field(i)
			switch {
			case p == "devices":
			case p == "http.token" && running.HTTP.Token != "" && next.HTTP.Token != "":
			case fa.Kind() == reflect.Struct && p != "http.tls":
				walk(fa, fb, p)
			case !reflect.DeepEqual(fa.Interface(), fb.Interface()):
				out = append(out, p)
			}
		}
	}
	walk(reflect.ValueOf(running), reflect.ValueOf(next), "")
	return out
}
