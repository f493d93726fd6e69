// Package mdns makes the gateway findable on its LAN and finds the boards on
// it, over multicast DNS (DESIGN.md, "Fleet: discovery, adoption, updates"):
// it advertises _esp32gw._tcp on the gateway's HTTP port with TXT id, path and
// tls, and browses _esp32gw-board._tcp, the service boards in WebSocket-server
// mode advertise, reporting each board it sees.
//
// The wire protocol is github.com/hashicorp/mdns (a responder for our record
// set and a querier); this package chooses interfaces and addresses, repeats
// the browse, turns answers into [Board] values, and keeps going without
// multicast.
//
// Run owns every goroutine it starts and returns when its context ends; cancel
// the context to stop it. The library's socket readers end as soon as Run
// closes their sockets on the way out.
//
// Wiring (cmd/esp32gw, when the config has mdns: {enabled: true}):
//
//	go func() {
//		defer wg.Done()
//		err := mdns.Run(ctx, mdns.Options{
//			GatewayID: cfg.GatewayID,
//			Port:      httpPort, // the port the HTTP listener is bound to
//			TLS:       tlsOn,
//			Log:       log,
//		}, func(b mdns.Board) {
//			// not yet configured (no device with this URL): list it in
//			// /api/pending as {"id":b.ID,"transport":"ws-dial","url":b.URL,
//			// "addr":b.Addr,"info":b.Info}; adopting it creates a ws-dial
//			// device with b.URL. Must not block: the browse waits for it.
//			pending.Discovered(b)
//		})
//		if err != nil { // only for invalid Options
//			log.Error("mdns", "err", err)
//		}
//	}()
package mdns

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/mdns"
)

// Service types (RFC 6763 "<Service>._tcp"), without the domain.
const (
	// GatewayService is what the gateway advertises; boards look for it to
	// find the gateway without a configured address.
	GatewayService = "_esp32gw._tcp"
	// BoardService is what boards in WebSocket-server mode advertise.
	BoardService = "_esp32gw-board._tcp"
	// GatewayPath is the TXT path the gateway advertises: boards dial
	// ws://GATEWAY/device/ID.
	GatewayPath = "/device/"
	// DefaultBoardPath is a board's WebSocket path when its TXT has no path.
	DefaultBoardPath = "/ws"
	domain           = "local."
)

// Timing.
const (
	// DefaultBrowseInterval is how often Run asks for boards (and checks that
	// the interfaces and addresses it advertises are still the host's): often
	// enough that a board switched on shows up within a quarter of a minute,
	// rarely enough to be no load on a LAN of small devices. The first browse
	// runs at start.
	DefaultBrowseInterval = 15 * time.Second
	// queryWait is how long one browse listens for answers on an interface.
	// Responders answer within 20–120 ms (RFC 6762 §6), an ESP32 in Wi-Fi
	// power save a few hundred ms later; a board that misses it answers the
	// next browse. It also bounds how long Run takes to return once ctx ends:
	// the library's query ends only at its timeout.
	queryWait = time.Second
	// entryBuffer holds answers between the library's reader and Run's loop.
	// The library drops an answer when the buffer is full (it never blocks),
	// and Run drains it as it fills, so it only needs to cover a burst.
	entryBuffer = 64
)

// Options configure Run.
type Options struct {
	// GatewayID is the advertised instance name and TXT id
	// (gateway.Config.GatewayID: [a-z0-9_-]+).
	GatewayID string
	// Port is the gateway's HTTP port, the one boards dial.
	Port int
	// TLS says whether that port speaks HTTPS (TXT tls=1) or HTTP (tls=0).
	TLS bool
	// Interfaces names the network interfaces to advertise and browse on.
	// Empty: the interface the host sends multicast through (the one its
	// route to 224.0.0.251 uses, normally the default route's). With more
	// than one, a query that reaches several of them is answered once per
	// interface, and every answer lists the addresses of all of them.
	Interfaces []string
	// Addrs, when set, are the only IPv4 addresses the A records carry
	// (the gateway listens on one address of Interfaces, not on all); an
	// interface holding none of them cannot be advertised on.
	Addrs []net.IP
	// NoAdvertise browses for boards without advertising the gateway (its
	// HTTP listener is bound to loopback: no board could reach it).
	NoAdvertise bool
	// BrowseInterval is the time between browses; 0 means
	// DefaultBrowseInterval.
	BrowseInterval time.Duration
	// Log receives lifecycle (Info), unavailable multicast (Warn, once per
	// change) and the library's own messages (Debug). Nil discards.
	Log *slog.Logger
}

// Board is one board seen advertising BoardService.
type Board struct {
	Instance string            // DNS-SD instance name, unescaped ("Kitchen Board")
	ID       string            // TXT id, else Instance
	Path     string            // TXT path, else DefaultBoardPath; always starts with "/"
	Host     string            // SRV target without the final dot ("esp32-kitchen.local")
	Addr     string            // IP:port to dial ("192.168.1.40:80", "[fe80::1%eth0]:80")
	URL      string            // "ws://" + Addr + Path
	Info     map[string]string // every other TXT key (lower case) and its value
}

// Run advertises the gateway and browses for boards until ctx ends, calling
// found for each board that answers a browse (once per board and browse, so
// a board still there is reported again every BrowseInterval; the library
// does not report a board leaving). found is called from Run's goroutine, one
// call at a time, and must not block: the browse waits for it.
//
// Without usable multicast (no interface up with multicast and an IPv4
// address, the port or group cannot be bound) Run logs a warning once, then
// tries again every BrowseInterval without logging more until it works, which
// it logs at Info. It returns an error only for invalid Options, at once;
// otherwise nil once ctx ends (within a second: a browse in progress runs to
// its end) and its sockets are closed.
func Run(ctx context.Context, o Options, found func(Board)) error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.BrowseInterval <= 0 {
		o.BrowseInterval = DefaultBrowseInterval
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if found == nil {
		found = func(Board) {}
	}
	r := &runner{o: o, found: found, libLog: slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug)}
	defer r.stopAdvertising()
	tick := time.NewTicker(o.BrowseInterval)
	defer tick.Stop()
	for {
		if r.refresh() {
			r.browse(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (o Options) validate() error {
	var errs []error
	if o.GatewayID == "" || len(o.GatewayID) > 63 || strings.ContainsAny(o.GatewayID, ".\\") {
		errs = append(errs, fmt.Errorf("mdns: gateway id %q: want 1 to 63 bytes without '.' or '\\'", o.GatewayID))
	}
	if o.Port < 1 || o.Port > 65535 {
		errs = append(errs, fmt.Errorf("mdns: port %d: want 1 to 65535", o.Port))
	}
	return errors.Join(errs...)
}

// runner is Run's state; only Run's goroutine uses it.
type runner struct {
	o      Options
	found  func(Board)
	libLog *log.Logger

	plan    plan            // what the servers advertise on; zero when none run
	servers []*mdns.Server  // one per plan interface
	down    bool            // multicast unavailable: warned, retrying quietly
	seen    map[string]bool // boards reported in the current browse
}

// plan is where to advertise and browse: the interfaces and the IPv4
// addresses the A records carry.
type plan struct {
	ifaces []net.Interface
	ips    []net.IP
}

func (p plan) String() string {
	var b strings.Builder
	for _, ifi := range p.ifaces {
		b.WriteString(ifi.Name + "#" + strconv.Itoa(ifi.Index) + " ")
	}
	for _, ip := range p.ips {
		b.WriteString(ip.String() + " ")
	}
	return b.String()
}

func (p plan) names() []string {
	var n []string
	for _, ifi := range p.ifaces {
		n = append(n, ifi.Name)
	}
	return n
}

// refresh (re)starts the advertisement when the interfaces or addresses
// changed (DHCP, Wi-Fi coming up after the gateway), and reports whether
// multicast is usable now.
func (r *runner) refresh() bool {
	p, err := findPlan(r.o.Interfaces)
	if err == nil && len(r.o.Addrs) > 0 {
		p.ips = slices.DeleteFunc(p.ips, func(ip net.IP) bool { return !slices.ContainsFunc(r.o.Addrs, ip.Equal) })
		if len(p.ips) == 0 {
			err = fmt.Errorf("mdns: interfaces %v do not hold %v, the address to advertise", p.names(), r.o.Addrs)
		}
	}
	if r.o.NoAdvertise {
		// Browse only: the plan names the interfaces, no server runs.
		if err != nil {
			r.plan = plan{}
			r.unavailable(err)
			return false
		}
		if r.down || p.String() != r.plan.String() {
			r.o.Log.Info("mdns: browsing for boards, not advertising", "service", BoardService, "interfaces", p.names())
		}
		r.plan, r.down = p, false
		return true
	}
	if err == nil && r.servers != nil && p.String() == r.plan.String() {
		return true
	}
	r.stopAdvertising()
	if err == nil {
		err = r.startAdvertising(p)
	}
	if err != nil {
		r.unavailable(err)
		return false
	}
	r.down = false
	r.o.Log.Info("mdns: advertising", "service", GatewayService, "instance", r.o.GatewayID,
		"port", r.o.Port, "interfaces", p.names(), "addrs", p.ips)
	return true
}

// unavailable logs err as a warning the first time multicast stops working
// and at Debug while it stays so: the gateway runs on without mDNS, and Run
// retries every BrowseInterval.
func (r *runner) unavailable(err error) {
	if r.down {
		r.o.Log.Debug("mdns: still unavailable", "err", err)
		return
	}
	r.down = true
	r.o.Log.Warn("mdns: multicast unavailable; not advertising or browsing, retrying quietly",
		"err", err, "retry", r.o.BrowseInterval)
}

func (r *runner) startAdvertising(p plan) error {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "esp32gw-" + r.o.GatewayID
	}
	host, _, _ = strings.Cut(host, ".")
	tls := "0"
	if r.o.TLS {
		tls = "1"
	}
	zone, err := mdns.NewMDNSService(r.o.GatewayID, GatewayService, domain, host+"."+domain, r.o.Port, p.ips,
		[]string{"id=" + r.o.GatewayID, "path=" + GatewayPath, "tls=" + tls})
	if err != nil {
		return fmt.Errorf("mdns: %w", err)
	}
	for i := range p.ifaces {
		s, err := mdns.NewServer(&mdns.Config{Zone: zone, Iface: &p.ifaces[i], Logger: r.libLog})
		if err != nil {
			r.stopAdvertising()
			return fmt.Errorf("mdns: listen on %s: %w", p.ifaces[i].Name, err)
		}
		r.servers = append(r.servers, s)
	}
	r.plan = p
	return nil
}

func (r *runner) stopAdvertising() {
	for _, s := range r.servers {
		s.Shutdown() // never fails; closes the sockets, which ends its readers
	}
	r.servers, r.plan = nil, plan{}
}

// findPlan picks the interfaces: the named ones, or the one the kernel sends
// multicast through. Each must be up, multicast-capable and have an IPv4
// address. Connecting a UDP socket sends nothing; it only asks the routing
// table.
func findPlan(names []string) (plan, error) {
	var p plan
	if len(names) == 0 {
		c, err := net.Dial("udp4", net.JoinHostPort("224.0.0.251", "5353"))
		if err != nil {
			return p, fmt.Errorf("mdns: no route for multicast: %w", err)
		}
		local := c.LocalAddr().(*net.UDPAddr).IP
		c.Close()
		ifis, err := net.Interfaces()
		if err != nil {
			return p, fmt.Errorf("mdns: list interfaces: %w", err)
		}
		for _, ifi := range ifis {
			if slices.ContainsFunc(ipv4s(ifi), local.Equal) {
				names = []string{ifi.Name}
				break
			}
		}
		if len(names) == 0 {
			return p, fmt.Errorf("mdns: no interface has %s, the multicast source address", local)
		}
	}
	for _, name := range names {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return p, fmt.Errorf("mdns: interface %s: %w", name, err)
		}
		switch ips := ipv4s(*ifi); {
		case ifi.Flags&net.FlagUp == 0:
			return p, fmt.Errorf("mdns: interface %s is down", name)
		case ifi.Flags&net.FlagMulticast == 0:
			return p, fmt.Errorf("mdns: interface %s has no multicast", name)
		case len(ips) == 0:
			return p, fmt.Errorf("mdns: interface %s has no IPv4 address", name)
		default:
			p.ifaces = append(p.ifaces, *ifi)
			p.ips = append(p.ips, ips...)
		}
	}
	return p, nil
}

func ipv4s(ifi net.Interface) []net.IP {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil
	}
	var ips []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			ips = append(ips, n.IP.To4())
		}
	}
	return ips
}

// browse asks each plan interface once for boards and reports the answers.
func (r *runner) browse(ctx context.Context) {
	r.seen = map[string]bool{}
	var errs []error
	for i := range r.plan.ifaces {
		if ctx.Err() != nil {
			return
		}
		if err := r.query(ctx, &r.plan.ifaces[i]); err != nil {
			errs = append(errs, fmt.Errorf("mdns: browse on %s: %w", r.plan.ifaces[i].Name, err))
		}
	}
	if len(errs) == len(r.plan.ifaces) && ctx.Err() == nil {
		// Advertising works but querying cannot bind: the same state to the
		// operator. Stop advertising so the next round starts afresh.
		r.stopAdvertising()
		r.unavailable(errors.Join(errs...))
	}
}

// query runs one library query on ifi, reporting boards while it listens;
// it returns once the query's own goroutine has.
func (r *runner) query(ctx context.Context, ifi *net.Interface) error {
	entries := make(chan *mdns.ServiceEntry, entryBuffer)
	done := make(chan error, 1)
	go func() {
		done <- mdns.QueryContext(ctx, &mdns.QueryParam{
			Service: BoardService, Domain: domain, Timeout: queryWait, Interface: ifi,
			Entries: entries, DisableIPv6: true, Logger: r.libLog,
		})
	}()
	for {
		select {
		case e := <-entries:
			r.report(e)
		case err := <-done:
			for {
				select {
				case e := <-entries:
					r.report(e)
				default:
					return err
				}
			}
		}
	}
}

func (r *runner) report(e *mdns.ServiceEntry) {
	b, ok := boardFrom(e)
	if !ok {
		return
	}
	if k := b.Instance + " " + b.Addr; !r.seen[k] {
		r.seen[k] = true
		r.o.Log.Debug("mdns: board", "device", b.ID, "addr", b.Addr, "url", b.URL)
		r.found(b)
	}
}

// boardFrom turns a library answer into a Board. The library's listener
// hears every mDNS answer on the link, so answers for other services are
// dropped here, as are answers without an address.
func boardFrom(e *mdns.ServiceEntry) (Board, bool) {
	suffix := "." + BoardService + "." + domain
	if !strings.HasSuffix(strings.ToLower(e.Name), suffix) || e.Port == 0 {
		return Board{}, false
	}
	var ip string
	switch {
	case e.AddrV4 != nil:
		ip = e.AddrV4.String()
	case e.AddrV6IPAddr != nil:
		ip = e.AddrV6IPAddr.String()
	default:
		return Board{}, false
	}
	b := Board{
		Instance: unescape(e.Name[:len(e.Name)-len(suffix)]),
		Path:     DefaultBoardPath,
		Host:     strings.TrimSuffix(e.Host, "."),
		Addr:     net.JoinHostPort(ip, strconv.Itoa(e.Port)),
		Info:     map[string]string{},
	}
	b.ID = b.Instance
	for _, f := range e.InfoFields {
		k, v, _ := strings.Cut(f, "=")
		k = strings.ToLower(k)
		switch {
		case k == "":
		case k == "id" && v != "":
			b.ID = v
		case k == "path" && v != "":
			if !strings.HasPrefix(v, "/") {
				v = "/" + v
			}
			b.Path = v
		case k != "id" && k != "path":
			if _, dup := b.Info[k]; !dup { // RFC 6763 §6.4: the first wins
				b.Info[k] = v
			}
		}
	}
	b.URL = (&url.URL{Scheme: "ws", Host: b.Addr, Path: b.Path}).String()
	return b, true
}

// unescape undoes DNS presentation escapes in a label ("Kitchen\ Board",
// "A\.B", "caf\195\169").
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b = append(b, s[i])
			continue
		}
		if i+3 < len(s) && isDigits(s[i+1:i+4]) {
			if n, err := strconv.Atoi(s[i+1 : i+4]); err == nil && n < 256 {
				b = append(b, byte(n))
				i += 3
				continue
			}
		}
		b = append(b, s[i+1])
		i++
	}
	return string(b)
}

func isDigits(s string) bool {
	return strings.Trim(s, "0123456789") == ""
}
