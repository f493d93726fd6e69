package web_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/gateway"
)

// rawWS is a browser that reads the server's bytes frame by frame, so a
// test sees exactly how the writer framed them (gorilla's client would
// hide a frame split in two, or two messages in one frame).
type rawWS struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, r *rig, path string) *rawWS {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(r.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	key := make([]byte, 16)
	rand.Read(key)
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"+
		"Authorization: Bearer %s\r\n\r\n",
		path, c.RemoteAddr(), base64.StdEncoding.EncodeToString(key), token)
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", resp.Status)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Fatalf("the server negotiated %q: raw frames would be wrong", ext)
	}
	return &rawWS{t: t, c: c, br: br}
}

type rawFrame struct {
	op      byte
	payload []byte
}

// next reads one frame and checks what every server frame must be: final
// (the gateway never fragments), no reserved bits, unmasked.
func (w *rawWS) next() (rawFrame, error) {
	w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		return rawFrame{}, err
	}
	if h[0]&0x80 == 0 || h[0]&0x70 != 0 || h[1]&0x80 != 0 {
		return rawFrame{}, fmt.Errorf("bad frame header % x: want final, no reserved bits, unmasked", h)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(w.br, b[:]); err != nil {
			return rawFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(w.br, b[:]); err != nil {
			return rawFrame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return rawFrame{}, fmt.Errorf("frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(w.br, p); err != nil {
		return rawFrame{}, err
	}
	return rawFrame{op: h[0] & 0x0f, payload: p}, nil
}

// send writes one masked client frame.
func (w *rawWS) send(op byte, payload []byte) {
	var key [4]byte
	rand.Read(key[:])
	b := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	default:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	if _, err := w.c.Write(b); err != nil {
		w.t.Errorf("send: %v", err)
	}
}

// oneObject decodes a text frame that must hold exactly one JSON object.
func oneObject(p []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(p))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, fmt.Errorf("frame %.80q is not a JSON object: %v", p, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("frame %.80q holds more than one JSON value", p)
	}
	return m, nil
}

// TestBurstBatching: bursts of events (one-reading and many-reading board
// frames) reach every browser as one frame per event, one JSON object per
// frame, in order, exactly once; pings from the browser are answered in
// between, and a close from the browser is answered with a close and then
// the end of the connection.
func TestBurstBatching(t *testing.T) {
	r := newRig(t)
	const browsers = 6
	const rounds = 40
	ws := make([]*rawWS, browsers)
	next := make([]uint64, browsers)
	for i := range ws {
		ws[i] = dialRaw(t, r, "/ws")
		f, err := ws[i].next()
		if err != nil {
			t.Fatal(err)
		}
		m, err := oneObject(f.payload)
		if err != nil || f.op != 1 || string(m["type"]) != `"snapshot"` {
			t.Fatalf("first frame: op %d %s %v, want a snapshot", f.op, f.payload, err)
		}
		json.Unmarshal(m["seq"], &next[i])
		next[i]++
	}
	value := json.RawMessage(`{"a":[1,2,3],"s":"x}{y"}`)
	for round := 0; round < rounds; round++ {
		// At most ~200 events per round: under the queue length of 256,
		// so a browser that reads as fast as it can is never dropped.
		burst := 0
		for j := 0; j < 20; j++ {
			r.link.Publish(gateway.Reading{Label: "one", Value: value})
			burst++
		}
		rs := make([]gateway.Reading, 150)
		for j := range rs {
			rs[j] = gateway.Reading{Label: fmt.Sprintf("l%d", j%7), Value: json.RawMessage(fmt.Sprint(j))}
		}
		r.link.Publish(rs...)
		burst += len(rs)
		for i, w := range ws {
			ping := []byte(fmt.Sprintf("p%d-%d", round, i))
			w.send(0x9, ping)
			pong := false
			for got := 0; got < burst || !pong; {
				f, err := w.next()
				if err != nil {
					t.Fatalf("browser %d round %d: %v", i, round, err)
				}
				switch f.op {
				case 0xA:
					if !bytes.Equal(f.payload, ping) {
						t.Fatalf("browser %d: pong %q, want %q", i, f.payload, ping)
					}
					pong = true
				case 0x1:
					m, err := oneObject(f.payload)
					if err != nil {
						t.Fatalf("browser %d: %v", i, err)
					}
					var seq uint64
					json.Unmarshal(m["seq"], &seq)
					if string(m["type"]) != `"event"` || seq != next[i] {
						t.Fatalf("browser %d: got %s, want event seq %d", i, f.payload, next[i])
					}
					next[i]++
					got++
				default:
					t.Fatalf("browser %d: unexpected frame op %d %q", i, f.op, f.payload)
				}
			}
		}
	}
	if n := r.hub.Counters().SlowConsumers.Load(); n != 0 {
		t.Fatalf("%d browsers dropped as slow", n)
	}
	for i, w := range ws {
		w.send(0x8, []byte{0x03, 0xe8}) // 1000
		f, err := w.next()
		if err != nil || f.op != 0x8 {
			t.Fatalf("browser %d: after its close, got op %d %v, want a close frame", i, f.op, err)
		}
		if _, err := w.next(); !errors.Is(err, io.EOF) {
			t.Fatalf("browser %d: after the close frames, got %v, want the end of the connection", i, err)
		}
	}
}

// TestFrameSizes: frames with 7-bit, 16-bit and 64-bit lengths, as a
// standard client reads them.
func TestFrameSizes(t *testing.T) {
	r := newRig(t)
	c := r.dial(t, "/ws", websocket.DefaultDialer)
	readMsg(t, c)
	for _, n := range []int{0, 40, 125, 126, 127, 65535 - 80, 65536, 200000} {
		v := json.RawMessage(`"` + strings.Repeat("z", n) + `"`)
		r.link.Publish(gateway.Reading{Label: "big", Value: v})
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		mt, p, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("value of %d bytes: %v", n, err)
		}
		var m struct{ Value string }
		if mt != websocket.TextMessage || json.Unmarshal(p, &m) != nil || len(m.Value) != n {
			t.Fatalf("value of %d bytes: got type %d, %d bytes", n, mt, len(p))
		}
	}
}

// TestWriterStress runs everything that writes to one browser at once under
// -race: broadcasts in bursts, the browser's pings (answered by gorilla's
// reader) and commands (answered by the writer), then a shutdown. Each
// event arrives once and in order until the close frame (1001).
func TestWriterStress(t *testing.T) {
	r := newRig(t)
	before := runtime.NumGoroutine()
	c := r.dial(t, "/ws", websocket.DefaultDialer)
	snap := readMsg(t, c)
	other := r.dial(t, "/ws", websocket.DefaultDialer) // a second writer's browser, read in bulk
	readMsg(t, other)

	drained := make(chan struct{})
	go func() { // the board link takes commands as fast as they come
		for {
			select {
			case <-r.cmds:
			case <-drained:
				return
			}
		}
	}()
	defer close(drained)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(2)
	go func() { // pings and commands from the browser
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c.WriteControl(websocket.PingMessage, []byte(fmt.Sprint(i)), time.Now().Add(time.Second))
			if i%4 == 0 {
				c.WriteJSON(map[string]any{"type": "command", "id": fmt.Sprint(i), "device": "board", "value": "toggle"})
			}
			time.Sleep(time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for {
			other.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, _, err := other.ReadMessage(); err != nil {
				return
			}
		}
	}()

	want := snap.Seq + 1
	answers := 0
	const rounds, burst = 100, 100 // 10k events (issue 13, attack 9)
	read := func() msg {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read after %d events: %v", want-snap.Seq-1, err)
		}
		if _, err := oneObject(p); err != nil {
			t.Fatal(err)
		}
		var m msg
		json.Unmarshal(p, &m)
		return m
	}
	for round := 0; round < rounds; round++ {
		for j := 0; j < burst; j++ {
			r.link.Publish(gateway.Reading{Label: "n", Value: json.RawMessage(fmt.Sprint(j))})
		}
		for got := 0; got < burst; {
			switch m := read(); m.Type {
			case "event":
				if m.Seq != want {
					t.Fatalf("got seq %d, want %d", m.Seq, want)
				}
				want++
				got++
			case "ack", "error":
				answers++
			default:
				t.Fatalf("unexpected %+v", m)
			}
		}
	}
	// Shutdown while pings and commands are still coming.
	r.hub.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
				t.Fatalf("after shutdown: %v, want close 1001", err)
			}
			break
		}
	}
	close(stop)
	wg.Wait()
	if answers == 0 {
		t.Errorf("no command was answered during %d rounds", rounds)
	}
	r.srv.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d before, %d after", before, runtime.NumGoroutine())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
