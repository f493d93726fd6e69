package main

import (
	"context"
	"net"

	"github.com/esp32gw/esp32gw/adapters/mdns"
	"github.com/esp32gw/esp32gw/adapters/mqttbridge"
)

// startDiscovery advertises the gateway over mDNS and lists the boards
// that advertise themselves as pending (mdns.enabled). A host without
// multicast only costs a warning: mdns.Run keeps trying and never fails
// the gateway.
func (g *runningGateway) startDiscovery(ctx context.Context) {
	if !g.cfg.MDNS.Enabled {
		return
	}
	port := 0
	if a, ok := g.ln.Addr().(*net.TCPAddr); ok {
		port = a.Port
	}
	o := mdns.Options{GatewayID: g.hub.GatewayID(), Port: port, TLS: g.tlsOn(), Log: g.log.With("part", "mdns")}
	g.workers.Go(func() {
		err := mdns.Run(ctx, o, func(b mdns.Board) {
			g.fleet.pending.AddDiscovered(b.ID, b.URL, b.Addr, b.Info)
		})
		if err != nil {
			g.log.Warn("mdns is off", "err", err)
		}
	})
}

// bridgeOptions gives the MQTT bridge the firmware catalogue, for Home
// Assistant's update entity (nil when updates are off).
func (g *runningGateway) bridgeOptions() []mqttbridge.Option {
	if g.ota == nil {
		return nil
	}
	return []mqttbridge.Option{mqttbridge.WithUpdates(g.ota)}
}

// followFirmware tells the bridge when uploads, deletions or jobs change
// what its update entities show, until ctx ends.
func (g *runningGateway) followFirmware(ctx context.Context) {
	if g.ota == nil || g.bridge == nil {
		return
	}
	changes, stop := g.ota.Changes()
	g.workers.Go(func() {
		defer stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-changes:
				g.bridge.FirmwareChanged()
			}
		}
	})
}
