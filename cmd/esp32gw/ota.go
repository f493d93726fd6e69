package main

import (
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/esp32gw/esp32gw/adapters/ota"
	"github.com/esp32gw/esp32gw/web"
)

// Test hooks, read only here: the 3-minute return timeout and the
// 10-minute URL validity of firmware updates, as Go durations. Unset (the
// default) or unusable: the contract's values.
const (
	otaTimeoutEnv = "ESP32GW_TEST_OTA_TIMEOUT"
	otaURLTTLEnv  = "ESP32GW_TEST_OTA_URL_TTL"
)

// newOTA opens the firmware store (state_dir/firmware) and the update jobs
// (state_dir/ota). On failure updates are off (the API answers 503) and
// the gateway runs on.
func (g *runningGateway) newOTA() *ota.Manager {
	dir := g.state.Path()
	store, err := ota.OpenStore(filepath.Join(dir, "firmware"), g.log)
	if err != nil {
		g.log.Error("firmware updates are off", "err", err)
		return nil
	}
	m, err := ota.NewManager(ota.Options{
		Hub:           g.hub,
		Store:         store,
		Dir:           filepath.Join(dir, "ota"),
		Logger:        g.log,
		HTTPAddr:      func() string { return g.ln.Addr().String() },
		TLS:           g.tlsOn(),
		ReturnTimeout: envDuration(otaTimeoutEnv, g),
		URLValidity:   envDuration(otaURLTTLEnv, g),
	})
	if err != nil {
		g.log.Error("firmware updates are off", "err", err)
		return nil
	}
	return m
}

func envDuration(name string, g *runningGateway) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		g.log.Warn("ignoring "+name, "value", v)
		return 0
	}
	g.log.Warn("test hook set: "+name, "value", d)
	return d
}

// firmwareAPI is the manager as web.Firmware.
type firmwareAPI struct{ m *ota.Manager }

func (f firmwareAPI) UploadFirmware(body io.Reader) (any, error) { return f.m.UploadFirmware(body) }
func (f firmwareAPI) ListFirmware() any                          { return f.m.Firmware() }
func (f firmwareAPI) DeleteFirmware(sum string) error            { return f.m.DeleteFirmware(sum) }
func (f firmwareAPI) StartJob(fw string, devices []string, parallel int) (string, error) {
	return f.m.StartJob(fw, devices, parallel)
}
func (f firmwareAPI) JobView(id string) (any, bool)    { return f.m.Job(id) }
func (f firmwareAPI) JobList() any                     { return f.m.Jobs() }
func (f firmwareAPI) CancelJob(id string) (any, error) { return f.m.CancelJob(id) }
func (f firmwareAPI) OpenDownload(job, device, file, remote, mac string) (web.Download, error) {
	d, err := f.m.OpenDownload(job, device, file, remote, mac)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// webFirmware is the web server's view of the manager (nil: updates off).
func webFirmware(m *ota.Manager) web.Firmware {
	if m == nil {
		return nil
	}
	return firmwareAPI{m}
}
