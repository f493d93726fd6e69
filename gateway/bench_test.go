package gateway

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// BenchmarkPublish measures events/s through the hub (seq, history, encode
// once, fan-out) with subscribers that keep up, each drained by its own
// goroutine as a browser's writer would. One op is one accepted reading; the
// publisher is paced so no subscriber falls behind its queue.
func BenchmarkPublish(b *testing.B) {
	for _, subs := range []int{0, 10, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			h := newTestHub(b, Options{}, DeviceInfo{ID: "a"})
			l := mustAttach(b, h, "a", nil)
			var wg sync.WaitGroup
			ss := make([]*Subscription, subs)
			for i := range ss {
				s, _, err := h.Subscribe(-1, 4096)
				if err != nil {
					b.Fatal(err)
				}
				ss[i] = s
				wg.Go(func() {
					for {
						select {
						case <-s.C:
						case <-s.Done():
							return
						}
					}
				})
			}
			labels := []string{"temperature", "humidity", "count", "ledStatus"}
			values := []Reading{r("", "21.53"), r("", "48.2"), r("", "12345"), r("", `"LED ON"`)}
			for i := range values {
				values[i].Label = labels[i]
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l.Publish(values[i%len(values)])
				if i%64 == 63 {
					// Pace on the slowest subscriber, as the whole system
					// would run at its pace; it must never be dropped.
					for _, s := range ss {
						for len(s.C) > 1024 {
							runtime.Gosched()
						}
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if dropped := h.Counters().SlowConsumers.Load(); dropped > 0 {
				b.Fatalf("%d subscribers dropped: the figures would not include their cost", dropped)
			}
			h.Close()
			wg.Wait()
		})
	}
}

// BenchmarkPublishQueue is BenchmarkPublish with queue subscribers
// (SubscribeQueue), as the web layer's browsers are: each drained in
// batches with Take when woken, as a browser's writer does.
func BenchmarkPublishQueue(b *testing.B) {
	for _, subs := range []int{10, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			h := newTestHub(b, Options{}, DeviceInfo{ID: "a"})
			l := mustAttach(b, h, "a", nil)
			var wg sync.WaitGroup
			ss := make([]*Subscription, subs)
			for i := range ss {
				wake := make(chan struct{}, 1)
				s, _, err := h.SubscribeQueue(-1, 4096, func() {
					select {
					case wake <- struct{}{}:
					default:
					}
				})
				if err != nil {
					b.Fatal(err)
				}
				ss[i] = s
				wg.Go(func() {
					var batch []*Message
					for {
						select {
						case <-wake:
							for {
								batch = s.Take(batch[:0], 128)
								clear(batch)
								if len(batch) < 128 {
									break
								}
							}
						case <-s.Done():
							return
						}
					}
				})
			}
			values := []Reading{r("temperature", "21.53"), r("humidity", "48.2"), r("count", "12345"), r("ledStatus", `"LED ON"`)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l.Publish(values[i%len(values)])
				if i%64 == 63 {
					for _, s := range ss {
						for s.Queued() > 1024 {
							runtime.Gosched()
						}
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if dropped := h.Counters().SlowConsumers.Load(); dropped > 0 {
				b.Fatalf("%d subscribers dropped: the figures would not include their cost", dropped)
			}
			h.Close()
			wg.Wait()
		})
	}
}
