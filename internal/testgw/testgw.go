// Package testgw runs the real esp32gw binary for end-to-end tests: it builds
// the binary once per source tree (shared by every test process), starts it with a temp config on a
// loopback port, and stops it with SIGINT (or kills it) when the test ends.
// Every process it starts is owned by a test and reaped by its Cleanup.
package testgw

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/testutil"
)

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// Binary returns the path of the esp32gw binary built from this source tree
// (with -race when the tests run with it). Every test process of one `go test
// ./...` run shares one build through a cache keyed by the source tree (see
// cache.go); a build error fails the test with the compiler's output.
func Binary(t testing.TB) string {
	t.Helper()
	binaryOnce.Do(func() { binaryPath, binaryErr = cachedBuild(moduleRoot()) })
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Require skips the test when an external program is missing, or fails it
// when the CI environment variable is set (CI must run every test).
func Require(t testing.TB, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed, and CI is set: .ci/run must install it", program)
		}
		t.Skipf("%s is not installed; skipping (install it to run this test)", program)
	}
	return p
}

// Gateway is one running esp32gw process.
type Gateway struct {
	t      testing.TB
	Dir    string // holds config.yaml and the state dir
	Config string // path of config.yaml
	Addr   string // 127.0.0.1:PORT
	URL    string // http://127.0.0.1:PORT
	Token  string // the login token ("" with auth: none)

	// Client makes the requests of Get and Do; nil: http.DefaultClient.
	// (A gateway in a network namespace needs one that dials there.)
	Client *http.Client

	env     []string // extra environment for the process (StartEnv)
	wrapper []string // command the binary runs under (StartWrapped)

	mu     sync.Mutex
	cmd    *exec.Cmd
	log    *testutil.SyncBuffer
	exited chan struct{}
	err    error
}

// Start writes configYAML into a temp dir and runs the gateway on it. The
// config should listen on "127.0.0.1:0"; Start waits until the gateway logs
// where it listens (at most 30 s).
func Start(t testing.TB, configYAML string) *Gateway {
	t.Helper()
	return StartEnv(t, configYAML)
}

// StartEnv is Start with extra environment variables ("NAME=value") for the
// gateway process, e.g. NOTIFY_SOCKET.
func StartEnv(t testing.TB, configYAML string, env ...string) *Gateway {
	t.Helper()
	return StartWrapped(t, configYAML, nil, env...)
}

// StartWrapped is StartEnv with the binary run under a wrapper command,
// wrapper[0] wrapper[1:]... BINARY -config ..., e.g. ip netns exec NS. The
// wrapper must exec the binary (not fork it), so that signals and the kill
// in Cleanup reach the gateway.
func StartWrapped(t testing.TB, configYAML string, wrapper []string, env ...string) *Gateway {
	t.Helper()
	dir := t.TempDir()
	g := &Gateway{t: t, Dir: dir, Config: filepath.Join(dir, "config.yaml"), env: env, wrapper: wrapper}
	if err := os.WriteFile(g.Config, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	g.start()
	t.Cleanup(func() {
		g.Kill()
		// The binary is built with -race when the tests are: a race it
		// found fails the test that ran it, with the report.
		if logs := g.Logs(); strings.Contains(logs, "WARNING: DATA RACE") {
			t.Errorf("the race detector found a data race in esp32gw:\n%s", logs[strings.Index(logs, "WARNING: DATA RACE"):])
		}
	})
	return g
}

var (
	listenRe = regexp.MustCompile(`msg=listening addr=(\S+)`)
	tokenRe  = regexp.MustCompile(`url="?https?://[^/]+/\?token=([0-9A-Za-z_-]+)`)
)

func (g *Gateway) start() {
	t := g.t
	t.Helper()
	bin := Binary(t)
	args := append(append([]string(nil), g.wrapper...), bin, "-config", g.Config, "-log-level", "debug")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = g.Dir
	if g.env != nil {
		cmd.Env = append(os.Environ(), g.env...)
	}
	log := &testutil.SyncBuffer{}
	cmd.Stdout = log
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start esp32gw: %v", err)
	}
	exited := make(chan struct{})
	g.mu.Lock()
	g.cmd, g.log, g.exited = cmd, log, exited
	g.mu.Unlock()
	go func() {
		err := cmd.Wait()
		g.mu.Lock()
		g.err = err
		g.mu.Unlock()
		close(exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := listenRe.FindStringSubmatch(log.String()); m != nil {
			g.Addr = m[1]
			g.URL = "http://" + g.Addr
			break
		}
		select {
		case <-exited:
			t.Fatalf("esp32gw exited before listening: %v\n%s", g.err, log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("esp32gw did not log where it listens within 30 s:\n%s", log.String())
		}
	}
	// The ready line follows the listening line at once.
	for time.Now().Before(deadline) {
		s := log.String()
		if m := tokenRe.FindStringSubmatch(s); m != nil {
			g.Token = m[1]
			break
		}
		if strings.Contains(s, "dashboard ready") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Logs is everything the gateway has logged so far.
func (g *Gateway) Logs() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.log.String()
}

// Stop sends SIGINT and waits up to 10 s; it returns the exit error (nil
// for exit 0) and how long the exit took.
func (g *Gateway) Stop() (error, time.Duration) {
	return g.signal(syscall.SIGINT)
}

// Signal sends sig and waits up to 10 s for the process to exit.
func (g *Gateway) signal(sig syscall.Signal) (error, time.Duration) {
	g.mu.Lock()
	cmd, exited := g.cmd, g.exited
	g.mu.Unlock()
	start := time.Now()
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("esp32gw did not exit within 10 s of %v", sig), time.Since(start)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err, time.Since(start)
}

// Terminate sends SIGTERM and waits, like Stop.
func (g *Gateway) Terminate() (error, time.Duration) { return g.signal(syscall.SIGTERM) }

// Kill ends the process with SIGKILL (no clean shutdown) and waits for it.
func (g *Gateway) Kill() {
	g.mu.Lock()
	cmd, exited := g.cmd, g.exited
	g.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Kill()
	<-exited
}

// Restart starts the gateway again on the same port with the same config
// and state dir, after a Stop or Kill.
func (g *Gateway) Restart() {
	g.t.Helper()
	b, err := os.ReadFile(g.Config)
	if err != nil {
		g.t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^(\s*listen:\s*).*$`)
	b = re.ReplaceAll(b, []byte(`${1}"`+g.Addr+`"`))
	if err := os.WriteFile(g.Config, b, 0o600); err != nil {
		g.t.Fatal(err)
	}
	// The port was just freed; retry briefly if the kernel still holds it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err := netListen(g.Addr)
		if err == nil {
			ln.Close()
			break
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("port %s still busy: %v", g.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.start()
}

// WSURL is the ws:// URL of path (e.g. "/ws?since=5"), with no token.
func (g *Gateway) WSURL(path string) string { return "ws://" + g.Addr + path }

// Header carries the token as Authorization: Bearer.
func (g *Gateway) Header() http.Header {
	h := http.Header{}
	if g.Token != "" {
		h.Set("Authorization", "Bearer "+g.Token)
	}
	return h
}

// Dial opens a WebSocket to path with the token; it fails the test on error.
func (g *Gateway) Dial(path string) *websocket.Conn {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.DefaultDialer.DialContext(ctx, g.WSURL(path), g.Header())
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		g.t.Fatalf("dial %s: %v (HTTP %d)", path, err, status)
	}
	g.t.Cleanup(func() { c.Close() })
	return c
}

// Get does an authenticated GET and returns status and body.
func (g *Gateway) Get(path string) (int, []byte) {
	g.t.Helper()
	return g.Do(http.MethodGet, path, nil)
}

// Do does an authenticated request.
func (g *Gateway) Do(method, path string, body []byte) (int, []byte) {
	g.t.Helper()
	req, err := http.NewRequest(method, g.URL+path, bytes.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header = g.Header()
	client := g.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

// LoginURL is the URL a user opens from the log.
func (g *Gateway) LoginURL() string { return g.URL + "/?token=" + url.QueryEscape(g.Token) }
