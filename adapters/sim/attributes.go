package sim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
)

// AttributeInterval is how often a simulated board reports its attributes
// ($rssi, $heap, $uptime, …), more often than the firmware library's 60 s
// so the Fleet page's charts of a fresh checkout fill in minutes.
const AttributeInterval = 15 * time.Second

// attributes are what a simulated board says about itself, as the
// ESP32Gateway library does: a stable identity (firmware, chip, MAC from the
// device id) and a Wi-Fi signal and free heap that wander a little.
type attributes struct {
	project string
	mac     string
	booted  time.Time
	rssi    float64
	heap    float64
	rng     *rand.Rand
}

func newAttributes(cfg gateway.DeviceConfig, seed uint64, rng *rand.Rand) *attributes {
	board := cfg.Sim.Board
	if board == "" {
		board = "tutorial"
	}
	return &attributes{
		project: "esp32gw-sim-" + board,
		mac:     fmt.Sprintf("02:53:49:%02X:%02X:%02X", byte(seed>>16), byte(seed>>8), byte(seed)),
		booted:  time.Now(),
		rssi:    -50 - float64(seed%20),
		heap:    180000 + float64(seed%20000),
		rng:     rng,
	}
}

// frame is one flat object with every attribute.
func (a *attributes) frame() []byte {
	a.rssi = min(-30, max(-90, a.rssi+a.rng.NormFloat64()*2))
	a.heap = min(240000, max(60000, a.heap+a.rng.NormFloat64()*1500))
	b, _ := json.Marshal(map[string]any{
		"$fw": "1.0.0", "$project": a.project, "$chip": "esp32", "$mac": a.mac,
		"$rssi": int(a.rssi), "$heap": int(a.heap), "$uptime": int(time.Since(a.booted).Seconds()),
		"$reset": "POWERON",
	})
	return b
}
