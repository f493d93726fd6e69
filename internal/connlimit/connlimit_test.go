package connlimit

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// serve accepts on l until it is closed, handing each connection to conns.
func serve(t *testing.T, l *Listener) <-chan net.Conn {
	conns := make(chan net.Conn, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return conns
}

func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refused reports whether c was answered with the 503 and closed.
func refused(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	return err == nil && resp.StatusCode == http.StatusServiceUnavailable
}

func TestCaps(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, Options{PerAddr: 2, Total: 3, Refusal: HTTP503})
	conns := serve(t, l)
	addr := ln.Addr().String()
	accept := func() net.Conn {
		select {
		case c := <-conns:
			return c
		case <-time.After(2 * time.Second):
			t.Fatal("not accepted")
		}
		return nil
	}

	dialFrom(t, "127.0.0.2", addr)
	a2 := accept()
	dialFrom(t, "127.0.0.2", addr)
	accept()
	if !refused(t, dialFrom(t, "127.0.0.2", addr)) {
		t.Fatal("third connection from one address not refused with 503")
	}
	dialFrom(t, "127.0.0.3", addr)
	accept()
	if !refused(t, dialFrom(t, "127.0.0.4", addr)) {
		t.Fatal("fourth connection in all not refused with 503")
	}
	if p, tot := l.Refused(); p != 1 || tot != 1 {
		t.Fatalf("Refused() = %d, %d; want 1, 1", p, tot)
	}
	if n := l.Open(); n != 3 {
		t.Fatalf("Open() = %d, want 3", n)
	}
	a2.Close()
	a2.Close() // released once only
	if n := l.Open(); n != 2 {
		t.Fatalf("Open() after a close = %d, want 2", n)
	}
	dialFrom(t, "127.0.0.2", addr)
	accept()
}

func TestWriteStallUntilHijacked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, Options{WriteStall: 200 * time.Millisecond})
	conns := serve(t, l)
	dialFrom(t, "127.0.0.1", ln.Addr().String()) // never reads
	c := <-conns
	big := make([]byte, 64<<20)
	start := time.Now()
	if _, err := c.Write(big); err == nil {
		t.Fatal("a write to a client that never reads succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the stalled write failed after %v, want about 200 ms", d)
	}

	dialFrom(t, "127.0.0.1", ln.Addr().String())
	c = <-conns
	MarkHijacked(c)
	c.SetWriteDeadline(time.Now().Add(time.Second)) // the WebSocket's own deadline stands
	start = time.Now()
	c.Write(big)
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("a hijacked connection's write failed after %v: the stall bound overrode its own deadline", d)
	}
}
