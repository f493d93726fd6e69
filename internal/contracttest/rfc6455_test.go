package contracttest

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/testgw"
)

// Attack tests from issue 13, item 4 and 6: raw RFC 6455 violations over
// TCP (no WebSocket client library writes these frames), and a browser that
// stops answering pings.

// rfcConfig is a gateway with a board that publishes all the time, so a
// well-behaved browser always has events to receive.
func rfcConfig(id string) string {
	return header(id, "") + `  - id: demo
    transport: sim
    sim: {board: tutorial, interval: 50ms}
    commands: [toggle]
`
}

// rawWS is a WebSocket connection upgraded by hand.
type rawWS struct {
	c net.Conn
	r *bufio.Reader
}

// rawDial upgrades /ws?token= by hand and returns the open connection.
func rawDial(t *testing.T, g *testgw.Gateway) *rawWS {
	t.Helper()
	c, err := net.DialTimeout("tcp", g.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var k [16]byte
	rand.Read(k[:])
	req := "GET /ws?token=" + url.QueryEscape(g.Token) + " HTTP/1.1\r\n" +
		"Host: " + g.Addr + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(k[:]) + "\r\n" +
		"Sec-WebSocket-Version: 13\r\n\r\n"
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: HTTP %d, want 101", resp.StatusCode)
	}
	c.SetDeadline(time.Time{})
	return &rawWS{c: c, r: br}
}

// frame builds one WebSocket frame. b0 is the first byte without FIN
// (RSV bits and opcode); a masked frame gets a random mask.
func frame(fin bool, b0 byte, masked bool, payload []byte) []byte {
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	var m byte
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		out = append(out, m|byte(n))
	case n <= 0xffff:
		out = append(out, m|126, byte(n>>8), byte(n))
	default:
		out = append(out, m|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	p := append([]byte(nil), payload...)
	if masked {
		var key [4]byte
		rand.Read(key[:])
		out = append(out, key[:]...)
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	return append(out, p...)
}

func closePayload(code int, reason string) []byte {
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}

// serverFrame is one frame read from the gateway.
type serverFrame struct {
	op      byte
	payload []byte
}

func (w *rawWS) readFrame() (serverFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(w.r, h[:]); err != nil {
		return serverFrame{}, err
	}
	if h[1]&0x80 != 0 {
		return serverFrame{}, fmt.Errorf("server frame is masked (RFC 6455 5.1 forbids it)")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(w.r, b[:]); err != nil {
			return serverFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(w.r, b[:]); err != nil {
			return serverFrame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return serverFrame{}, fmt.Errorf("server frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(w.r, p); err != nil {
		return serverFrame{}, err
	}
	return serverFrame{op: h[0] & 0x0f, payload: p}, nil
}

// untilClosed reads frames (answering nothing) until a close frame or the
// end of the connection, within d. code is the close frame's code (-1:
// none, 1005: a close frame without a code); ended is false on timeout.
func (w *rawWS) untilClosed(d time.Duration, onFrame func(serverFrame)) (code int, reason string, err error, ended bool) {
	w.c.SetReadDeadline(time.Now().Add(d))
	defer w.c.SetReadDeadline(time.Time{})
	for {
		f, err := w.readFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return -1, "", err, false
			}
			return -1, "", err, true // EOF or reset: the connection ended
		}
		if onFrame != nil {
			onFrame(f)
		}
		if f.op == 0x8 {
			if len(f.payload) < 2 {
				return 1005, "", nil, true
			}
			return int(binary.BigEndian.Uint16(f.payload)), string(f.payload[2:]), nil, true
		}
	}
}

// TestRFC6455Violations: each frame a client must never send ends the
// connection within 1 s, with 1002 (protocol error) or 1007 (invalid
// payload) when the gateway says why; the gateway does not panic and a
// well-behaved browser keeps getting events.
func TestRFC6455Violations(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, rfcConfig("rfc"))
	good, goodR := browser(t, g, "/ws")
	defer good.Close()
	goodR.WaitFor(t, 10*time.Second, "a first event from demo", func(m msg) bool {
		return str(m, "type") == "event" && str(m, "device") == "demo"
	})

	ping126 := make([]byte, 126)
	cases := []struct {
		name  string
		frame []byte
		want  []int // acceptable close codes when a close frame is sent
	}{
		{"unmasked client frame", frame(true, 0x1, false, []byte(`{"type":"subscribe"}`)), []int{1002}},
		{"RSV1 set", frame(true, 0x40|0x1, true, []byte(`{"type":"subscribe"}`)), []int{1002}},
		{"RSV2 set", frame(true, 0x20|0x1, true, []byte(`{"type":"subscribe"}`)), []int{1002}},
		{"RSV3 set", frame(true, 0x10|0x1, true, []byte(`{"type":"subscribe"}`)), []int{1002}},
		{"reserved data opcode 0x3", frame(true, 0x3, true, []byte("x")), []int{1002}},
		{"reserved control opcode 0xB", frame(true, 0xB, true, []byte("x")), []int{1002}},
		{"fragmented ping", frame(false, 0x9, true, []byte("ping")), []int{1002}},
		{"ping with a 126-byte payload", frame(true, 0x9, true, ping126), []int{1002}},
		{"orphan continuation frame", frame(true, 0x0, true, []byte(`{"type":"subscribe"}`)), []int{1002}},
		{"close frame carrying 1005", frame(true, 0x8, true, closePayload(1005, "")), []int{1002}},
		{"text frame with invalid UTF-8", frame(true, 0x1, true, []byte("{\"type\":\"command\",\"device\":\"\xff\xfe\"}")), []int{1007}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := rawDial(t, g)
			// The snapshot first: the connection is being served.
			w.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if f, err := w.readFrame(); err != nil || f.op != 0x1 {
				t.Fatalf("first frame: op %#x, %v; want the snapshot", f.op, err)
			}
			w.c.SetReadDeadline(time.Time{})
			start := time.Now()
			w.c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := w.c.Write(tc.frame); err != nil {
				t.Fatalf("write: %v", err)
			}
			code, reason, err, ended := w.untilClosed(time.Second, nil)
			took := time.Since(start)
			if !ended {
				t.Fatalf("still open %v after the bad frame", took)
			}
			if code == -1 {
				t.Logf("connection ended after %v without a close frame: %v", took.Round(time.Millisecond), err)
				return
			}
			t.Logf("close %d %q after %v", code, reason, took.Round(time.Millisecond))
			ok := false
			for _, c := range tc.want {
				ok = ok || c == code
			}
			if !ok {
				t.Errorf("close code %d %q, want one of %v", code, reason, tc.want)
			}
			// After its close frame the gateway ends the TCP connection too.
			if _, _, err, ended := w.untilClosed(2*time.Second, nil); !ended {
				t.Errorf("TCP connection still open 2 s after the close frame: %v", err)
			}
		})
	}

	// The well-behaved browser still gets events, and a new one connects.
	goodR.WaitFor(t, 5*time.Second, "an event on the good browser after the attacks", func(m msg) bool {
		return str(m, "type") == "event" && str(m, "device") == "demo"
	})
	_, r2 := browser(t, g, "/ws")
	r2.WaitFor(t, 5*time.Second, "an event on a new browser", func(m msg) bool {
		return str(m, "type") == "event" && str(m, "device") == "demo"
	})
	if logs := g.Logs(); strings.Contains(logs, "panic") || strings.Contains(logs, "[running]") {
		t.Fatalf("the gateway logged a panic:\n%s", logs)
	}
}

// pongWait is browserPongWait in web/ws.go (35 s): the contract's read
// deadline, extended by every pong or message.
const pongWait = 35 * time.Second

// TestRFC6455PongTimeout: a browser that reads but never answers pings is
// closed within the pong wait (plus a little slack), not kept forever.
func TestRFC6455PongTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 35 s pong wait")
	}
	t.Parallel()
	g := testgw.Start(t, rfcConfig("pong"))
	w := rawDial(t, g)
	start := time.Now()
	var pings []time.Duration
	code, reason, err, ended := w.untilClosed(pongWait+5*time.Second, func(f serverFrame) {
		if f.op == 0x9 {
			pings = append(pings, time.Since(start))
		}
	})
	took := time.Since(start)
	if !ended {
		t.Fatalf("a browser that never answered pings is still connected after %v (pings at %v)", took, pings)
	}
	t.Logf("ended after %v, close %d %q, err %v; pings at %v", took.Round(time.Millisecond), code, reason, err, pings)
	if len(pings) == 0 {
		t.Errorf("no ping was sent in %v", took)
	}
	if took < pongWait-2*time.Second {
		t.Errorf("closed after %v, before the pong wait of %v", took, pongWait)
	}
	if logs := g.Logs(); strings.Contains(logs, "panic") {
		t.Fatalf("the gateway logged a panic:\n%s", logs)
	}
}
