package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"

	"github.com/esp32gw/esp32gw/adapters/wslisten"
	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/configfile"
	"github.com/esp32gw/esp32gw/internal/statedir"
)

// devicesFile is where devices added from the dashboard or the API live,
// inside state_dir (DESIGN.md); the gateway writes it, config.yaml is never
// rewritten.
const devicesFile = "devices.yaml"

// loadConfig reads config.yaml and, when it exists, state_dir/devices.yaml,
// and returns one validated config holding the devices of both. Startup,
// check and every reload load through here. stateDir is the state
// directory to read devices.yaml from; "" means the one config.yaml names
// (a reload passes the running one, since state_dir needs a restart).
//
// devices.yaml has the shape of config.yaml with only a devices: list.
func loadConfig(configPath, stateDir string) (gateway.Config, error) {
	cfg, err := configfile.Load(configPath)
	if err != nil {
		return cfg, err
	}
	if stateDir == "" {
		stateDir = statedir.New(configPath, cfg.StateDir, nil).Path()
	}
	path := filepath.Join(stateDir, devicesFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return cfg, nil
	}
	extra, err := configfile.Load(path)
	if err != nil {
		return cfg, err
	}
	if !onlyDevices(extra) {
		return cfg, fmt.Errorf("%s: holds keys other than devices:, which belong in %s", path, configPath)
	}
	var problems []string
	ids := map[string]bool{}
	for _, d := range cfg.Devices {
		ids[d.ID] = true
	}
	for i, d := range extra.Devices {
		if ids[d.ID] {
			problems = append(problems, fmt.Sprintf("%s: devices[%d].id: %q is also a device in %s; ids are unique across both files", path, i, d.ID, configPath))
		}
		ids[d.ID] = true
	}
	if len(problems) > 0 {
		return cfg, errors.New(strings.Join(problems, "\n"))
	}
	for i := range extra.Devices {
		extra.Devices[i].FromStateDir = true
	}
	cfg.Devices = append(cfg.Devices, extra.Devices...)
	return cfg, nil
}

// onlyDevices reports whether a config loaded from devices.yaml set nothing
// but devices.
func onlyDevices(c gateway.Config) bool {
	c.Devices = nil
	return reflect.DeepEqual(c, gateway.DefaultConfig())
}

// newBoard makes d's transport; a ws-listen device's listener is routed at
// once (it answers 503 until its board is started).
func (g *runningGateway) newBoard(d gateway.DeviceConfig) *board {
	t := newTransport(d, g.log)
	if l, ok := t.(*wslisten.Listener); ok {
		g.devices.set(d.ID, l)
	}
	return &board{transport: t}
}

// deviceRouter serves /device/ID for ws-listen boards: each device has its
// own listener, so a reload can add, replace or remove one device without
// touching the links of the others. Unknown ids get the empty listener's
// 401. Safe for concurrent use.
type deviceRouter struct {
	refuse *wslisten.Listener // knows no device: 401 for every id
	enroll *wslisten.Enroller // unknown ids with the enroll token; set by build

	mu   sync.RWMutex
	byID map[string]*wslisten.Listener
}

func newDeviceRouter(log *slog.Logger) *deviceRouter {
	return &deviceRouter{refuse: wslisten.New(nil, log), byID: map[string]*wslisten.Listener{}}
}

func (r *deviceRouter) set(id string, l *wslisten.Listener) {
	r.mu.Lock()
	r.byID[id] = l
	r.mu.Unlock()
}

func (r *deviceRouter) remove(id string) {
	r.mu.Lock()
	delete(r.byID, id)
	r.mu.Unlock()
}

func (r *deviceRouter) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	id := strings.TrimPrefix(req.URL.Path, "/device/")
	r.mu.RLock()
	l, ok := r.byID[id]
	r.mu.RUnlock()
	switch {
	case ok:
		l.ServeHTTP(w, req)
	case r.enroll != nil:
		r.enroll.ServeHTTP(w, req)
	default:
		r.refuse.ServeHTTP(w, req)
	}
}
