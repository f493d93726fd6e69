package web

import (
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
)

// localAddrsTTL is how long the list of this machine's addresses is reused
// before it is read again (a DHCP lease may change it).
const localAddrsTTL = 10 * time.Second

// HostGuard protects a gateway running with auth: none from DNS rebinding
// (DESIGN.md "Security defaults"): a page on evil.example whose name is
// rebound to the gateway's address makes same-origin requests that carry
// Host: evil.example, so the Origin check alone cannot tell them apart. A
// request must name the gateway in its Host header by a local name or
// address (localhost, 127.0.0.0/8, ::1, this machine's hostname and
// HOSTNAME.local, an address of one of its interfaces, the listen address)
// or one listed in http.allowed_hosts; otherwise it gets 403.
//
// Board dial-ins (/device/...) carry their own per-device token and are not
// checked. With auth: token the token already defeats rebinding (the
// attacker's page has no cookie for its own name), and h is returned as is.
func HostGuard(cfg gateway.HTTPConfig, h http.Handler, log *slog.Logger) http.Handler {
	if cfg.Auth != "none" {
		return h
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &hostGuard{next: h, log: log, allowed: map[string]bool{}}
	for _, a := range cfg.AllowedHosts {
		g.allowed[strings.ToLower(strings.TrimSpace(a))] = true
	}
	if host, _, err := net.SplitHostPort(cfg.Listen); err == nil && host != "" {
		g.allowed[strings.ToLower(host)] = true
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		name = strings.ToLower(name)
		short, _, _ := strings.Cut(name, ".")
		for _, n := range []string{name, name + ".local", short, short + ".local"} {
			g.allowed[n] = true
		}
	}
	return g
}

type hostGuard struct {
	next    http.Handler
	log     *slog.Logger
	allowed map[string]bool // lower-case names and addresses, and host:port entries

	mu      sync.Mutex
	addrs   map[string]bool // this machine's interface addresses
	addrsAt time.Time
	warned  gateway.LogLimiter
}

func (g *hostGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/device/") || g.local(r.Host) {
		g.next.ServeHTTP(w, r)
		return
	}
	const msg = "request for a foreign Host refused (DNS rebinding?): add it to http.allowed_hosts if it is this gateway's name"
	if n, ok := g.warned.Allow(time.Now()); ok {
		g.log.Warn(msg, "addr", r.RemoteAddr, "host", r.Host, "suppressed", n)
	} else {
		g.log.Debug(msg, "addr", r.RemoteAddr, "host", r.Host)
	}
	writeError(w, http.StatusForbidden, "Host "+r.Host+" is not this gateway: add it to http.allowed_hosts")
}

// local reports whether hostport names this gateway.
func (g *hostGuard) local(hostport string) bool {
	if hostport == "" {
		return true // HTTP/1.0 without Host: not a browser
	}
	hp := strings.ToLower(hostport)
	if g.allowed[hp] {
		return true
	}
	host := hp
	if h, _, err := net.SplitHostPort(hp); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || g.allowed[host] {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	return g.machineAddr(ip)
}

func (g *hostGuard) machineAddr(ip net.IP) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.addrs == nil || time.Since(g.addrsAt) > localAddrsTTL {
		g.addrs = map[string]bool{}
		g.addrsAt = time.Now()
		if as, err := net.InterfaceAddrs(); err == nil {
			for _, a := range as {
				if n, ok := a.(*net.IPNet); ok {
					g.addrs[n.IP.String()] = true
				}
			}
		}
	}
	return g.addrs[ip.String()]
}
