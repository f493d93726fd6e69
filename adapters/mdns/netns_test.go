package mdns

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/mdns"

	"github.com/esp32gw/esp32gw/internal/netnstest"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// The namespace tests run real mDNS between two network namespaces joined by
// a veth pair, which they create and delete themselves: no packet of theirs
// reaches the host's network. Each side is this test binary run again inside
// its namespace (ip netns exec), with roleEnv choosing what TestNetnsRole
// does there.
const (
	roleEnv   = "ESP32GW_MDNS_ROLE"
	ifaceEnv  = "ESP32GW_MDNS_IFACE"
	subnet    = "10.231.17." // a /24 that exists only inside the test namespaces
	boardPort = 80
	gwPort    = 8080
)

// startChild runs TestNetnsRole as role inside ns, on interface iface.
func startChild(t *testing.T, ns, role, iface string) *netnstest.Child {
	t.Helper()
	return netnstest.StartChild(t, ns, "TestNetnsRole", 40*time.Second, roleEnv+"="+role, ifaceEnv+"="+iface)
}

// waitChild waits for the role's child to exit by itself, fails the test
// unless it passed, and logs its output.
func waitChild(t *testing.T, c *netnstest.Child, within time.Duration, role string) {
	t.Helper()
	c.Wait(t, within, role+" side")
	t.Logf("%s side:\n%s", role, c.Out.String())
}

// TestNetnsDiscovery: namespace A runs Run (advertising gateway gw-a, default
// interface choice) and a board advertiser; namespace B runs Run (gateway
// gw-b, interface named) and must report the board with its URL, and a plain
// browse from B for the gateway service must find gw-a with its TXT.
func TestNetnsDiscovery(t *testing.T) {
	netnstest.Require(t)
	a, b := netnstest.New(t, "esp32gw-mdns", "a"), netnstest.New(t, "esp32gw-mdns", "b")
	va, vb := netnstest.Link(t, a, b, "md", subnet+"1/24", subnet+"2/24")

	adv := startChild(t, a, "advertise", va)
	testutil.Eventually(t, 10*time.Second, "advertiser ready", func() bool {
		if strings.Contains(adv.Out.String(), "--- FAIL") {
			t.Fatalf("advertiser failed:\n%s", adv.Out.String())
		}
		return strings.Contains(adv.Out.String(), "ADVERTISING")
	})
	br := startChild(t, b, "browse", vb)
	waitChild(t, br, 25*time.Second, "browse")
	adv.Stdin.Close()
	waitChild(t, adv, 10*time.Second, "advertise")
}

// TestNetnsNoMulticast runs Run with the default interface choice in a
// namespace that has only loopback: it must warn once and return nil when its
// context ends.
func TestNetnsNoMulticast(t *testing.T) {
	netnstest.Require(t)
	c := startChild(t, netnstest.New(t, "esp32gw-mdns", "n"), "nomcast", "")
	waitChild(t, c, 15*time.Second, "nomcast")
}

// TestNetnsRole is one side of a namespace test; it runs only when a parent
// test started it with roleEnv set.
func TestNetnsRole(t *testing.T) {
	role := os.Getenv(roleEnv)
	if role == "" {
		t.Skip("runs only inside a namespace test")
	}
	testutil.CheckGoroutines(t)
	switch iface := os.Getenv(ifaceEnv); role {
	case "advertise":
		roleAdvertise(t, iface)
	case "browse":
		roleBrowse(t, iface)
	case "nomcast":
		checkQuietWithoutMulticast(t, nil)
	default:
		t.Fatalf("unknown role %q", role)
	}
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// stopRun ends Run's context and fails the test unless Run returns nil
// within 3 s.
func stopRun(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return within 3 s of ctx ending")
	}
}

// roleAdvertise runs Run as gateway gw-a and, with the library's server, a
// board, until its stdin closes.
func roleAdvertise(t *testing.T, iface string) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		t.Fatal(err)
	}
	zone, err := mdns.NewMDNSService("Kitchen Board", BoardService, "local.", "esp32-kitchen.local.", boardPort,
		[]net.IP{net.ParseIP(subnet + "1")}, []string{"id=kitchen", "path=/socket", "fw=1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	board, err := mdns.NewServer(&mdns.Config{Zone: zone, Iface: ifi})
	if err != nil {
		t.Fatal(err)
	}
	defer board.Shutdown()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logs testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(io.MultiWriter(&logs, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug}))
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{GatewayID: "gw-a", Port: gwPort, TLS: true, BrowseInterval: time.Second, Log: log}, nil)
	}()
	testutil.Eventually(t, 5*time.Second, "advertising", func() bool { return strings.Contains(logs.String(), "mdns: advertising") })
	if !strings.Contains(logs.String(), "interfaces=["+iface+"]") {
		t.Errorf("default interface choice: want %s:\n%s", iface, logs.String())
	}
	fmt.Println("ADVERTISING")
	stdinClosed := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	select {
	case <-stdinClosed:
	case <-ctx.Done():
		t.Error("not told to stop within 30 s")
	}
	stopRun(t, cancel, done)
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("warnings where multicast works:\n%s", logs.String())
	}
}

// roleBrowse runs Run as gateway gw-b on the named interface and checks it
// reports the board from the other namespace, then browses for gateways.
func roleBrowse(t *testing.T, iface string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	boards := make(chan Board, 16)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{GatewayID: "gw-b", Port: gwPort, Interfaces: []string{iface}, BrowseInterval: time.Second, Log: testLog(t)},
			func(b Board) {
				select {
				case boards <- b:
				default:
				}
			})
	}()
	want := Board{Instance: "Kitchen Board", ID: "kitchen", Path: "/socket", Host: "esp32-kitchen.local",
		Addr: subnet + "1:80", URL: "ws://" + subnet + "1:80/socket", Info: map[string]string{"fw": "1.2.3"}}
	select {
	case b := <-boards:
		if !reflect.DeepEqual(b, want) {
			t.Errorf("board\n got %+v\nwant %+v", b, want)
		}
	case <-time.After(10 * time.Second):
		t.Error("no board reported within 10 s")
	}

	// A plain browse for the gateway service, as a board would do.
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		t.Fatal(err)
	}
	var gw *mdns.ServiceEntry
	for deadline := time.Now().Add(8 * time.Second); gw == nil && time.Now().Before(deadline); {
		entries := make(chan *mdns.ServiceEntry, 16)
		err := mdns.QueryContext(ctx, &mdns.QueryParam{Service: GatewayService, Domain: "local", Timeout: time.Second,
			Interface: ifi, Entries: entries, DisableIPv6: true, Logger: slog.NewLogLogger(testLog(t).Handler(), slog.LevelDebug)})
		if err != nil {
			t.Fatalf("query %s: %v", GatewayService, err)
		}
		close(entries)
		for e := range entries {
			t.Logf("gateway answer: %s %s:%d %v", e.Name, e.AddrV4, e.Port, e.InfoFields)
			if e.Name == "gw-a."+GatewayService+".local." {
				gw = e
			}
		}
	}
	switch {
	case gw == nil:
		t.Error("gateway gw-a not found")
	case !gw.AddrV4.Equal(net.ParseIP(subnet+"1")) || gw.Port != gwPort:
		t.Errorf("gateway at %s:%d, want %s1:%d", gw.AddrV4, gw.Port, subnet, gwPort)
	case !slices.Equal(gw.InfoFields, []string{"id=gw-a", "path=/device/", "tls=1"}):
		t.Errorf("gateway TXT %q", gw.InfoFields)
	}

	stopRun(t, cancel, done)
}
