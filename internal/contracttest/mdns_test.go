package contracttest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/mdns"
	"golang.org/x/sys/unix"

	"github.com/esp32gw/esp32gw/internal/netnstest"
	"github.com/esp32gw/esp32gw/internal/testgw"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// The mDNS tests run the built binary with mdns: {enabled: true} inside
// network namespaces they create and delete themselves (DESIGN.md, "Fleet:
// discovery, adoption, updates"): namespace A holds the gateway, namespace B
// a board in WebSocket-server mode and its mDNS advertisement, joined by a
// veth pair on a subnet that exists only there. No packet of theirs reaches
// the host's network. What runs in B besides the native board is this test
// binary run again there (TestMDNSRole). The test talks to the gateway's API
// through an HTTP client whose connections are made inside A (nsClient).
const (
	mdnsRoleEnv  = "ESP32GW_CT_MDNS_ROLE"
	mdnsIfEnv    = "ESP32GW_CT_MDNS_IFACE"
	mdnsServeEnv = "ESP32GW_CT_MDNS_SERVE" // "1": the role serves the board's /ws itself
	mdnsGwEnv    = "ESP32GW_CT_MDNS_GATEWAY"

	mdnsSubnet    = "10.231.18." // only inside the test namespaces
	mdnsGatewayIP = mdnsSubnet + "1"
	mdnsBoardIP   = mdnsSubnet + "2"
	mdnsGwPort    = 8080 // fixed ports: the namespaces are the test's own
	mdnsBoardPort = 8081
)

// nsClient is an HTTP client whose connections are made inside the network
// namespace ns: each dial runs on an OS thread of its own that enters ns and
// is thrown away afterwards (the goroutine ends locked to it), so no thread
// of this process stays in the namespace. A socket keeps the namespace it
// was made in.
func nsClient(ns string) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		res := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
			f, err := os.Open("/run/netns/" + ns)
			if err != nil {
				res <- result{nil, err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				res <- result{nil, fmt.Errorf("setns %s: %w", ns, err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			res <- result{c, err}
		}()
		r := <-res
		return r.c, r.err
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial}}
}

// nativeBoard builds firmware/host's native board (make host, a few seconds)
// into the test's temp dir and returns its path, or "" when g++ or make is
// missing; a failed build fails the test.
func nativeBoard(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"g++", "make"} {
		if _, err := exec.LookPath(p); err != nil {
			return ""
		}
	}
	dir := t.TempDir()
	cmd := exec.Command("make", "-j2", "--no-print-directory", "BUILD="+dir, "host")
	cmd.Dir = filepath.Join("..", "..", "firmware")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make host: %v\n%s", err, out)
	}
	return filepath.Join(dir, "native_board")
}

// startNativeBoard runs the native board in ws-server mode inside ns,
// listening on addr; it returns the URL it prints.
func startNativeBoard(t *testing.T, bin, ns, addr string) string {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, bin, "--mode", "ws-server", "--listen", addr,
		"--id", "porch", "--interval-ms", "100", "--duration-s", "120")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("native board stderr:\n%s", stderr.String())
		}
	})
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(l)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case l := <-line:
		if l == "" {
			t.Fatalf("native board printed no URL; stderr:\n%s", stderr.String())
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatalf("native board printed no URL within 10 s; stderr:\n%s", stderr.String())
	}
	return ""
}

// gatewayAnswer is what the B side found browsing for the gateway.
type gatewayAnswer struct {
	Name string   `json:"name"`
	Addr string   `json:"addr"`
	Port int      `json:"port"`
	TXT  []string `json:"txt"`
}

var gatewayLineRe = regexp.MustCompile(`(?m)^GATEWAY (\{.*\})$`)

// doorSeenRe matches the gateway's debug line for a board its browse found.
var doorSeenRe = regexp.MustCompile(`msg="mdns: board".* device=esp32-door `)

// TestMDNSDiscoverAdopt: the gateway (namespace A) advertises _esp32gw._tcp
// with its id, path and tls, found by a browse from B; a board in
// WebSocket-server mode in B advertising _esp32gw-board._tcp is listed in
// /api/pending as a ws-dial board with its URL, and adopting it creates a
// ws-dial device that the gateway dials: it goes online and its readings
// arrive. A second board advertised from B under another TXT id but at the
// URL of a configured device ("ws://IP/ws", port 80 implied) is not pending.
func TestMDNSDiscoverAdopt(t *testing.T) {
	netnstest.Require(t)
	// Not parallel: it loads both cores (boards, downloads, a browser or
	// namespaces), and the timed contract tests beside it would measure the
	// machine, not the gateway.
	testgw.Binary(t) // build first: the clock below is the test's own
	nb := nativeBoard(t)

	a, b := netnstest.New(t, "esp32gw-ct", "mdns-a"), netnstest.New(t, "esp32gw-ct", "mdns-b")
	_, vb := netnstest.Link(t, a, b, "cm", mdnsGatewayIP+"/24", mdnsBoardIP+"/24")

	const gwID = "gw-mdns"
	boardAddr := net.JoinHostPort(mdnsBoardIP, strconv.Itoa(mdnsBoardPort))
	boardURL := "ws://" + boardAddr + "/ws"
	serve := "1"
	if nb != "" {
		serve = "0"
		if got := startNativeBoard(t, nb, b, boardAddr); got != boardURL {
			t.Fatalf("native board serves %q, want %q", got, boardURL)
		}
		t.Logf("board: the native board (firmware/host) in ws-server mode at %s", boardURL)
	} else {
		t.Logf("board: no g++ or make, so a Go WebSocket server in namespace B at %s", boardURL)
	}
	side := netnstest.StartChild(t, b, "TestMDNSRole", 60*time.Second, mdnsRoleEnv+"=board", mdnsIfEnv+"="+vb, mdnsServeEnv+"="+serve, mdnsGwEnv+"="+gwID)
	testutil.Eventually(t, 10*time.Second, "the board's advertisement in namespace B", func() bool {
		if strings.Contains(side.Out.String(), "--- FAIL") {
			t.Fatalf("namespace B side failed:\n%s", side.Out.String())
		}
		return strings.Contains(side.Out.String(), "ADVERTISING")
	})

	start := time.Now()
	g := testgw.StartWrapped(t, fmt.Sprintf(`gateway_id: %s
state_dir: data
mdns: {enabled: true}
http:
  listen: "%s:%d"
devices:
  - id: door
    transport: ws-dial
    url: "ws://%s/ws"
`, gwID, mdnsGatewayIP, mdnsGwPort, mdnsBoardIP), []string{"ip", "netns", "exec", a})
	g.Client = nsClient(a)
	defer func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.Logs())
			t.Logf("namespace B side:\n%s", side.Out.String())
		}
	}()

	// The board is pending, as found over mDNS.
	var p msg
	testutil.Eventually(t, 20*time.Second, "porch in /api/pending", func() bool {
		p = pendingEntry(pendingList(t, g), "porch")
		return p != nil
	})
	t.Logf("porch pending after %v: %v", time.Since(start).Round(time.Millisecond), p)
	info, _ := p["info"].(map[string]any)
	if str(p, "transport") != "ws-dial" || str(p, "url") != boardURL || str(p, "addr") != boardAddr || info["fw"] != "0.1.0" {
		t.Errorf("pending porch: %v, want transport ws-dial, url %s, addr %s, info.fw 0.1.0", p, boardURL, boardAddr)
	}
	if _, ok := info["id"]; ok {
		t.Errorf("pending porch: info repeats the TXT id: %v", info)
	}

	// Namespace B found the gateway with its TXT.
	var gw gatewayAnswer
	testutil.Eventually(t, 20*time.Second, "namespace B to find the gateway", func() bool {
		m := gatewayLineRe.FindStringSubmatch(side.Out.String())
		if m == nil {
			return false
		}
		if err := json.Unmarshal([]byte(m[1]), &gw); err != nil {
			t.Fatalf("GATEWAY line: %v: %s", err, m[1])
		}
		return true
	})
	if want := gwID + "._esp32gw._tcp.local."; gw.Name != want {
		t.Errorf("gateway instance %q, want %q", gw.Name, want)
	}
	if gw.Addr != mdnsGatewayIP || gw.Port != mdnsGwPort {
		t.Errorf("gateway advertised at %s:%d, want %s:%d", gw.Addr, gw.Port, mdnsGatewayIP, mdnsGwPort)
	}
	if want := []string{"id=" + gwID, "path=/device/", "tls=0"}; !slices.Equal(gw.TXT, want) {
		t.Errorf("gateway TXT %q, want %q", gw.TXT, want)
	}

	// Adopt it: a ws-dial device with the board's URL, which the gateway
	// dials.
	code, body := g.Do("POST", "/api/pending/porch/adopt", nil)
	if code != 200 {
		t.Fatalf("adopt porch: %d %s", code, body)
	}
	var dev msg
	if err := json.Unmarshal(body, &dev); err != nil {
		t.Fatalf("adopt answer: %v %s", err, body)
	}
	if str(dev, "id") != "porch" || str(dev, "transport") != "ws-dial" {
		t.Errorf("adopt answer: %s, want the device porch with transport ws-dial", body)
	}
	// The door board is the configured device door (same URL, port 80
	// implied), so it is not pending although its TXT id differs.
	testutil.Eventually(t, 5*time.Second, "the gateway to see the door board", func() bool {
		return doorSeenRe.MatchString(g.Logs())
	})
	if l := pendingList(t, g); pendingEntry(l, "porch") != nil || pendingEntry(l, "esp32-door") != nil {
		t.Errorf("pending after adopting porch: %v, want neither porch nor esp32-door (configured as door)", l)
	}
	devYAML, err := os.ReadFile(filepath.Join(g.Dir, "data", "devices.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"id: porch", "transport: ws-dial", boardURL} {
		if !strings.Contains(string(devYAML), want) {
			t.Errorf("devices.yaml lacks %q:\n%s", want, devYAML)
		}
	}
	var d msg
	testutil.Eventually(t, 10*time.Second, "porch online with its readings", func() bool {
		d = device(t, g, "porch")
		labels, _ := d["labels"].(map[string]any)
		on, _ := d["online"].(bool)
		return on && labels["count"] != nil
	})
	first, _ := d["labels"].(map[string]any)["count"].(map[string]any)
	testutil.Eventually(t, 5*time.Second, "porch's count to move on", func() bool {
		l, _ := device(t, g, "porch")["labels"].(map[string]any)["count"].(map[string]any)
		return fmt.Sprint(l["value"]) != fmt.Sprint(first["value"])
	})
	if str(d, "transport") != "ws-dial" {
		t.Errorf("GET /api/devices/porch: %v, want transport ws-dial", d)
	}
	t.Logf("porch adopted and online %v after the gateway started", time.Since(start).Round(time.Millisecond))

	for _, l := range strings.Split(g.Logs(), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "mdns") {
			t.Errorf("mDNS warning where multicast works: %s", l)
		}
	}
	if err, took := g.Stop(); err != nil {
		t.Errorf("SIGINT: %v after %v", err, took)
	}
	side.Stdin.Close()
	side.Wait(t, 10*time.Second, "namespace B side")
}

// TestMDNSNoMulticast: with mdns enabled in a namespace that has only
// loopback (no multicast), the gateway logs one warning about it and keeps
// serving, also past its next try (15 s later), which stays quiet.
func TestMDNSNoMulticast(t *testing.T) {
	netnstest.Require(t)
	// Not parallel: it loads both cores (boards, downloads, a browser or
	// namespaces), and the timed contract tests beside it would measure the
	// machine, not the gateway.
	testgw.Binary(t)
	ns := netnstest.New(t, "esp32gw-ct", "mdns-n")
	g := testgw.StartWrapped(t, `gateway_id: gw-nomcast
state_dir: data
mdns: {enabled: true}
http:
  listen: "127.0.0.1:8080"
devices: []
`, []string{"ip", "netns", "exec", ns})
	g.Client = nsClient(ns)
	warnings := func() []string {
		var w []string
		for _, l := range strings.Split(g.Logs(), "\n") {
			if strings.Contains(l, "level=WARN") {
				w = append(w, l)
			}
		}
		return w
	}
	testutil.Eventually(t, 10*time.Second, "the multicast warning", func() bool { return len(warnings()) > 0 })
	healthy := func() {
		t.Helper()
		if code, body := g.Get("/healthz"); code != 200 {
			t.Fatalf("GET /healthz: %d %s", code, body)
		}
	}
	healthy()
	time.Sleep(mdnsRetry + time.Second) // past the next try
	healthy()
	if w := warnings(); len(w) != 1 || !strings.Contains(w[0], "mdns: multicast unavailable") {
		t.Errorf("warnings: want exactly one, about multicast:\n%s\nlog:\n%s", strings.Join(w, "\n"), g.Logs())
	}
	if err, took := g.Stop(); err != nil {
		t.Errorf("SIGINT: %v after %v\n%s", err, took, g.Logs())
	}
}

// mdnsRetry is the gateway's time between browses (mdns.DefaultBrowseInterval).
const mdnsRetry = 15 * time.Second

// TestMDNSRole is the namespace B side of TestMDNSDiscoverAdopt; it runs
// only when that test started it with mdnsRoleEnv set.
func TestMDNSRole(t *testing.T) {
	if os.Getenv(mdnsRoleEnv) != "board" {
		t.Skip("runs only inside a namespace test")
	}
	iface, err := net.InterfaceByName(os.Getenv(mdnsIfEnv))
	if err != nil {
		t.Fatal(err)
	}
	stdinClosed := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	libLog := log.New(t.Output(), "mdns: ", log.Lmicroseconds) // the library's messages

	if os.Getenv(mdnsServeEnv) == "1" {
		serveGoBoard(t, net.JoinHostPort(mdnsBoardIP, strconv.Itoa(mdnsBoardPort)))
	}

	// The board's advertisement, as the wsserver sketch makes it (plus fw,
	// which the pending entry shows as info).
	zone, err := mdns.NewMDNSService("Porch Board", "_esp32gw-board._tcp", "local.", "esp32-porch.local.", mdnsBoardPort,
		[]net.IP{net.ParseIP(mdnsBoardIP)}, []string{"id=porch", "path=/ws", "fw=0.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := mdns.NewServer(&mdns.Config{Zone: zone, Iface: iface, Logger: libLog})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	// A board the gateway has configured by its URL (as the README writes
	// it, without :80), under another id than its TXT id.
	zone, err = mdns.NewMDNSService("Door Board", "_esp32gw-board._tcp", "local.", "esp32-door.local.", 80,
		[]net.IP{net.ParseIP(mdnsBoardIP)}, []string{"id=esp32-door", "path=/ws"})
	if err != nil {
		t.Fatal(err)
	}
	door, err := mdns.NewServer(&mdns.Config{Zone: zone, Iface: iface, Logger: libLog})
	if err != nil {
		t.Fatal(err)
	}
	defer door.Shutdown()
	fmt.Println("ADVERTISING")

	// Browse for the gateway, as a board does to find it.
	gwName := os.Getenv(mdnsGwEnv) + "._esp32gw._tcp.local."
	var found *mdns.ServiceEntry
	for deadline := time.Now().Add(30 * time.Second); found == nil && time.Now().Before(deadline); {
		select {
		case <-stdinClosed:
			t.Fatal("told to stop before the gateway was found")
		default:
		}
		entries := make(chan *mdns.ServiceEntry, 16)
		err := mdns.QueryContext(context.Background(), &mdns.QueryParam{Service: "_esp32gw._tcp", Domain: "local",
			Timeout: time.Second, Interface: iface, Entries: entries, DisableIPv6: true, Logger: libLog})
		if err != nil {
			t.Fatalf("query _esp32gw._tcp: %v", err)
		}
		close(entries)
		for e := range entries {
			t.Logf("answer: %s %s:%d %q", e.Name, e.AddrV4, e.Port, e.InfoFields)
			if e.Name == gwName && e.AddrV4 != nil {
				found = e
			}
		}
	}
	if found == nil {
		t.Fatalf("gateway %s not found within 30 s", gwName)
	}
	line, _ := json.Marshal(gatewayAnswer{Name: found.Name, Addr: found.AddrV4.String(), Port: found.Port, TXT: found.InfoFields})
	fmt.Printf("GATEWAY %s\n", line)

	select {
	case <-stdinClosed:
	case <-time.After(50 * time.Second):
		t.Error("not told to stop within 50 s")
	}
}

// serveGoBoard stands in for the native board: a WebSocket server at /ws
// on addr sending {"count":N} every 100 ms to each client until the test
// ends.
func serveGoBoard(t *testing.T, addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		go func() { // reads answer the gateway's pings and notice its leaving
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					c.Close()
					return
				}
			}
		}()
		repeat(r.Context().Done(), 100*time.Millisecond, func(n int) bool {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			return c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"count":%d}`, n)) == nil
		})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}
