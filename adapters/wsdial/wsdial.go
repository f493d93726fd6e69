// Package wsdial keeps a WebSocket link to a board's own server (the gateway
// dials ws://BOARD/ws). Placeholder: being implemented (issue 3).
package wsdial

import (
	"context"
	"errors"
	"log/slog"

	"github.com/esp32gw/esp32gw/gateway"
)

// Dialer keeps one board link up until its context ends.
type Dialer struct {
	cfg gateway.DeviceConfig
	log *slog.Logger
}

// New returns a Dialer for a ws-dial device.
func New(cfg gateway.DeviceConfig, log *slog.Logger) *Dialer { return &Dialer{cfg: cfg, log: log} }

// Run implements gateway.Transport.
func (d *Dialer) Run(ctx context.Context, s gateway.Sink) error {
	return errors.New("wsdial: not implemented yet")
}
