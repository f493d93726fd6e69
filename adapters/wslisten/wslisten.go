// Package wslisten accepts boards that dial the gateway at /device/{id}.
// Placeholder: being implemented (issue 3).
package wslisten

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/esp32gw/esp32gw/gateway"
)

// Listener serves /device/{id} for every ws-listen device and is their Transport.
type Listener struct {
	devs []gateway.DeviceConfig
	log  *slog.Logger
}

// New returns a Listener for the ws-listen devices.
func New(devs []gateway.DeviceConfig, log *slog.Logger) *Listener {
	return &Listener{devs: devs, log: log}
}

// Run implements gateway.Transport: it holds the sink until ctx ends.
func (l *Listener) Run(ctx context.Context, s gateway.Sink) error {
	<-ctx.Done()
	return nil
}

// ServeHTTP upgrades a board at /device/{id}.
func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "ws-listen not implemented yet", http.StatusNotImplemented)
}
