package mdns

import (
	"context"
	"log/slog"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/mdns"

	"github.com/esp32gw/esp32gw/internal/testutil"
)

// TestMain fails the package when a goroutine any of its tests started is
// still running after the last one.
func TestMain(m *testing.M) { os.Exit(testutil.CheckMain(m)) }

func TestBoardFrom(t *testing.T) {
	v4 := net.ParseIP("192.0.2.40").To4()
	tests := []struct {
		name string
		e    mdns.ServiceEntry
		want Board
		ok   bool
	}{
		{
			name: "full",
			e: mdns.ServiceEntry{Name: `Kitchen\ Board._esp32gw-board._tcp.local.`, Host: "esp32-kitchen.local.",
				AddrV4: v4, Port: 80, InfoFields: []string{"id=kitchen", "path=/socket", "fw=1.2.3", "FW=9", "Chip=esp32s3", "flag"}},
			want: Board{Instance: "Kitchen Board", ID: "kitchen", Path: "/socket", Host: "esp32-kitchen.local",
				Addr: "192.0.2.40:80", URL: "ws://192.0.2.40:80/socket",
				Info: map[string]string{"fw": "1.2.3", "chip": "esp32s3", "flag": ""}},
			ok: true,
		},
		{
			name: "defaults: id from instance, path /ws",
			e:    mdns.ServiceEntry{Name: `esp32-a1b2._esp32gw-board._tcp.local.`, Host: "esp32-a1b2.local.", AddrV4: v4, Port: 8080},
			want: Board{Instance: "esp32-a1b2", ID: "esp32-a1b2", Path: "/ws", Host: "esp32-a1b2.local",
				Addr: "192.0.2.40:8080", URL: "ws://192.0.2.40:8080/ws", Info: map[string]string{}},
			ok: true,
		},
		{
			name: "empty id and path fall back; path without slash gets one; escapes",
			e: mdns.ServiceEntry{Name: `caf\195\169\.2._ESP32GW-Board._tcp.local.`, Host: "h.local.", AddrV4: v4, Port: 81,
				InfoFields: []string{"id=", "path=ws", "=x"}},
			want: Board{Instance: "café.2", ID: "café.2", Path: "/ws", Host: "h.local",
				Addr: "192.0.2.40:81", URL: "ws://192.0.2.40:81/ws", Info: map[string]string{}},
			ok: true,
		},
		{
			name: "IPv6 link-local only",
			e: mdns.ServiceEntry{Name: `b._esp32gw-board._tcp.local.`, Host: "b.local.", Port: 80,
				AddrV6IPAddr: &net.IPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0"}},
			want: Board{Instance: "b", ID: "b", Path: "/ws", Host: "b.local",
				Addr: "[fe80::1%eth0]:80", URL: "ws://[fe80::1%25eth0]:80/ws", Info: map[string]string{}},
			ok: true,
		},
		{name: "another service", e: mdns.ServiceEntry{Name: `gw._esp32gw._tcp.local.`, AddrV4: v4, Port: 80}},
		{name: "a service whose name ends like ours", e: mdns.ServiceEntry{Name: `x._my_esp32gw-board._tcp.local.`, AddrV4: v4, Port: 80}},
		{name: "no address", e: mdns.ServiceEntry{Name: `b._esp32gw-board._tcp.local.`, Port: 80}},
		{name: "no port", e: mdns.ServiceEntry{Name: `b._esp32gw-board._tcp.local.`, AddrV4: v4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := boardFrom(&tt.e)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v (board %+v)", ok, tt.ok, got)
			}
			if ok && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`plain`: "plain", `a\ b`: "a b", `a\.b`: "a.b", `a\\b`: `a\b`, `\065x`: "Ax", `\999`: "999", `\12`: "12", `end\`: `end\`,
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRunRejectsInvalidOptions(t *testing.T) {
	for _, o := range []Options{
		{Port: 80},
		{GatewayID: "a.b", Port: 80},
		{GatewayID: strings.Repeat("g", 64), Port: 80},
		{GatewayID: "gw", Port: 0},
		{GatewayID: "gw", Port: 70000},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // an error must come before any waiting
		if err := Run(ctx, o, nil); err == nil {
			t.Errorf("Run(%+v) = nil, want an error", o)
		}
	}
}

// TestRunWithoutMulticastInterface runs Run on interfaces that cannot carry
// multicast (loopback has no MULTICAST flag; the other does not exist), so it
// opens no socket and sends nothing: it must warn once, retry quietly without
// spinning, and return nil when ctx ends. The namespace test
// TestNetnsNoMulticast covers the default interface choice.
func TestRunWithoutMulticastInterface(t *testing.T) {
	for _, ifaces := range [][]string{{"lo"}, {"esp32gw-none0"}} {
		t.Run(ifaces[0], func(t *testing.T) {
			testutil.CheckGoroutines(t)
			checkQuietWithoutMulticast(t, ifaces)
		})
	}
}

// checkQuietWithoutMulticast runs Run for a while where multicast cannot
// work and checks it warns once, retries at its interval and ends cleanly.
func checkQuietWithoutMulticast(t *testing.T, ifaces []string) {
	t.Helper()
	var logs testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	const interval, runFor = 50 * time.Millisecond, 600 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), runFor)
	defer cancel()
	start := time.Now()
	err := Run(ctx, Options{GatewayID: "gw", Port: 8080, Interfaces: ifaces, BrowseInterval: interval, Log: log},
		func(b Board) { t.Errorf("found %+v without multicast", b) })
	if err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if d := time.Since(start); d > runFor+time.Second {
		t.Errorf("Run returned %v after it started, want about %v", d, runFor)
	}
	out := logs.String()
	if n := strings.Count(out, "level=WARN"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "mdns: multicast unavailable") {
		t.Errorf("no warning saying why:\n%s", out)
	}
	// One attempt at start and one per tick: no spinning.
	if n := strings.Count(out, "still unavailable"); n < 2 || n > int(runFor/interval)+1 {
		t.Errorf("%d retries in %v at one per %v:\n%s", n, runFor, interval, out)
	}
	if strings.Contains(out, "level=ERROR") || strings.Contains(out, "level=INFO") {
		t.Errorf("unexpected log:\n%s", out)
	}
}

// multicastIface is an interface of this host that is up, multicast-capable
// and has an IPv4 address, with that address; the test is skipped without one.
func multicastIface(t *testing.T) (string, net.IP) {
	t.Helper()
	ifis, _ := net.Interfaces()
	for _, ifi := range ifis {
		if ips := ipv4s(ifi); ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 && len(ips) > 0 {
			return ifi.Name, ips[0]
		}
	}
	t.Skip("no interface with multicast and an IPv4 address")
	return "", nil
}

// Addrs restricts the advertised addresses to the one the gateway listens
// on; NoAdvertise plans the browse without starting a responder.
func TestRefreshAddrsAndNoAdvertise(t *testing.T) {
	name, addr := multicastIface(t)
	var logs testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	r := &runner{o: Options{GatewayID: "gw", Port: 8080, Interfaces: []string{name}, NoAdvertise: true, Log: log}}
	if !r.refresh() || r.servers != nil || len(r.plan.ifaces) != 1 || r.plan.ifaces[0].Name != name {
		t.Fatalf("NoAdvertise: refresh planned %v with %d servers", r.plan, len(r.servers))
	}
	r.refresh()
	if n := strings.Count(logs.String(), "not advertising"); n != 1 {
		t.Errorf("%d browse-only lines, want 1:\n%s", n, logs.String())
	}

	r = &runner{o: Options{GatewayID: "gw", Port: 8080, Interfaces: []string{name}, Addrs: []net.IP{addr}, NoAdvertise: true, Log: log}}
	if !r.refresh() || len(r.plan.ips) != 1 || !r.plan.ips[0].Equal(addr) {
		t.Errorf("Addrs %v: planned %v", addr, r.plan)
	}
	r = &runner{o: Options{GatewayID: "gw", Port: 8080, Interfaces: []string{name}, Addrs: []net.IP{net.IPv4(192, 0, 2, 254)}, NoAdvertise: true, Log: log}}
	if r.refresh() {
		t.Errorf("an address the interface does not hold: planned %v", r.plan)
	}
}
