package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/esp32gw/esp32gw/adapters/wslisten"
	"github.com/esp32gw/esp32gw/gateway"
)

// fleet is enrollment and adoption (DESIGN.md, Fleet): the enroll token,
// the registry of boards waiting for adoption, the enroller behind
// /device/ID for unknown ids, and the operations the API asks for
// (adopt, forget), which change devices.yaml and the running devices.
//
// Adopt and forget run in run's goroutine (through ops), like a reload, so
// they never overlap a reload, each other, or shutdown. The enroller runs as
// one of the gateway's workers and stops with them.
type fleet struct {
	g        *runningGateway
	token    string // the enroll token
	pending  *gateway.Pending
	enroller *wslisten.Enroller

	ops    chan func(context.Context) // run executes each in its goroutine
	runCtx context.Context            // set by start, before HTTP serves

	// adopting is the registry entry adopt is making a device, kept by the
	// Prune of index until the board is told its token; run's goroutine only.
	adopting *gateway.PendingEntry

	mu      sync.RWMutex
	ids     map[string]bool   // every local device id
	adopted map[string]string // enrolled_as id → the device adopted from it
	urls    map[string]bool   // ws-dial URLs of devices, as urlKey
}

// newFleet reads or makes the enroll token and builds the registry and the
// enroller; g.hub and g.devices must exist.
func newFleet(g *runningGateway) (*fleet, error) {
	token, source, generated, err := g.state.EnrollToken(g.cfg.EnrollToken)
	if err != nil {
		return nil, err
	}
	switch {
	case generated:
		// The token itself is logged this once, as the login token is.
		g.log.Info("enroll token generated: new boards present it to wait for adoption (GET /api/enroll shows it too)", "enroll_token", token, "file", source)
	case source == "config":
		g.log.Info("enroll token from the config (enroll_token)")
	default:
		g.log.Info("enroll token: new boards present the one in this file", "file", source)
	}
	f := &fleet{g: g, token: token, ops: make(chan func(context.Context))}
	f.pending = gateway.NewPending(gateway.PendingOptions{
		MaxAttrs:  g.cfg.Limits.LabelsPerDevice,
		AttrBytes: int(g.cfg.Limits.ValueBytes),
		Taken:     f.taken,
		Changed:   g.hub.PendingChanged,
	})
	f.enroller = wslisten.NewEnroller(wslisten.EnrollOptions{
		Token: token, Pending: f.pending, Lookup: f.lookup, Log: g.log,
	})
	f.index(g.cfg.Devices)
	return f, nil
}

// start runs the enroller under ctx as one of the gateway's workers; adopt
// and forget are accepted from here on.
func (f *fleet) start(ctx context.Context, workers *sync.WaitGroup) {
	f.runCtx = ctx
	workers.Go(func() {
		_ = f.enroller.Run(ctx)
		f.pending.Close()
	})
}

// index records the running devices for the enroller and the registry,
// and drops from the registry the boards that are devices now (a reload
// or an adoption made them so).
func (f *fleet) index(devs []gateway.DeviceConfig) {
	ids, adopted, urls := map[string]bool{}, map[string]string{}, map[string]bool{}
	for _, d := range devs {
		ids[d.ID] = true
		if d.EnrolledAs != "" {
			adopted[d.EnrolledAs] = d.ID
		}
		if d.URL != "" {
			urls[urlKey(d.URL)] = true
		}
	}
	f.mu.Lock()
	f.ids, f.adopted, f.urls = ids, adopted, urls
	f.mu.Unlock()
	if f.pending != nil {
		f.pending.Prune(f.adopting)
	}
}

func (f *fleet) lookup(id string) (configured, adoptedAs string) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.ids[id] {
		configured = id
	}
	return configured, f.adopted[id]
}

func (f *fleet) taken(id, url string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.ids[id] || f.urls[urlKey(url)]
}

// urlKey is a ws-dial URL as taken compares it: mDNS reports a board as
// "ws://192.168.1.50:80/ws" while its device may say "ws://192.168.1.50/ws"
// (as the README writes it), so the scheme's default port is made explicit,
// and scheme and host are lower case. An unparsable URL stays as it is.
func urlKey(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return s
	}
	scheme, port := strings.ToLower(u.Scheme), u.Port()
	if port == "" {
		switch scheme {
		case "ws":
			port = "80"
		case "wss":
			port = "443"
		}
	}
	k := scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port) + cmp.Or(u.EscapedPath(), "/")
	if u.RawQuery != "" {
		k += "?" + u.RawQuery
	}
	return k
}

// do runs op in run's goroutine and returns its error.
func (f *fleet) do(ctx context.Context, op func(context.Context) error) error {
	res := make(chan error, 1)
	select {
	case f.ops <- func(runCtx context.Context) { res <- op(runCtx) }:
	case <-f.runCtx.Done():
		return gateway.ErrShutdown
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-res
}

// The web.Fleet the API uses.

func (f *fleet) Pending() []gateway.PendingBoard { return f.pending.List() }

func (f *fleet) EnrollToken() (token string, mdns bool) { return f.token, f.g.cfg.MDNS.Enabled }

func (f *fleet) Adopt(ctx context.Context, pendingID string, req gateway.AdoptRequest) (gateway.DeviceState, error) {
	var st gateway.DeviceState
	err := f.do(ctx, func(runCtx context.Context) (err error) {
		st, err = f.adopt(runCtx, pendingID, req)
		return err
	})
	return st, err
}

func (f *fleet) Forget(ctx context.Context, id string) error {
	return f.do(ctx, func(runCtx context.Context) error { return f.forget(runCtx, id) })
}

func (f *fleet) devicesPath() string { return filepath.Join(f.g.state.Path(), devicesFile) }

// adopt makes the board pending under pid a device: it is written to
// devices.yaml and started at once; an enrolled board is then sent its id
// and token and its pending connection closed. If that board is gone by
// then, the device is taken back out (ErrBoardGone).
func (f *fleet) adopt(ctx context.Context, pid string, req gateway.AdoptRequest) (gateway.DeviceState, error) {
	g := f.g
	board, entry, link, ok := f.pending.Get(pid)
	if !ok {
		return gateway.DeviceState{}, fmt.Errorf("%q: %w", pid, gateway.ErrUnknownPending)
	}
	id := req.ID
	if id == "" {
		id = pid
	}
	if !gateway.ValidID(id) || id == "bridge" {
		return gateway.DeviceState{}, fmt.Errorf("%q: %w", id, gateway.ErrBadID)
	}
	doc, err := readDevicesDoc(f.devicesPath())
	if err != nil {
		return gateway.DeviceState{}, err
	}
	_, inHub := g.hub.Device(id)
	if inHub || doc.has(id) || slices.ContainsFunc(g.cfg.Devices, func(d gateway.DeviceConfig) bool { return d.ID == id }) {
		return gateway.DeviceState{}, fmt.Errorf("device %s: %w", id, gateway.ErrIDTaken)
	}
	d := gateway.DeviceConfig{ID: id, Name: req.Name, Commands: req.Commands, CommandFormat: gateway.FormatText, FromStateDir: true}
	if link != nil {
		d.Transport, d.Token, d.EnrolledAs = gateway.TransportWSListen, newDeviceToken(), pid
	} else {
		d.Transport, d.URL = gateway.TransportWSDial, board.URL
	}
	next := g.cfg
	next.Devices = append(slices.Clone(g.cfg.Devices), d)
	next.ApplyDeviceDefaults()
	if err := next.Validate(); err != nil {
		return gateway.DeviceState{}, fmt.Errorf("%w: %v", gateway.ErrInvalid, err)
	}
	d = next.Devices[len(next.Devices)-1]
	old := g.cfg.Devices
	if err := doc.add(d); err != nil {
		return gateway.DeviceState{}, err
	}
	if err := doc.write(); err != nil {
		return gateway.DeviceState{}, err
	}
	f.adopting = entry
	defer func() { f.adopting = nil }()
	g.applyDevices(ctx, next.Devices)
	// The device shows what the board showed while pending (fw, chip, …)
	// until the board reports again.
	g.hub.SetInfo(id, board.Info)
	if link != nil {
		if err := link.Adopt(ctx, id, d.Token); err != nil {
			g.log.Warn("adoption undone: the board left before it was told its token", "device", id, "enrolled_as", pid, "err", err)
			doc.remove(id)
			if werr := doc.write(); werr != nil {
				g.log.Error("adoption undone, but devices.yaml still lists the device", "device", id, "err", werr)
			}
			g.applyDevices(ctx, old)
			f.pending.Remove(entry)
			return gateway.DeviceState{}, fmt.Errorf("device %s: %w", id, gateway.ErrBoardGone)
		}
	}
	f.pending.Remove(entry)
	g.log.Info("board adopted", "device", id, "transport", d.Transport, "pending_id", pid, "addr", board.Addr, "url", board.URL)
	return g.hub.DeviceState(id)
}

// forget removes a device that devices.yaml holds: from the file, its link,
// the hub. A device of config.yaml is refused (ErrConfigured).
func (f *fleet) forget(ctx context.Context, id string) error {
	g := f.g
	doc, err := readDevicesDoc(f.devicesPath())
	if err != nil {
		return err
	}
	if !doc.remove(id) {
		if slices.ContainsFunc(g.cfg.Devices, func(d gateway.DeviceConfig) bool { return d.ID == id }) {
			return fmt.Errorf("device %s: %w", id, gateway.ErrConfigured)
		}
		if info, ok := g.hub.Device(id); ok && info.Remote {
			return fmt.Errorf("device %s is attached to gateway %s: %w", id, info.Gateway, gateway.ErrConfigured)
		}
		return fmt.Errorf("device %s: %w", id, gateway.ErrUnknownDevice)
	}
	if err := doc.write(); err != nil {
		return err
	}
	g.applyDevices(ctx, slices.DeleteFunc(slices.Clone(g.cfg.Devices), func(d gateway.DeviceConfig) bool { return d.ID == id }))
	g.log.Info("device forgotten", "device", id)
	return nil
}

// newDeviceToken is a fresh per-device token for an adopted board (128
// bits, hex).
func newDeviceToken() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
