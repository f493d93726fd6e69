package main

import (
	"context"
	"log/slog"
	"net"
	"strings"

	"github.com/esp32gw/esp32gw/adapters/mdns"
	"github.com/esp32gw/esp32gw/adapters/mqttbridge"
	"github.com/esp32gw/esp32gw/gateway"
)

// startDiscovery advertises the gateway over mDNS and lists the boards
// that advertise themselves as pending (mdns.enabled). A host without
// multicast only costs a warning: mdns.Run keeps trying and never fails
// the gateway. The advertisement follows http.listen: bound to one address,
// only that address on its interface; bound to loopback, none at all (the
// browse goes on).
func (g *runningGateway) startDiscovery(ctx context.Context) {
	if !g.cfg.MDNS.Enabled {
		return
	}
	port := 0
	if a, ok := g.ln.Addr().(*net.TCPAddr); ok {
		port = a.Port
	}
	log := g.log.With("part", "mdns")
	o := mdns.Options{GatewayID: g.hub.GatewayID(), Port: port, TLS: g.tlsOn(), Log: log}
	var why string
	o.Interfaces, o.Addrs, why = mdnsPlace(g.ln.Addr())
	if why != "" {
		o.NoAdvertise = true
		log.Info("mdns: not advertising, " + why)
	}
	ids := &boardIDs{log: log}
	g.workers.Go(func() {
		err := mdns.Run(ctx, o, func(b mdns.Board) {
			if id, ok := ids.id(b); ok {
				// txtvers is DNS-SD's record version, not the board's.
				delete(b.Info, "txtvers")
				g.fleet.pending.AddDiscovered(id, b.URL, b.Addr, b.Info)
			}
		})
		if err != nil {
			g.log.Warn("mdns is off", "err", err)
		}
	})
}

// mdnsPlace is where the gateway may be advertised, given the address its
// HTTP listener is bound to: anywhere (nil, nil) when bound to every
// address; only the interface holding it, with only that address, when
// bound to one IPv4 address; nowhere (why says why) when bound to loopback
// or to one IPv6 address (the advertisement carries IPv4 addresses only).
func mdnsPlace(a net.Addr) (ifaces []string, addrs []net.IP, why string) {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.IP == nil || ta.IP.IsUnspecified() {
		return nil, nil, ""
	}
	switch {
	case ta.IP.IsLoopback():
		return nil, nil, "http.listen is loopback"
	case ta.IP.To4() == nil:
		return nil, nil, "http.listen is an IPv6 address (mDNS advertises IPv4 addresses only)"
	}
	ifis, err := net.Interfaces()
	if err != nil {
		return nil, nil, "cannot list interfaces to find http.listen's: " + err.Error()
	}
	for _, ifi := range ifis {
		as, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, ad := range as {
			if n, ok := ad.(*net.IPNet); ok && n.IP.Equal(ta.IP) {
				return []string{ifi.Name}, []net.IP{ta.IP.To4()}, ""
			}
		}
	}
	return nil, nil, "no interface holds http.listen's address " + ta.IP.String()
}

// boardIDs turns the id a board advertises (TXT id, else its instance
// name) into a device id: as it is when valid, else lower case with every
// other character than [a-z0-9_-] replaced by '-'. A board whose id had to
// be changed, or cannot be made valid (empty, too long), is logged once at
// Info. Only mdns.Run's goroutine uses it.
type boardIDs struct {
	log   *slog.Logger
	noted map[string]bool // boards logged, by advertised id and URL
}

// reservedID is never a device id: MQTT's PREFIX/bridge/… topics are the
// gateway's own.
const reservedID = "bridge"

// maxNotedBoards bounds boardIDs.noted; past it, it starts afresh.
const maxNotedBoards = 1024

func (n *boardIDs) id(b mdns.Board) (string, bool) {
	if gateway.ValidID(b.ID) && b.ID != reservedID {
		return b.ID, true
	}
	id := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(b.ID))
	ok := gateway.ValidID(id) && id != reservedID
	if k := b.ID + " " + b.URL; !n.noted[k] {
		if n.noted == nil || len(n.noted) >= maxNotedBoards {
			n.noted = map[string]bool{}
		}
		n.noted[k] = true
		if ok {
			n.log.Info("mdns: a board's id is not a device id; listed under one made from it",
				"advertised", gateway.Truncate(b.ID, 80), "device", id, "url", b.URL)
		} else {
			n.log.Info("mdns: board ignored: its id is not a device id and cannot be made one ([a-z0-9_-]+, at most 64 characters)",
				"advertised", gateway.Truncate(b.ID, 80), "url", b.URL)
		}
	}
	return id, ok
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
