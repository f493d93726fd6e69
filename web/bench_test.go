package web_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/gateway"
)

// BenchmarkFanout measures events per second from a board link to N real
// browsers over loopback WebSockets, each event encoded once. The board
// publishes in batches of 64 and waits until every browser has the batch, so
// no browser falls behind its queue (which would get it disconnected).
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("browsers=%d", n), func(b *testing.B) {
			r := newRig(b)
			var received atomic.Int64
			var wg sync.WaitGroup
			conns := make([]*websocket.Conn, n)
			for i := range conns {
				c := r.dial(b, "/ws", websocket.DefaultDialer)
				conns[i] = c
				c.SetReadDeadline(time.Now().Add(time.Minute))
				var first struct{ Type string }
				c.ReadJSON(&first)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						if _, _, err := c.ReadMessage(); err != nil {
							return
						}
						received.Add(1)
					}
				}()
			}
			value := json.RawMessage(`21.5`)
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
					time.Sleep(50 * time.Microsecond)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "frames/s")
			for _, c := range conns {
				c.Close()
			}
			wg.Wait()
		})
	}
}
