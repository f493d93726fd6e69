// Command esp32gw is the gateway: it loads config.yaml, builds the hub,
// starts one transport per board, serves browsers, the API and MQTT, and
// shuts all of it down in order on SIGINT/SIGTERM.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/esp32gw/esp32gw/adapters/mqttbridge"
	"github.com/esp32gw/esp32gw/adapters/serialport"
	"github.com/esp32gw/esp32gw/adapters/sim"
	"github.com/esp32gw/esp32gw/adapters/wsdial"
	"github.com/esp32gw/esp32gw/adapters/wslisten"
	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/web"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

// shutdownBudget is how long an orderly shutdown may take before the
// process exits anyway; the contract promises exit within 5 s.
const shutdownBudget = 4 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "esp32gw:", err)
		os.Exit(1)
	}
}

// run is the whole program; main only adds signals and the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("esp32gw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "config.yaml", "config file")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage:
  esp32gw [-config FILE] [-log-level LEVEL]   run the gateway
  esp32gw check [-config FILE]                validate the config and exit
  esp32gw ports                               list serial ports and their USB identity
  esp32gw version                             print the version
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	rest := fs.Args()
	if cmd == "" && len(rest) > 0 { // flags first: esp32gw -config x.yaml check
		cmd, rest = rest[0], rest[1:]
		if err := fs.Parse(rest); err != nil {
			return err
		}
		rest = fs.Args()
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q (see esp32gw -h)", rest[0])
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, "esp32gw", versionString())
		return nil
	case "ports":
		return serialport.PrintPorts(stdout)
	case "check":
		cfg, err := loadConfig(*configPath)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: OK (%d devices)\n", *configPath, len(cfg.Devices))
		return nil
	case "", "run":
	default:
		return fmt.Errorf("unknown command %q (want check, ports, version, or nothing to run)", cmd)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, *configPath, log)
}

func versionString() string {
	v := version
	info, ok := debug.ReadBuildInfo()
	if v == "" && ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	if v == "" {
		v = "dev"
		if ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					v += "-" + s.Value[:12]
				}
			}
		}
	}
	if ok {
		v += " (" + info.GoVersion + ")"
	}
	return v
}

// serve runs the gateway until ctx ends, then shuts down in order: board
// links, browser subscriptions, HTTP, MQTT.
func serve(ctx context.Context, cfg gateway.Config, configPath string, log *slog.Logger) error {
	stateDir := cfg.StateDir
	if !filepath.IsAbs(stateDir) {
		stateDir = filepath.Join(filepath.Dir(configPath), stateDir)
	}
	if cfg.GatewayID == "" {
		host, _ := os.Hostname()
		cfg.GatewayID = sanitizeID(host)
	}
	token, tokenSource, err := resolveToken(cfg.HTTP, stateDir)
	if err != nil {
		return err
	}

	hub := gateway.NewHub(gateway.Options{GatewayID: cfg.GatewayID, Logger: log})
	var transports []gateway.Transport
	var listenDevs []gateway.DeviceConfig
	for _, d := range cfg.Devices {
		if err := hub.AddDevice(gateway.DeviceInfo{ID: d.ID, Name: d.Name, Transport: d.Transport, Commands: d.Commands}); err != nil {
			return err
		}
		switch d.Transport {
		case gateway.TransportSim:
			transports = append(transports, sim.New(d, log))
		case gateway.TransportWSDial:
			transports = append(transports, wsdial.New(d, log))
		case gateway.TransportSerial:
			transports = append(transports, serialport.New(d, log))
		case gateway.TransportWSListen:
			listenDevs = append(listenDevs, d)
		}
	}
	state := stateStore{dir: stateDir, log: log}
	state.restore(hub)
	listener := wslisten.New(listenDevs, log)
	if len(listenDevs) > 0 {
		transports = append(transports, listener)
	}

	var bridge *mqttbridge.Bridge
	var metrics []web.MetricsWriter
	if cfg.MQTT.Enabled {
		bridge = mqttbridge.New(cfg.MQTT, hub, log)
		metrics = append(metrics, bridge)
	}
	webSrv := web.New(web.Options{
		Hub:            hub,
		AuthMode:       cfg.HTTP.Auth,
		Token:          token,
		AllowedOrigins: cfg.HTTP.AllowedOrigins,
		Logger:         log,
		Metrics:        metrics,
		Version:        versionString(),
	})
	mux := http.NewServeMux()
	mux.Handle("/device/", listener)
	mux.Handle("/", webSrv)
	httpSrv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second, // slowloris: headers must arrive promptly
		ReadTimeout:       30 * time.Second, // bodies are small; WebSockets clear this after the upgrade
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}

	// Bind before anything else so a taken port fails fast and clearly.
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
	}
	tlsOn := cfg.HTTP.TLS.Cert != ""
	logReady(log, ln.Addr(), tlsOn, cfg.HTTP.Auth, token, tokenSource, len(cfg.Devices))

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup // transports and the bridge
	for _, t := range transports {
		wg.Go(func() {
			if err := t.Run(runCtx, hub); err != nil && runCtx.Err() == nil {
				log.Error("transport stopped", "err", err)
			}
		})
	}
	wg.Go(func() { state.run(runCtx, hub) })
	bridgeDone := make(chan struct{})
	if bridge != nil {
		go func() {
			defer close(bridgeDone)
			if err := bridge.Run(runCtx); err != nil && runCtx.Err() == nil {
				log.Error("mqtt bridge stopped", "err", err)
			}
		}()
	} else {
		close(bridgeDone)
	}
	serveErr := make(chan error, 1)
	go func() {
		if tlsOn {
			serveErr <- httpSrv.ServeTLS(ln, cfg.HTTP.TLS.Cert, cfg.HTTP.TLS.Key)
		} else {
			serveErr <- httpSrv.Serve(ln)
		}
	}()

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		runErr = fmt.Errorf("http: %w", err)
	}

	// Ordered shutdown within shutdownBudget, whatever hangs.
	deadline, cancelDeadline := context.WithTimeout(context.Background(), shutdownBudget)
	defer cancelDeadline()
	cancel()
	waitOrDeadline(deadline, wg.Wait, log, "board links")
	state.save(hub)
	hub.Close() // browsers get a close frame (1001)
	waitOrDeadline(deadline, webSrv.Wait, log, "browser connections")
	if err := httpSrv.Shutdown(deadline); err != nil && !errors.Is(err, http.ErrServerClosed) {
		httpSrv.Close()
	}
	waitOrDeadline(deadline, func() { <-bridgeDone }, log, "mqtt bridge")
	log.Info("stopped")
	return runErr
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
	host, port, _ := net.SplitHostPort(addr.String())
	ip := net.ParseIP(host)
	lan := ""
	if ip != nil && ip.IsUnspecified() {
		host = "localhost"
		lan = firstLANAddress()
	}
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

// resolveToken returns the browser token and where it came from: "config",
// the token file path, or "" with auth none. With auth token and no token
// configured, the first start generates one and keeps it (mode 0600).
func resolveToken(h gateway.HTTPConfig, stateDir string) (token, source string, err error) {
	if h.Auth == "none" {
		return "", "", nil
	}
	if h.Token != "" {
		return h.Token, "config", nil
	}
	path := filepath.Join(stateDir, "token")
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, path, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("read token: %w", err)
	}
	var raw [18]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", fmt.Errorf("generate token: %w", err)
	}
	token = hex.EncodeToString(raw[:])
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return "", "", fmt.Errorf("state_dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("write token: %w", err)
	}
	return token, path, nil
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
