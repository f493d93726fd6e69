package firmware_test

// Fleet features of the native board, checked at the frame level against a
// loopback WebSocket server (gorilla) and HTTP server, without the gateway:
// $ attributes, backfill with ts, enrollment (adopted), and OTA emulation
// with its failure modes.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// stdoutLines delivers the board's stdout lines; call it once per board.
func (b *board) stdoutLines() <-chan string {
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(b.stdout)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

func waitLine(t *testing.T, ch <-chan string, prefix string, d time.Duration) string {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("stdout ended before a line starting %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("no stdout line starting %q within %v", prefix, d)
		}
	}
}

// boardServer is a loopback stand-in for the gateway's /device/{id}: each
// accepted link goes to conns; accept decides per request.
type boardServer struct {
	srv    *httptest.Server
	conns  chan *http.Request
	links  chan *websocket.Conn
	accept func(r *http.Request) bool
}

func newBoardServer(t *testing.T, accept func(r *http.Request) bool) *boardServer {
	s := &boardServer{conns: make(chan *http.Request, 64), links: make(chan *websocket.Conn, 16), accept: accept}
	up := websocket.Upgrader{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.conns <- r
		if !s.accept(r) {
			http.Error(w, "refused", http.StatusUnauthorized)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		s.links <- c
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *boardServer) url(path string) string {
	return "ws" + strings.TrimPrefix(s.srv.URL, "http") + path
}

func (s *boardServer) link(t *testing.T, b *board) *websocket.Conn {
	t.Helper()
	select {
	case c := <-s.links:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(10 * time.Second):
		t.Fatalf("board never connected; stderr:\n%s", b.stderr.String())
	}
	return nil
}

// waitObject returns the first JSON object frame for which match is true.
func waitObject(t *testing.T, next func(time.Duration) ([]byte, bool), what string, d time.Duration,
	match func(map[string]json.RawMessage) bool) map[string]json.RawMessage {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no %s within %v", what, d)
		}
		msg, ok := next(left)
		if !ok {
			t.Fatalf("link ended while waiting for %s", what)
		}
		if msg == nil {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(msg, &m); err != nil {
			t.Fatalf("board sent invalid JSON %q: %v", msg, err)
		}
		if match(m) {
			return m
		}
	}
}

func isAttributes(m map[string]json.RawMessage) bool { _, ok := m["$fw"]; return ok }

func TestNativeBoardAttributes(t *testing.T) {
	s := newBoardServer(t, func(*http.Request) bool { return true })
	b := startBoard(t, "--mode", "ws-client", "--url", s.url("/device/garage"), "--id", "garage",
		"--fw", "1.2.3", "--project", "garage-door", "--chip", "esp32s3", "--attr-every-s", "1",
		"--interval-ms", "100", "--duration-s", "30")
	r := readWS(s.link(t, b))
	first := waitObject(t, r.next, "attributes on connect", 5*time.Second, isAttributes)
	for _, k := range []string{"$fw", "$project", "$chip", "$mac", "$ip", "$rssi", "$heap", "$uptime", "$reset"} {
		if _, ok := first[k]; !ok {
			t.Errorf("attributes frame lacks %s: %v", k, first)
		}
	}
	want := map[string]string{"$fw": `"1.2.3"`, "$project": `"garage-door"`, "$chip": `"esp32s3"`,
		"$ip": `"127.0.0.1"`, "$reset": `"POWERON"`}
	for k, v := range want {
		if string(first[k]) != v {
			t.Errorf("%s = %s, want %s", k, first[k], v)
		}
	}
	var rssi int
	if err := json.Unmarshal(first["$rssi"], &rssi); err != nil || rssi > -30 || rssi < -100 {
		t.Errorf("$rssi %s", first["$rssi"])
	}
	// Repeated by itself (within 3 s at --attr-every-s 1). No lower bound:
	// on a loaded machine the first frame may be read late.
	waitObject(t, r.next, "attributes again (--attr-every-s 1)", 3*time.Second, isAttributes)
	b.stop(t, true)
}

func TestNativeBoardBackfill(t *testing.T) {
	var refuse atomic.Bool
	s := newBoardServer(t, func(*http.Request) bool { return !refuse.Load() })
	b := startBoard(t, "--mode", "ws-client", "--url", s.url("/device/garage"), "--id", "garage",
		"--interval-ms", "50", "--duration-s", "30", "--backoff-min-ms", "100", "--backoff-max-ms", "200",
		"--backfill", "10")
	c := s.link(t, b)
	r := readWS(c)
	waitFrame(t, r.next, "count", "")

	// Cut the link and keep the board out for about a second: 20 readings
	// at 50 ms, of which the last 10 fit the ring.
	refuse.Store(true)
	cut := time.Now()
	c.Close()
	time.Sleep(time.Second)
	refuse.Store(false)
	r = readWS(s.link(t, b))
	type reading struct {
		Label string `json:"label"`
		Value int    `json:"value"`
		TS    int64  `json:"ts"`
	}
	var buffered []reading
	for {
		msg, ok := r.next(5 * time.Second)
		if !ok || msg == nil {
			t.Fatalf("link ended or went quiet after %d backfilled readings", len(buffered))
		}
		var rd reading
		if json.Unmarshal(msg, &rd) != nil || rd.Label != "count" {
			continue
		}
		if rd.TS == 0 {
			// The first live reading: the backfill is over.
			if len(buffered) > 0 && rd.Value != buffered[0].Value+1 {
				t.Errorf("live count %d after the newest buffered %d", rd.Value, buffered[0].Value)
			}
			break
		}
		buffered = append(buffered, rd)
	}
	if len(buffered) != 10 {
		t.Fatalf("%d backfilled readings, want 10 (the ring's size): %v", len(buffered), buffered)
	}
	// The newest goes first (the gateway shows it live), then the older
	// ones oldest first (history only at the gateway).
	newest := buffered[0]
	buffered = append(buffered[1:], newest)
	for i, rd := range buffered {
		at := time.UnixMilli(rd.TS)
		if at.Before(cut.Add(-time.Second)) || at.After(time.Now()) {
			t.Errorf("reading %d: ts %v outside the outage (cut at %v)", i, at, cut)
		}
		if i > 0 && (rd.Value != buffered[i-1].Value+1 || rd.TS < buffered[i-1].TS) {
			t.Errorf("reading %d out of order: %v after %v", i, rd, buffered[i-1])
		}
	}
	b.stop(t, true)
	if !strings.Contains(b.stderr.String(), "readings dropped from the backfill") {
		t.Errorf("no backfill summary in stderr:\n%s", b.stderr.String())
	}
}

func TestNativeBoardEnrollment(t *testing.T) {
	s := newBoardServer(t, func(r *http.Request) bool {
		auth := r.Header.Get("Authorization")
		return (r.URL.Path == "/device/esp32-a1b2" && auth == "Bearer enroll-me") ||
			(r.URL.Path == "/device/garage" && auth == "Bearer per-device")
	})
	state := filepath.Join(t.TempDir(), "board.state")
	b := startBoard(t, "--mode", "ws-client", "--url", s.url("/device/esp32-a1b2"), "--id", "esp32-a1b2",
		"--enroll-token", "enroll-me", "--state-file", state, "--fw", "0.3.0",
		"--interval-ms", "100", "--duration-s", "30", "--backoff-min-ms", "100", "--backoff-max-ms", "200")
	out := b.stdoutLines()
	c := s.link(t, b)
	r := readWS(c)
	waitObject(t, r.next, "attributes while pending", 5*time.Second, isAttributes)
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"adopted","id":"garage","token":"per-device"}`)); err != nil {
		t.Fatal(err)
	}
	if l := waitLine(t, out, "adopted", 5*time.Second); l != "adopted id=garage" {
		t.Errorf("stdout %q", l)
	}
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "adopted"))
	c2 := s.link(t, b)
	waitObject(t, readWS(c2).next, "attributes as garage", 5*time.Second, isAttributes)
	body, err := os.ReadFile(state)
	if err != nil || !strings.Contains(string(body), "id=garage\n") || !strings.Contains(string(body), "token=per-device\n") {
		t.Errorf("state file %q (%v)", body, err)
	}
	b.stop(t, true)

	// A restart uses what the state file holds, not the enroll token.
	b2 := startBoard(t, "--mode", "ws-client", "--url", s.url("/device/esp32-a1b2"), "--id", "esp32-a1b2",
		"--enroll-token", "enroll-me", "--state-file", state, "--interval-ms", "100", "--duration-s", "30")
	s.link(t, b2)
	b2.stop(t, true)
	var paths []string
	for len(s.conns) > 0 {
		paths = append(paths, (<-s.conns).URL.Path)
	}
	if len(paths) == 0 || paths[len(paths)-1] != "/device/garage" {
		t.Errorf("dialed %v; the restarted board should dial /device/garage", paths)
	}
}

// appImage builds a minimal ESP32 app image: the 24-byte image header
// (magic 0xE9), one segment header, esp_app_desc_t, then filler.
func appImage(version, project string, size int) []byte {
	img := make([]byte, size)
	img[0] = 0xE9
	img[1] = 1
	binary.LittleEndian.PutUint16(img[12:], 0) // chip id: esp32
	binary.LittleEndian.PutUint32(img[24:], 0x3f400020)
	binary.LittleEndian.PutUint32(img[28:], 256)
	d := img[32:]
	binary.LittleEndian.PutUint32(d, 0xABCD5432)
	copy(d[16:48], version)
	copy(d[48:80], project)
	copy(d[80:96], "12:00:00")
	copy(d[96:112], "Jan  1 2026")
	copy(d[112:144], "v5.4")
	for i := 256; i < size; i++ {
		img[i] = byte(i * 7)
	}
	return img
}

// imageServer serves img with Content-Length and ranges; cutFirst cuts the
// first response after that many bytes (0: never).
func imageServer(t *testing.T, img []byte, cutFirst int) (*httptest.Server, *atomic.Int32, *atomic.Int32) {
	var gets, ranges atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := gets.Add(1)
		if r.Header.Get("Range") != "" {
			ranges.Add(1)
		}
		if n == 1 && cutFirst > 0 {
			hj, ok := w.(http.Hijacker)
			if !ok {
				t.Error("no hijacker")
				return
			}
			conn, buf, err := hj.Hijack()
			if err != nil {
				return
			}
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", len(img))
			buf.Write(img[:cutFirst])
			buf.Flush()
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
			return
		}
		http.ServeContent(w, r, "fw.bin", time.Time{}, bytes.NewReader(img))
	}))
	t.Cleanup(srv.Close)
	return srv, &gets, &ranges
}

func otaFrame(job, url string, img []byte, version string) []byte {
	sum := sha256.Sum256(img)
	b, _ := json.Marshal(map[string]any{"type": "ota", "job": job, "url": url, "size": len(img),
		"sha256": hex.EncodeToString(sum[:]), "version": version})
	return b
}

type otaReport struct {
	State    string `json:"state"`
	Progress int    `json:"progress"`
	Error    string `json:"error"`
}

func waitOTA(t *testing.T, next func(time.Duration) ([]byte, bool), state string, d time.Duration) otaReport {
	t.Helper()
	var rep otaReport
	waitObject(t, next, "$ota "+state, d, func(m map[string]json.RawMessage) bool {
		raw, ok := m["$ota"]
		if !ok {
			return false
		}
		rep = otaReport{}
		if err := json.Unmarshal(raw, &rep); err != nil {
			t.Fatalf("$ota %s: %v", raw, err)
		}
		if rep.State == "failed" && state != "failed" {
			t.Fatalf("ota failed: %s", rep.Error)
		}
		return rep.State == state
	})
	return rep
}

func TestNativeBoardOTA(t *testing.T) {
	img := appImage("2.0.0", "native-board", 96*1024)
	t.Run("applied after a cut download resumes", func(t *testing.T) {
		httpSrv, gets, ranges := imageServer(t, img, 40*1024)
		s := newBoardServer(t, func(*http.Request) bool { return true })
		state := filepath.Join(t.TempDir(), "board.state")
		b := startBoard(t, "--mode", "ws-client", "--url", s.url("/device/garage"), "--id", "garage",
			"--fw", "1.0.0", "--state-file", state, "--ota-kbps", "32", "--reboot-ms", "300",
			"--interval-ms", "100", "--duration-s", "60", "--backoff-min-ms", "100", "--backoff-max-ms", "200")
		out := b.stdoutLines()
		c := s.link(t, b)
		r := readWS(c)
		waitObject(t, r.next, "attributes", 5*time.Second, isAttributes)
		if err := c.WriteMessage(websocket.TextMessage, otaFrame("j1", httpSrv.URL+"/fw/j1", img, "2.0.0")); err != nil {
			t.Fatal(err)
		}
		// Progress comes at most once a second, rising, then verifying and
		// rebooting.
		var states []string
		var stamps []time.Time
		prev := -1
		for {
			var rep otaReport
			waitObject(t, r.next, "$ota", 20*time.Second, func(m map[string]json.RawMessage) bool {
				raw, ok := m["$ota"]
				return ok && json.Unmarshal(raw, &rep) == nil
			})
			states = append(states, rep.State)
			if rep.State == "failed" {
				t.Fatalf("ota failed: %s", rep.Error)
			}
			if rep.State == "rebooting" {
				break
			}
			if rep.State == "downloading" {
				if rep.Progress < prev {
					t.Errorf("progress went back: %d after %d", rep.Progress, prev)
				}
				prev = rep.Progress
				stamps = append(stamps, time.Now())
			}
		}
		if len(stamps) < 2 {
			t.Errorf("%d progress reports for a 3 s download: %v", len(stamps), states)
		}
		for i := 1; i < len(stamps); i++ {
			if d := stamps[i].Sub(stamps[i-1]); d < 800*time.Millisecond {
				t.Errorf("progress reports %v apart (at most one a second): %v", d, states)
			}
		}
		if states[len(states)-2] != "verifying" {
			t.Errorf("states %v: want verifying before rebooting", states)
		}
		if l := waitLine(t, out, "ota applied", 10*time.Second); l != "ota applied version=2.0.0" {
			t.Errorf("stdout %q", l)
		}
		c2 := s.link(t, b)
		attrs := waitObject(t, readWS(c2).next, "attributes after the reboot", 10*time.Second, isAttributes)
		if string(attrs["$fw"]) != `"2.0.0"` || string(attrs["$reset"]) != `"SW"` {
			t.Errorf("after the update: $fw %s $reset %s", attrs["$fw"], attrs["$reset"])
		}
		if gets.Load() < 2 || ranges.Load() < 1 {
			t.Errorf("%d GETs, %d with Range: the cut download was not resumed", gets.Load(), ranges.Load())
		}
		if body, _ := os.ReadFile(state); !strings.Contains(string(body), "fw=2.0.0\n") {
			t.Errorf("state file after the update: %q", body)
		}
		b.stop(t, true)
		if !strings.Contains(b.stderr.String(), "marked valid") {
			t.Errorf("no 'marked valid' after reconnecting:\n%s", b.stderr.String())
		}
	})
}

func TestNativeBoardOTAFailures(t *testing.T) {
	img := appImage("2.0.0", "native-board", 32*1024)
	for _, tc := range []struct {
		mode, wantErr string
	}{
		{"hash", "sha256 mismatch"},
		{"download", "download: connection lost at"},
		{"noreturn", ""},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			httpSrv, _, _ := imageServer(t, img, 0)
			s := newBoardServer(t, func(*http.Request) bool { return true })
			b := startBoard(t, "--mode", "ws-client", "--url", s.url("/device/garage"), "--id", "garage",
				"--fw", "1.0.0", "--ota-fail", tc.mode, "--interval-ms", "100", "--duration-s", "30")
			out := b.stdoutLines()
			c := s.link(t, b)
			r := readWS(c)
			waitObject(t, r.next, "attributes", 5*time.Second, isAttributes)
			if err := c.WriteMessage(websocket.TextMessage, otaFrame("j1", httpSrv.URL+"/fw", img, "2.0.0")); err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" {
				rep := waitOTA(t, r.next, "failed", 10*time.Second)
				if !strings.HasPrefix(rep.Error, tc.wantErr) {
					t.Errorf("error %q, want %q…", rep.Error, tc.wantErr)
				}
				// The board stays up on its old version.
				waitFrame(t, r.next, "count", "")
				b.stop(t, true)
				return
			}
			waitOTA(t, r.next, "rebooting", 10*time.Second)
			if l := waitLine(t, out, "ota noreturn", 5*time.Second); l != "ota noreturn version=2.0.0" {
				t.Errorf("stdout %q", l)
			}
			select {
			case err := <-b.done:
				if err != nil {
					t.Errorf("exit: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("--ota-fail noreturn: the board did not exit")
			}
		})
	}
}
