package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/esp32gw/esp32gw/adapters/history"
	"github.com/esp32gw/esp32gw/adapters/mqttbridge"
	"github.com/esp32gw/esp32gw/adapters/ota"
	"github.com/esp32gw/esp32gw/adapters/serialport"
	"github.com/esp32gw/esp32gw/adapters/sim"
	"github.com/esp32gw/esp32gw/adapters/wsdial"
	"github.com/esp32gw/esp32gw/adapters/wslisten"
	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/connlimit"
	"github.com/esp32gw/esp32gw/internal/statedir"
	"github.com/esp32gw/esp32gw/web"
)

// shutdownBudget is how long an orderly shutdown may take before the
// process exits anyway; the contract promises exit within 5 s.
const shutdownBudget = 4 * time.Second

// runningGateway is the gateway as main builds it: the hub and everything
// attached to it. build constructs it, run starts it and waits, shutdown
// stops it in order.
type runningGateway struct {
	cfg     gateway.Config
	log     *slog.Logger
	state   statedir.Dir
	hub     *gateway.Hub
	history *history.Store // nil when the database could not be opened at all

	// boards holds the transport of each device, by device id, each run
	// under its own context so a device can be started or stopped alone (a
	// reload). A ws-listen device's transport is its own wslisten.Listener,
	// which devices routes /device/ID to.
	boards  map[string]*board
	devices *deviceRouter
	fleet   *fleet // enrollment and adoption (fleet.go)

	bridge  *mqttbridge.Bridge // nil with MQTT off
	ota     *ota.Manager       // firmware updates; nil when its state could not be opened
	web     *web.Server
	http    *http.Server
	ln      net.Listener        // bound by build, so a taken port fails before anything starts
	conns   *connlimit.Listener // ln's connection caps (per address, total)
	token   string
	tokenAt string // where the token came from: "config", the token file, or "" (auth none)
	// viewerToken logs in read-only sessions; "" until esp32gw token -viewer makes one.
	viewerToken string

	// Set by run, used by shutdown.
	stop    context.CancelFunc // ends boards, the seq saver and the bridge
	workers sync.WaitGroup     // boards, listener and the seq saver
	bridged chan struct{}      // closed when the bridge has returned

	ctl control // set by runGateway: sd_notify, reloads (notify.go, reload.go)
}

// board is one device's transport while it runs.
type board struct {
	transport gateway.Transport
	cancel    context.CancelCauseFunc // nil until started; stopBoard gives a linkClose
	done      chan struct{}           // closed when its Run has returned
}

// build constructs the gateway from a validated config: hub and devices,
// restored state, transports, MQTT bridge, web server, and the bound HTTP
// listener. Nothing runs yet.
// sessionTTL is how long a login session lasts unused (0: 30 days; tests
// shorten it, see sessionTTLEnv).
func build(cfg gateway.Config, configPath string, log *slog.Logger, sessionTTL time.Duration) (*runningGateway, error) {
	if cfg.GatewayID == "" {
		host, _ := os.Hostname()
		cfg.GatewayID = sanitizeID(host)
	}
	g := &runningGateway{
		cfg:    cfg,
		log:    log,
		state:  statedir.New(configPath, cfg.StateDir, log),
		boards: map[string]*board{},
	}
	g.devices = newDeviceRouter(log)
	var err error
	if g.token, g.tokenAt, err = g.state.Token(cfg.HTTP); err != nil {
		return nil, err
	}
	sessionsFile := ""
	if cfg.HTTP.Auth != "none" {
		if g.viewerToken, err = g.state.ReadViewerToken(); err != nil {
			return nil, err
		}
		sessionsFile = g.state.SessionsPath()
	}
	g.history = openHistory(cfg.History, g.state, log)
	hubOpts := gateway.Options{GatewayID: cfg.GatewayID, Logger: log,
		LabelsPerDevice: cfg.Limits.LabelsPerDevice, ValueBytes: int(cfg.Limits.ValueBytes)}
	if g.history != nil {
		hubOpts.History = g.history
	}
	g.hub = gateway.NewHub(hubOpts)
	for _, d := range cfg.Devices {
		if err := g.hub.AddDevice(deviceInfo(d)); err != nil {
			return nil, err
		}
		g.boards[d.ID] = g.newBoard(d)
	}
	g.restore()
	if g.fleet, err = newFleet(g); err != nil {
		return nil, err
	}
	g.devices.enroll = g.fleet.enroller

	var metrics []web.MetricsWriter
	var hist gateway.History
	if g.history != nil {
		hist = g.history
		metrics = append(metrics, g.history)
	}
	g.ota = g.newOTA()
	if cfg.MQTT.Enabled {
		g.bridge = mqttbridge.New(cfg.MQTT, g.hub, log, g.bridgeOptions()...)
		metrics = append(metrics, g.bridge)
	}
	metrics = append(metrics, connMetrics{g})
	g.web = web.New(web.Options{
		Hub:            g.hub,
		AuthMode:       cfg.HTTP.Auth,
		Token:          g.token,
		ViewerToken:    g.viewerToken,
		SessionsFile:   sessionsFile,
		SessionTTL:     sessionTTL,
		AllowedOrigins: cfg.HTTP.AllowedOrigins,
		Logger:         log,
		Metrics:        metrics,
		Version:        versionString(),
		History:        hist,
		ValueBytes:     int(cfg.Limits.ValueBytes),
		MaxBrowsers:    cfg.Limits.Browsers,
		Fleet:          g.fleet,
		Firmware:       webFirmware(g.ota),
	})
	mux := http.NewServeMux()
	mux.Handle("/device/", g.devices) // refuses every board without ws-listen devices
	mux.Handle("/", g.web)
	g.http = newHTTPServer(web.HostGuard(cfg.HTTP, mux, log), log)

	// Bind before anything starts so a taken port fails fast and clearly.
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
	}
	g.conns = limitConns(ln, cfg.Limits, g.tlsOn())
	g.ln = g.conns
	return g, nil
}

func deviceInfo(d gateway.DeviceConfig) gateway.DeviceInfo {
	source := gateway.SourceConfig
	if d.FromStateDir {
		source = gateway.SourceAPI
	}
	return gateway.DeviceInfo{ID: d.ID, Name: d.Name, Transport: d.Transport, Commands: d.Commands, Source: source}
}

// newTransport is a device's transport; a ws-listen device gets a listener
// of its own, which deviceRouter serves.
func newTransport(d gateway.DeviceConfig, log *slog.Logger) gateway.Transport {
	switch d.Transport {
	case gateway.TransportSim:
		return sim.New(d, log)
	case gateway.TransportWSDial:
		return wsdial.New(d, log)
	case gateway.TransportSerial:
		return serialport.New(d, log)
	case gateway.TransportWSListen:
		return wslisten.New([]gateway.DeviceConfig{d}, log)
	}
	return nil
}

// run starts every board, the seq saver, the MQTT bridge and HTTP, and
// returns when ctx ends (nil) or HTTP fails. Call shutdown after it, in
// either case.
func (g *runningGateway) run(ctx context.Context) error {
	runCtx, stop := context.WithCancel(ctx)
	g.stop = stop
	for _, d := range g.cfg.Devices {
		if b := g.boards[d.ID]; b != nil {
			g.startBoard(runCtx, b)
		}
	}
	// After the boards start, so a browser that follows the login URL at
	// once finds simulated boards already linked (they attach at once).
	logReady(g.log, g.ln.Addr(), g.tlsOn(), g.cfg.HTTP.Auth, g.token, g.tokenAt, len(g.cfg.Devices))
	g.workers.Go(func() { g.state.Run(runCtx, g.hub) })
	g.fleet.start(runCtx, &g.workers)
	if g.ota != nil {
		g.workers.Go(func() { g.ota.Run(runCtx) })
	}
	g.followFirmware(runCtx)
	g.startDiscovery(runCtx)
	g.bridged = make(chan struct{})
	if g.bridge != nil {
		go func() {
			defer close(g.bridged)
			if err := g.bridge.Run(runCtx); err != nil && runCtx.Err() == nil {
				g.log.Error("mqtt bridge stopped", "err", err)
			}
		}()
	} else {
		close(g.bridged)
	}
	served := make(chan error, 1)
	go func() {
		if g.tlsOn() {
			served <- g.http.ServeTLS(g.ln, g.cfg.HTTP.TLS.Cert, g.cfg.HTTP.TLS.Key)
		} else {
			served <- g.http.Serve(g.ln)
		}
	}()

	g.started(runCtx)

	for {
		select {
		case <-ctx.Done():
			g.log.Info("shutting down")
			return nil
		case err := <-served:
			return fmt.Errorf("http: %w", err)
		case <-g.ctl.reloads:
			g.reload(runCtx)
		case op := <-g.fleet.ops:
			op(runCtx)
		}
	}
}

func (g *runningGateway) tlsOn() bool { return g.cfg.HTTP.TLS.Cert != "" }

// startBoard runs b's transport under its own context, derived from ctx.
func (g *runningGateway) startBoard(ctx context.Context, b *board) {
	ctx, b.cancel = context.WithCancelCause(ctx)
	b.done = make(chan struct{})
	g.workers.Go(func() {
		defer close(b.done)
		g.runTransport(ctx, b.transport)
	})
}

func (g *runningGateway) runTransport(ctx context.Context, t gateway.Transport) {
	if err := t.Run(ctx, g.hub); err != nil && ctx.Err() == nil {
		g.log.Error("transport stopped", "err", err)
	}
}

// shutdown stops everything run started, in order, within budget whatever
// hangs: board links, the state (saved), browser subscriptions (closed with
// 1001), HTTP, then the MQTT bridge (offline states).
func (g *runningGateway) shutdown(budget time.Duration) {
	g.stopping()
	deadline, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	if g.stop != nil {
		g.stop()
		waitOrDeadline(deadline, g.workers.Wait, g.log, "board links")
	}
	// The seq is fsynced: on a slow SD card that is part of the budget too.
	waitOrDeadline(deadline, func() { g.state.Save(g.hub) }, g.log, "state save")
	g.hub.Close() // browsers get a close frame (1001)
	if g.history != nil {
		// The links' offline statuses and the last readings reach the disk.
		waitOrDeadline(deadline, func() {
			if err := g.history.Close(); err != nil {
				g.log.Error("history: close", "err", err)
			}
		}, g.log, "history database")
	}
	waitOrDeadline(deadline, g.web.Wait, g.log, "browser connections")
	if err := g.http.Shutdown(deadline); err != nil && !errors.Is(err, http.ErrServerClosed) {
		g.http.Close()
	}
	g.ln.Close() // in case run never served it
	if g.bridged != nil {
		waitOrDeadline(deadline, func() { <-g.bridged }, g.log, "mqtt bridge")
	}
	g.log.Info("stopped")
}

func waitOrDeadline(ctx context.Context, wait func(), log *slog.Logger, what string) {
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		log.Warn("shutdown: gave up waiting", "for", what)
	}
}

// logReady logs the one line a user needs: where the dashboard is, with the
// login token when the gateway generated it.
func logReady(log *slog.Logger, addr net.Addr, tlsOn bool, auth, token, tokenSource string, devices int) {
	scheme := "http"
	if tlsOn {
		scheme = "https"
	}
	host, lan, port := dashboardHosts(addr.String())
	base := fmt.Sprintf("%s://%s/", scheme, net.JoinHostPort(host, port))
	log.Info("listening", "addr", addr.String(), "devices", devices)
	switch {
	case auth == "none":
		log.Info("dashboard ready (auth: none)", "url", base)
	case tokenSource == "config":
		log.Info("dashboard ready: log in with the token from the config", "url", base)
	default:
		args := []any{"url", base + "?token=" + token}
		if lan != "" {
			// From another machine: the same URL with this address (the
			// token is written once per line, so it is not repeated here).
			args = append(args, "lan", fmt.Sprintf("%s://%s/", scheme, net.JoinHostPort(lan, port)))
		}
		args = append(args, "token_file", tokenSource)
		log.Info("dashboard ready: open this login URL", args...)
	}
}

// dashboardHosts splits a listen address into the host to show in URLs
// and the port: a wildcard or empty host is shown as localhost, with this
// machine's first LAN address as lan (else lan is "").
func dashboardHosts(listen string) (host, lan, port string) {
	host, port, _ = net.SplitHostPort(listen)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return "localhost", firstLANAddress(), port
	}
	return host, "", port
}

func firstLANAddress() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// sanitizeID turns a hostname into a valid gateway id.
func sanitizeID(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteRune(c)
		case c == '.':
			return orDefault(b.String())
		default:
			b.WriteByte('-')
		}
	}
	return orDefault(b.String())
}

func orDefault(s string) string {
	if s == "" {
		return "esp32gw"
	}
	return s
}
