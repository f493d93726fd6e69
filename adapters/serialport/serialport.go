// Package serialport keeps a link to a board on a USB serial port.
// Placeholder: being implemented (issue 4).
package serialport

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/esp32gw/esp32gw/gateway"
)

// Port keeps one serial board link up until its context ends.
type Port struct {
	cfg gateway.DeviceConfig
	log *slog.Logger
}

// New returns a Port for a serial device.
func New(cfg gateway.DeviceConfig, log *slog.Logger) *Port { return &Port{cfg: cfg, log: log} }

// Run implements gateway.Transport.
func (p *Port) Run(ctx context.Context, s gateway.Sink) error {
	return errors.New("serialport: not implemented yet")
}

// PrintPorts writes the serial ports with their USB identity (esp32gw ports).
func PrintPorts(w io.Writer) error { return errors.New("ports: not implemented yet") }
