// Package mqttbridge mirrors the hub to an MQTT broker and takes commands
// from it. Placeholder: being implemented (issue 6).
package mqttbridge

import (
	"context"
	"io"
	"log/slog"

	"github.com/esp32gw/esp32gw/gateway"
)

// Bridge is the MQTT side of the gateway.
type Bridge struct {
	cfg gateway.MQTTConfig
	hub *gateway.Hub
	log *slog.Logger
}

// New returns a bridge; Run connects it.
func New(cfg gateway.MQTTConfig, hub *gateway.Hub, log *slog.Logger) *Bridge {
	return &Bridge{cfg: cfg, hub: hub, log: log}
}

// Run keeps the bridge connected until ctx ends, then publishes offline
// states and disconnects before it returns.
func (b *Bridge) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// WriteMetrics writes the bridge's Prometheus metrics.
func (b *Bridge) WriteMetrics(w io.Writer) {}
