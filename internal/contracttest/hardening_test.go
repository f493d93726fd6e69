package contracttest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/testgw"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// metricValue reads one sample of /metrics (name with its labels, e.g.
// `esp32gw_connections_refused_total{reason="per_ip"}`); -1 when absent.
func metricValue(t testing.TB, g *testgw.Gateway, sample string) float64 {
	t.Helper()
	code, body := g.Get("/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`)
	m := re.FindSubmatch(body)
	if m == nil {
		return -1
	}
	f, _ := strconv.ParseFloat(string(m[1]), 64)
	return f
}

// dialFrom opens a TCP connection to addr from the loopback address src
// (127.0.0.X), so tests can stand for many clients without tripping
// limits.connections_per_ip.
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// healthzFrom does GET /healthz on its own connection from src and returns
// the status and how long it took.
func healthzFrom(src, addr string) (int, time.Duration, error) {
	start := time.Now()
	c, err := dialFrom(src, addr)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, time.Since(start), err
	}
	resp.Body.Close()
	return resp.StatusCode, time.Since(start), nil
}

// Slowloris: 300 connections dribble their headers one byte a second. A
// normal client is served at once meanwhile, and the header timeout (10 s)
// closes every dribbler.
func TestSlowHeadersAreCut(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gw1", ""))
	const n, perSource = 300, 50 // under limits.connections_per_ip (64)
	request := "GET /healthz HTTP/1.1\r\nHost: " + g.Addr + "\r\nX-Slow: " + strings.Repeat("a", 100) + "\r\n\r\n"
	closed := make(chan time.Duration, n)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); wg.Wait() })
	start := time.Now()
	for i := range n {
		c, err := dialFrom(fmt.Sprintf("127.0.0.%d", 20+i/perSource), g.Addr)
		if err != nil {
			t.Fatalf("dribbler %d: %v", i, err)
		}
		wg.Add(2)
		go func() { // writer: one byte a second
			defer wg.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for j := 0; ; j++ {
				c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.Write([]byte{request[j%len(request)]}); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
		go func() { // reader: notes when the gateway closes the connection
			defer wg.Done()
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(25 * time.Second))
			io.Copy(io.Discard, c)
			closed <- time.Since(start)
		}()
	}
	// A normal client is not delayed by them.
	var worst time.Duration
	for range 5 {
		code, took, err := healthzFrom("127.0.0.1", g.Addr)
		if err != nil || code != 200 {
			t.Fatalf("GET /healthz during the dribble: %d %v", code, err)
		}
		worst = max(worst, took)
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("GET /healthz during %d dribbling connections: worst %v", n, worst)
	if worst > time.Second {
		t.Errorf("GET /healthz took %v while connections dribbled headers, want well under 1 s", worst)
	}
	var last time.Duration
	for range n {
		d := <-closed
		last = max(last, d)
	}
	t.Logf("every dribbling connection closed by the gateway after at most %v", last)
	if last > 16*time.Second {
		t.Errorf("dribbling connections held for %v, want closed by the 10 s header timeout", last)
	}
}

// A client that pipelines requests for a static file and never reads holds
// the server's write; the write-stall bound (10 s) reaps it.
func TestNonReadingClientIsReaped(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gw1", ""))
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return nil
	}}
	c, err := d.Dial("tcp", g.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const requests = 300 // 300 × 51 KB: far more than the socket buffers hold
	req := "GET /assets/history.js HTTP/1.1\r\nHost: " + g.Addr + "\r\n\r\n"
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, strings.Repeat(req, requests)); err != nil {
		t.Fatalf("write requests: %v", err)
	}
	stat, err := os.Stat("../../web/static/assets/history.js")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the connection open on the gateway", func() bool {
		return metricValue(t, g, "esp32gw_connections_open") >= 1
	})
	time.Sleep(13 * time.Second) // never reading: past the 10 s write-stall bound
	// Now read: a reaped connection ends (EOF or reset) after what was
	// buffered; one still served would deliver everything and then wait.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the non-reading client was not reaped: read %d bytes, then the connection stayed open", got)
	}
	if full := int64(requests) * stat.Size(); got >= full {
		t.Errorf("read %d bytes, all %d requests' worth: the server never gave up on the client", got, requests)
	}
	t.Logf("non-reading client reaped after %d bytes (%v)", got, err)
}

// limits.connections_per_ip (default 64): the 65th connection from one
// address gets 503 and is counted; once the others close, it is served.
func TestConnectionsPerIPCap(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gw1", ""))
	const src, limit = "127.0.0.9", 64
	var held []net.Conn
	for i := range limit {
		c, err := dialFrom(src, g.Addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	testutil.Eventually(t, 5*time.Second, "64 connections open on the gateway", func() bool {
		return metricValue(t, g, "esp32gw_connections_open") >= limit
	})
	code, _, err := healthzFrom(src, g.Addr)
	if err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("connection %d from %s: %d %v, want 503", limit+1, src, code, err)
	}
	if v := metricValue(t, g, `esp32gw_connections_refused_total{reason="per_ip"}`); v < 1 {
		t.Errorf(`esp32gw_connections_refused_total{reason="per_ip"} = %v, want >= 1`, v)
	}
	if code, _, err := healthzFrom("127.0.0.10", g.Addr); err != nil || code != 200 {
		t.Errorf("another address meanwhile: %d %v, want 200", code, err)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	testutil.Eventually(t, 5*time.Second, "the address served again once its connections closed", func() bool {
		code, _, err := healthzFrom(src, g.Addr)
		return err == nil && code == 200
	})
}

// DNS rebinding with auth: none: a page on evil.example, rebound to the
// gateway's address, sends Host and Origin evil.example. Refused with 403;
// local names, addresses and http.allowed_hosts are served.
func TestHostCheckWithAuthNone(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gw1", "  auth: none\n  allowed_hosts: [gw.example]\n"))
	_, port, _ := net.SplitHostPort(g.Addr)
	get := func(path, host, origin string) int {
		req, _ := http.NewRequest("GET", g.URL+path, nil)
		req.Host = host
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s Host %s: %v", path, host, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/", "/api/devices", "/metrics"} {
		for _, tc := range []struct {
			host, origin string
			want         int
		}{
			{"evil.example", "http://evil.example", 403},
			{"evil.example:" + port, "http://evil.example:" + port, 403},
			{"localhost:" + port, "", 200},
			{"localhost", "http://localhost", 200},
			{"127.0.0.1:" + port, "http://127.0.0.1:" + port, 200},
			{"[::1]:" + port, "", 200},
			{"gw.example:" + port, "http://gw.example:" + port, 200},
		} {
			if got := get(path, tc.host, tc.origin); got != tc.want {
				t.Errorf("GET %s with Host %q, Origin %q: %d, want %d", path, tc.host, tc.origin, got, tc.want)
			}
		}
	}
	// The WebSocket too, before any upgrade.
	h := http.Header{"Origin": {"http://evil.example"}}
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second,
		NetDial: func(_, _ string) (net.Conn, error) { return net.Dial("tcp", g.Addr) }}
	_, resp, err := dialer.Dial("ws://evil.example/ws", h)
	if err == nil || status(resp) != 403 {
		t.Errorf("/ws with Host evil.example: %v (HTTP %d), want 403", err, status(resp))
	}
}

// Bearer is matched case-insensitively (RFC 9110) on the API and /ws.
func TestBearerCaseInsensitive(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gw1", ""))
	for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
		req, _ := http.NewRequest("GET", g.URL+"/api/devices", nil)
		req.Header.Set("Authorization", scheme+" "+g.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET /api/devices with %q: %d, want 200", scheme, resp.StatusCode)
		}
		c, resp, err := dial(g.WSURL("/ws"), http.Header{"Authorization": {scheme + " " + g.Token}})
		if err != nil {
			t.Errorf("/ws with %q: %v (HTTP %d)", scheme, err, status(resp))
			continue
		}
		c.Close()
	}
}

// Refused upgrades (cross-site, no token, a broken handshake, an unknown
// device) leave no browser and no hub subscription behind.
func TestRefusedUpgradesLeaveNothing(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gw1", "")+`  - id: demo
    transport: sim
    sim: {board: climate, interval: 1s}
`)
	refuse := []struct {
		name   string
		path   string
		header http.Header
	}{
		{"cross-site", "/ws", http.Header{"Origin": {"http://evil.example"}, "Authorization": {"Bearer " + g.Token}}},
		{"no token", "/ws", nil},
		{"compat no token", "/ws/devices/demo", nil},
		{"compat unknown device", "/ws/devices/nope", http.Header{"Authorization": {"Bearer " + g.Token}}},
	}
	// The gateway's own parts (firmware updates) follow the hub too: what
	// counts is that refused upgrades add nothing to them.
	baseSubs := metricValue(t, g, "esp32gw_hub_subscribers")
	for range 25 {
		for _, r := range refuse {
			if c, resp, err := dial(g.WSURL(r.path), r.header); err == nil {
				c.Close()
				t.Fatalf("%s: upgraded (HTTP %d), want refused", r.name, status(resp))
			}
		}
		// A broken handshake: no Sec-WebSocket-Key.
		req, _ := http.NewRequest("GET", g.URL+"/ws", nil)
		req.Header = g.Header()
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusSwitchingProtocols {
			t.Fatal("upgrade without Sec-WebSocket-Key accepted")
		}
	}
	if v := metricValue(t, g, "esp32gw_browsers_connected"); v != 0 {
		t.Errorf("esp32gw_browsers_connected after refused upgrades = %v, want 0", v)
	}
	if v := metricValue(t, g, "esp32gw_hub_subscribers"); v != baseSubs {
		t.Errorf("esp32gw_hub_subscribers after refused upgrades = %v, want %v as before them", v, baseSubs)
	}
}

// The compatibility endpoint ignores binary frames (its dialect has no
// error frame) and takes commands at the /ws rate per socket.
func TestCompatBinaryAndCommandRate(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gw1", "")+`  - id: cr
    transport: ws-listen
    token: "cr-token-0123456789"
    commands: [toggle]
    command_format: text
`)
	b := dialBoard(t, g, "cr", "cr-token-0123456789", true)
	waitOnline(t, g, "cr", true, 5*time.Second)
	c, r := browser(t, g, "/ws/devices/cr")
	c.WriteMessage(websocket.BinaryMessage, []byte{0x01, 0x02})
	select {
	case f := <-r.Frames():
		t.Fatalf("a binary frame was answered with %s; the board dialect has no error frames", f)
	case <-time.After(time.Second):
	}

	start := time.Now()
	for range 200 {
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := c.WriteMessage(websocket.TextMessage, []byte("toggle")); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for {
		select {
		case <-b.r.Frames():
			n++
			continue
		case <-time.After(time.Second):
		}
		break
	}
	elapsed := time.Since(start).Seconds()
	limit := int(40+20*elapsed) + 2 // gateway.CommandBurst + CommandRate × elapsed
	t.Logf("200 commands in a burst: %d reached the board in %.1f s (limit %d)", n, elapsed, limit)
	if n == 0 || n > limit {
		t.Errorf("%d commands reached the board, want 1..%d", n, limit)
	}
}

// Requests a stranger can repeat at will log one WARN per 10 s per kind,
// with a count, not one per request.
func TestRefusalLogsRateLimited(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gw1", "")+`  - id: lb
    transport: ws-listen
    token: "lb-token-0123456789"
`)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i := range 20 {
		resp, err := noRedirect.Get(fmt.Sprintf("%s/?token=wrong%d", g.URL, i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := http.Header{"Authorization": {"Bearer wrong"}}
		if c, _, err := dial(g.WSURL(fmt.Sprintf("/device/nosuch%d", i)), h); err == nil {
			c.Close()
			t.Fatal("a board with a wrong token was let in")
		}
	}
	warns := func(what string) int {
		n := 0
		for _, l := range strings.Split(g.Logs(), "\n") {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, what) {
				n++
			}
		}
		return n
	}
	testutil.Eventually(t, 5*time.Second, "the first refusals logged", func() bool {
		return warns("login with a wrong token") >= 1 && warns("board refused") >= 1
	})
	for _, what := range []string{"login with a wrong token", "board refused"} {
		if n := warns(what); n != 1 {
			t.Errorf("%d WARN lines %q for 20 refusals, want 1 (then one per 10 s with a count)", n, what)
		}
	}
}

// The total cap is limits.browsers + 256: beyond it, a connection from any
// address gets 503, counted as reason="total".
func TestConnectionsTotalCap(t *testing.T) {
	t.Parallel()
	cfg := strings.Replace(header("gw1", ""), "devices:\n", "limits: {browsers: 4, connections_per_ip: 1000}\ndevices:\n", 1)
	g := testgw.Start(t, cfg)
	const total = 4 + 256
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range total - 1 { // the test's own /metrics client keeps one more
		c, err := dialFrom(fmt.Sprintf("127.0.0.%d", 30+i/50), g.Addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		held = append(held, c)
	}
	testutil.Eventually(t, 5*time.Second, "all connections open on the gateway", func() bool {
		return metricValue(t, g, "esp32gw_connections_open") >= total
	})
	code, _, err := healthzFrom("127.0.0.99", g.Addr)
	if err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("connection over limits.browsers + 256: %d %v, want 503", code, err)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	if v := metricValue(t, g, `esp32gw_connections_refused_total{reason="total"}`); v != 1 {
		t.Errorf(`esp32gw_connections_refused_total{reason="total"} = %v, want 1`, v)
	}
	testutil.Eventually(t, 5*time.Second, "a connection served again once the others closed", func() bool {
		code, _, err := healthzFrom("127.0.0.99", g.Addr)
		return err == nil && code == 200
	})
}
