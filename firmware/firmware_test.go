// Package firmware_test builds and runs the firmware's host-side C++: the
// gwproto unit tests (make test, and make test32 where g++ -m32 works) and
// the POSIX native board in each of its modes, talking to it the way the
// gateway does (a pty; gorilla/websocket as server and as client).
//
// It needs make and g++. Without them it skips with a message, unless the
// environment variable CI is set: then a missing toolchain is a failure.
// Everything is built in one temporary directory per test process.
package firmware_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/testutil"
)

var (
	buildDir  string // shared by every make invocation of this process
	buildOnce sync.Once
	buildErr  error
	buildLog  []byte
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "esp32gw-firmware-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireToolchain skips (or, under CI, fails) when make or the C++
// compiler is missing.
func requireToolchain(t *testing.T) {
	t.Helper()
	cxx := os.Getenv("CXX")
	if cxx == "" {
		cxx = "g++"
	}
	for _, tool := range []string{"make", cxx} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("%s not found: the firmware host tests need make and g++ (apt-get install make g++)", tool)
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// sourceDigest reads every host-built source, so `go test` caching notices
// when the C++ changes (the test cache keys on files the test opens).
func sourceDigest(t *testing.T) string {
	t.Helper()
	h := sha256.New()
	for _, root := range []string{"Makefile", "src", "test", "host"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
			h.Write(b)
			return nil
		})
		if err != nil {
			t.Fatalf("reading sources: %v", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// runMake runs make in this directory with BUILD pointing at the shared
// temp dir and returns its combined output.
func runMake(t *testing.T, targets ...string) ([]byte, error) {
	t.Helper()
	args := append([]string{"-j2", "--no-print-directory", "BUILD=" + buildDir}, targets...)
	cmd := exec.Command("make", args...)
	cmd.Env = append(os.Environ(), "MAKEFLAGS=")
	return cmd.CombinedOutput()
}

var summaryRE = regexp.MustCompile(`(?m)^([\w-]+): (\d+) passed, (\d+) failed$`)

func TestHostUnitTests(t *testing.T) {
	requireToolchain(t)
	start := time.Now()
	digest := sourceDigest(t)
	out, err := runMake(t, "test")
	m := summaryRE.FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("make test failed (%v):\n%s", err, tail(out, 60))
	}
	t.Logf("sources %s: %s (%.1fs)", digest, m[0], time.Since(start).Seconds())
	if string(m[3]) != "0" || string(m[2]) == "0" {
		t.Fatalf("unexpected summary %q:\n%s", m[0], tail(out, 60))
	}
}

func TestHostUnitTests32(t *testing.T) {
	requireToolchain(t)
	sourceDigest(t)
	out, err := runMake(t, "test32")
	if err != nil {
		t.Fatalf("make test32 failed (%v):\n%s", err, tail(out, 60))
	}
	text := string(out)
	switch {
	case strings.Contains(text, "test32: skipped"):
		t.Skip(lastLine(text))
	case strings.Contains(text, "test32: compiled"):
		t.Log(lastLine(text))
	default:
		m := summaryRE.FindSubmatch(out)
		if m == nil || string(m[3]) != "0" {
			t.Fatalf("make test32: no clean summary:\n%s", tail(out, 60))
		}
		t.Log(string(m[0]))
	}
}

// nativeBoard builds the native board once and returns its path.
func nativeBoard(t *testing.T) string {
	t.Helper()
	requireToolchain(t)
	sourceDigest(t)
	buildOnce.Do(func() { buildLog, buildErr = runMake(t, "host") })
	if buildErr != nil {
		t.Fatalf("make host failed (%v):\n%s", buildErr, tail(buildLog, 60))
	}
	return filepath.Join(buildDir, "native_board")
}

// board is a running native board whose stderr is kept for failure reports.
type board struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	stderr *testutil.SyncBuffer
	done   chan error
}

func startBoard(t *testing.T, args ...string) *board {
	t.Helper()
	cmd := exec.Command(nativeBoard(t), args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &board{cmd: cmd, stdout: bufio.NewReader(stdout), stderr: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = b.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- cmd.Wait() }()
	t.Cleanup(func() {
		b.stop(t, false)
		if t.Failed() {
			t.Logf("native_board stderr:\n%s", b.stderr.String())
		}
	})
	return b
}

// firstLine reads what the board prints first on stdout (a path or a URL).
func (b *board) firstLine(t *testing.T) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		line, _ := b.stdout.ReadString('\n')
		ch <- strings.TrimSpace(line)
	}()
	select {
	case line := <-ch:
		if line == "" {
			t.Fatalf("native board printed nothing; stderr:\n%s", b.stderr.String())
		}
		return line
	case <-time.After(10 * time.Second):
		t.Fatalf("native board printed no first line; stderr:\n%s", b.stderr.String())
	}
	return ""
}

// stop sends SIGINT and waits; with check it fails unless the board exits
// 0 within 3 s.
func (b *board) stop(t *testing.T, check bool) {
	if b.cmd.ProcessState != nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-b.done:
		if check && err != nil {
			t.Errorf("native board exit: %v; stderr:\n%s", err, b.stderr.String())
		}
	case <-time.After(3 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
		if check {
			t.Errorf("native board ignored SIGINT for 3 s")
		}
	}
}

// frame is the board wire protocol's seed form.
type frame struct {
	Label string          `json:"label"`
	Value json.RawMessage `json:"value"`
}

// lineSource delivers lines read from r on a channel until r fails.
func lineSource(r io.Reader) <-chan []byte {
	ch := make(chan []byte, 256)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 64*1024)
		sc.Split(splitLF) // unlike bufio.ScanLines, keep a '\r' for the test to see
		for sc.Scan() {
			ch <- append([]byte(nil), sc.Bytes()...)
		}
	}()
	return ch
}

// waitFrame returns the first frame from next() with the label (and, when
// value is not empty, the JSON value); every JSON frame seen on the way must
// be valid JSON.
func waitFrame(t *testing.T, next func(time.Duration) ([]byte, bool), label, value string) frame {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no %s %s frame within 5 s", label, value)
		}
		msg, ok := next(left)
		if !ok {
			t.Fatalf("stream ended while waiting for %s %s", label, value)
		}
		trimmed := bytes.TrimRight(msg, "\r")
		if len(trimmed) == 0 || trimmed[0] != '{' {
			continue
		}
		if !json.Valid(trimmed) {
			if bytes.HasPrefix(trimmed, []byte(`{"label":"big"`)) {
				continue // the deliberately over-long noise line
			}
			t.Fatalf("board sent invalid JSON: %q", trimmed)
		}
		var f frame
		if err := json.Unmarshal(trimmed, &f); err != nil {
			continue // JSON, but not a frame
		}
		if f.Label == label && (value == "" || string(f.Value) == value) {
			return f
		}
	}
}

// splitLF splits at '\n' only, leaving any '\r' on the line.
func splitLF(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

func chanNext(ch <-chan []byte) func(time.Duration) ([]byte, bool) {
	return func(d time.Duration) ([]byte, bool) {
		select {
		case b, ok := <-ch:
			return b, ok
		case <-time.After(d):
			return nil, true
		}
	}
}

func TestNativeBoardSerial(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyBOARD")
	b := startBoard(t, "--mode", "serial", "--id", "bench", "--interval-ms", "100",
		"--duration-s", "30", "--noise", "--link", link)
	slave := b.firstLine(t)
	if target, err := os.Readlink(link); err != nil || target != slave {
		t.Fatalf("--link: readlink = %q, %v; want %q", target, err, slave)
	}
	port, err := os.OpenFile(link, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	lines := lineSource(port)
	next := chanNext(lines)

	// Boot noise the gateway must treat as log lines, then hello and state.
	var sawROM, sawDebug, sawBig bool
	for !(sawROM && sawDebug && sawBig) {
		line, ok := next(5 * time.Second)
		if !ok || line == nil {
			t.Fatalf("boot lines missing: rom=%v debug=%v big=%v", sawROM, sawDebug, sawBig)
		}
		s := string(bytes.TrimRight(line, "\r"))
		sawROM = sawROM || strings.HasPrefix(s, "rst:0x1 (POWERON_RESET)")
		sawDebug = sawDebug || strings.HasPrefix(s, "# ")
		sawBig = sawBig || (strings.HasPrefix(s, `{"label":"big"`) && len(s) == 5000)
		if !bytes.HasSuffix(line, []byte("\r")) {
			t.Errorf("line %.60q does not end in \\r\\n like Serial.println", s)
		}
	}
	hello := waitFrame(t, next, "hello", "")
	var hv struct{ ID, Flavour, Reset string }
	if err := json.Unmarshal(hello.Value, &hv); err != nil || hv.ID != "bench" || hv.Flavour != "serial" || hv.Reset != "POWERON" {
		t.Errorf("hello value %s (%v)", hello.Value, err)
	}
	waitFrame(t, next, "ledStatus", `"LED OFF"`)
	waitFrame(t, next, "count", "")

	if _, err := port.Write([]byte("toggle\n")); err != nil {
		t.Fatal(err)
	}
	waitFrame(t, next, "ledStatus", `"LED ON"`)
	// A JSON command split across two writes, ending in \r\n.
	if _, err := port.Write([]byte(`{"label":"led","val`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let the halves arrive as two reads
	if _, err := port.Write([]byte("ue\":\"toggle\"}\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFrame(t, next, "ledStatus", `"LED OFF"`)
	// An over-long command line is dropped whole; the next one still works.
	if _, err := port.Write([]byte(strings.Repeat("x", 1000) + "toggle\ntoggle\n")); err != nil {
		t.Fatal(err)
	}
	waitFrame(t, next, "ledStatus", `"LED ON"`)
	first := waitFrame(t, next, "count", "")
	second := waitFrame(t, next, "count", "")
	var c1, c2 int
	json.Unmarshal(first.Value, &c1)
	json.Unmarshal(second.Value, &c2)
	if c2 != c1+1 {
		t.Errorf("count went %d -> %d", c1, c2)
	}

	b.stop(t, true)
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("--link %s still exists after exit (%v)", link, err)
	}
	if !strings.Contains(b.stderr.String(), "lines over-long 1") {
		t.Errorf("over-long command line not counted; stderr:\n%s", b.stderr.String())
	}
}

func TestNativeBoardWSClient(t *testing.T) {
	var attempts, refused atomic.Int32
	conns := make(chan *websocket.Conn, 4)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		if r.URL.Path != "/device/garage" || r.Header.Get("Authorization") != "Bearer sekret" {
			refused.Add(1)
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conns <- c
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/device/garage"

	b := startBoard(t, "--mode", "ws-client", "--url", url, "--token", "sekret", "--id", "garage",
		"--interval-ms", "100", "--duration-s", "30", "--backoff-min-ms", "100", "--backoff-max-ms", "400")
	var c *websocket.Conn
	select {
	case c = <-conns:
	case <-time.After(5 * time.Second):
		t.Fatalf("board never connected; stderr:\n%s", b.stderr.String())
	}
	// The gateway's keepalive: a ping must come back as a pong.
	pong := make(chan string, 1)
	c.SetPongHandler(func(s string) error { pong <- s; return nil })
	r := readWS(c)
	hello := waitFrame(t, r.next, "hello", "")
	if !strings.Contains(string(hello.Value), `"flavour":"wsclient"`) {
		t.Errorf("hello %s", hello.Value)
	}
	waitFrame(t, r.next, "count", "")
	waitFrame(t, r.next, "ledStatus", `"LED OFF"`)
	if err := c.WriteControl(websocket.PingMessage, []byte("ka1"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("toggle")); err != nil {
		t.Fatal(err)
	}
	waitFrame(t, r.next, "ledStatus", `"LED ON"`)
	select {
	case s := <-pong:
		if s != "ka1" {
			t.Errorf("pong payload %q", s)
		}
	case <-time.After(2 * time.Second):
		t.Error("no pong for the ping")
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"label":"led","value":"toggle"}`)); err != nil {
		t.Fatal(err)
	}
	waitFrame(t, r.next, "ledStatus", `"LED OFF"`)

	// Drop the link: the board reconnects and sends hello + state again.
	c.Close()
	r.closeErr(2 * time.Second)
	select {
	case c = <-conns:
	case <-time.After(5 * time.Second):
		t.Fatalf("board did not reconnect; stderr:\n%s", b.stderr.String())
	}
	r = readWS(c)
	waitFrame(t, r.next, "hello", "")
	waitFrame(t, r.next, "ledStatus", `"LED OFF"`)
	// Stopping says goodbye with a close frame.
	b.stop(t, true)
	if err := r.closeErr(2 * time.Second); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("after SIGINT: %v, want close 1001", err)
	}
	c.Close()

	// A wrong token is refused, and the board keeps retrying with backoff.
	before := refused.Load()
	bad := startBoard(t, "--mode", "ws-client", "--url", url, "--token", "wrong",
		"--interval-ms", "100", "--duration-s", "30", "--backoff-min-ms", "100", "--backoff-max-ms", "400")
	deadline := time.Now().Add(5 * time.Second)
	for refused.Load() < before+3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := refused.Load() - before; n < 3 {
		t.Errorf("bad token: %d refused attempts in 5 s, want at least 3", n)
	}
	bad.stop(t, true)
	if !strings.Contains(bad.stderr.String(), "401") {
		t.Errorf("the refusal reason (401) is not logged:\n%s", bad.stderr.String())
	}
}

func TestNativeBoardWSServer(t *testing.T) {
	b := startBoard(t, "--mode", "ws-server", "--listen", "127.0.0.1:0", "--id", "kitchen",
		"--interval-ms", "100", "--duration-s", "30")
	url := b.firstLine(t)
	if !strings.HasPrefix(url, "ws://127.0.0.1:") || !strings.HasSuffix(url, "/ws") {
		t.Fatalf("first line %q is not a ws:// URL", url)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(strings.TrimSuffix(url, "/ws")+"/other", nil); err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("wrong path: err=%v resp=%v, want 404", err, resp)
	}
	c1, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	next1 := readWS(c1).next
	waitFrame(t, next1, "ledStatus", `"LED OFF"`) // state on connect
	waitFrame(t, next1, "count", "")              // the 1 Hz (here 10 Hz) broadcast
	c2, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	next2 := readWS(c2).next
	waitFrame(t, next2, "ledStatus", `"LED OFF"`)

	// A command from one client is broadcast to both, like textAll.
	if err := c1.WriteMessage(websocket.TextMessage, []byte("toggle")); err != nil {
		t.Fatal(err)
	}
	waitFrame(t, next1, "ledStatus", `"LED ON"`)
	waitFrame(t, next2, "ledStatus", `"LED ON"`)
	if err := c2.WriteMessage(websocket.TextMessage, []byte(`{"value":"off"}`)); err != nil {
		t.Fatal(err)
	}
	waitFrame(t, next1, "ledStatus", `"LED OFF"`)
	// Binary frames and unknown commands are ignored; the link stays up.
	c1.WriteMessage(websocket.BinaryMessage, []byte{0xff, 0x00})
	c1.WriteMessage(websocket.TextMessage, []byte("reboot"))
	c1.WriteMessage(websocket.TextMessage, []byte("toggle"))
	waitFrame(t, next1, "ledStatus", `"LED ON"`)
	b.stop(t, true)
}

// wsReader is the single reader of a connection: text messages go to
// next() for waitFrame, and the error that ended reading to closeErr().
type wsReader struct {
	ch   chan []byte
	done chan struct{}
	err  error
}

// readWS starts the reader; set handlers on c before calling it.
func readWS(c *websocket.Conn) *wsReader {
	r := &wsReader{ch: make(chan []byte, 256), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer close(r.ch)
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				r.err = err
				return
			}
			if typ == websocket.TextMessage {
				r.ch <- msg
			}
		}
	}()
	return r
}

func (r *wsReader) next(d time.Duration) ([]byte, bool) { return chanNext(r.ch)(d) }

// closeErr waits up to d for reading to end (draining messages) and
// returns why it ended.
func (r *wsReader) closeErr(d time.Duration) error {
	timeout := time.After(d)
	for {
		select {
		case _, ok := <-r.ch:
			if !ok {
				<-r.done
				return r.err
			}
		case <-timeout:
			return errors.New("connection still open")
		}
	}
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
