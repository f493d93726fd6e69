package web_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
)

// benchBrowser is a browser that costs the benchmark as little as
// possible: a raw socket after the handshake, counting whole frames
// without allocating, so allocs/op and the gateway's CPU are what show.
func benchBrowser(b *testing.B, r *rig) (net.Conn, *bufio.Reader) {
	b.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(r.http.URL, "http://"))
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Authorization: Bearer %s\r\n\r\n", token)
	br := bufio.NewReaderSize(c, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		b.Fatalf("handshake: %v %v", resp, err)
	}
	return c, br
}

// skipFrame reads past one server frame.
func skipFrame(br *bufio.Reader) error {
	if _, err := br.ReadByte(); err != nil {
		return err
	}
	l, err := br.ReadByte()
	if err != nil {
		return err
	}
	n := int(l & 0x7f)
	if n >= 126 {
		ext := 2
		if n == 127 {
			ext = 8
		}
		n = 0
		for i := 0; i < ext; i++ {
			c, err := br.ReadByte()
			if err != nil {
				return err
			}
			n = n<<8 | int(c)
		}
	}
	_, err = br.Discard(n)
	return err
}

// BenchmarkFanout measures one board reading delivered to N browsers over
// loopback WebSockets: one op is one reading, so ns/op grows with N and
// ns/delivery is what each browser costs. allocs/op counts the gateway's
// (the browsers allocate nothing), so it must not grow with N. The board
// publishes in batches of 64 and waits until every browser has the batch,
// so no browser falls behind its queue (which would get it disconnected).
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("browsers=%d", n), func(b *testing.B) {
			r := newRig(b)
			var received atomic.Int64
			var wg sync.WaitGroup
			conns := make([]net.Conn, n)
			for i := range conns {
				c, br := benchBrowser(b, r)
				conns[i] = c
				if err := skipFrame(br); err != nil { // the snapshot
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for skipFrame(br) == nil {
						received.Add(1)
					}
				}()
			}
			value := json.RawMessage(`21.5`)
			b.ReportAllocs()
			b.ResetTimer()
			sent := 0
			for sent < b.N {
				batch := min(64, b.N-sent)
				for j := 0; j < batch; j++ {
					r.link.Publish(gateway.Reading{Label: "temp", Value: value})
				}
				sent += batch
				want := int64(sent * n)
				deadline := time.Now().Add(30 * time.Second)
				for received.Load() < want {
					if time.Now().After(deadline) {
						b.Fatalf("browsers received %d of %d frames", received.Load(), want)
					}
					runtime.Gosched()
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
			for _, c := range conns {
				c.Close()
			}
			wg.Wait()
		})
	}
}

// BenchmarkIdleBrowser measures the memory one idle /ws browser holds:
// heap and goroutine stacks in use after 500 have connected and got their
// snapshot, minus before, per browser. The browsers are raw sockets with
// nothing but their file descriptor on the client side (a few hundred
// bytes of the figure).
func BenchmarkIdleBrowser(b *testing.B) {
	const n = 500
	inUse := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse + ms.StackInuse
	}
	for i := 0; i < b.N; i++ {
		r := newRig(b)
		before := inUse()
		conns := make([]net.Conn, n)
		for j := range conns {
			c, br := benchBrowser(b, r)
			if err := skipFrame(br); err != nil {
				b.Fatal(err)
			}
			conns[j] = c
		}
		// Let every connection settle (a writer that ends, buffers freed).
		time.Sleep(200 * time.Millisecond)
		after := inUse()
		b.ReportMetric(float64(after-before)/n, "B/browser")
		b.ReportMetric(float64(runtime.NumGoroutine())/n, "goroutines/browser")
		for _, c := range conns {
			c.Close()
		}
		for _, c := range conns {
			io.Copy(io.Discard, c)
		}
	}
}
