package contracttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/esp32gw/esp32gw/internal/boardtest"
	"github.com/esp32gw/esp32gw/internal/gwproc"
	"github.com/esp32gw/esp32gw/internal/mosquittotest"
	"github.com/esp32gw/esp32gw/internal/testgw"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// Attack tests against the binary (issue 13: defect 1, attacks 8 and 14).

// hostileDuration is how long a hostile client keeps at it: 15 s, 20 s in CI.
func hostileDuration() time.Duration {
	if os.Getenv("CI") != "" {
		return 20 * time.Second
	}
	return 15 * time.Second
}

// rssCeiling is how far the gateway's RSS may grow over its start: 256 MB,
// 640 MB for a -race build (shadow memory multiplies every allocation). The
// gateway's bounds (32 MiB of last values in all, 16 MiB of MQTT state
// waiting, 8 MiB of history queue, the replay ring) make a live heap under
// 96 MB; the Go runtime keeps up to about twice that as RSS.
// Unbounded growth (the defect: gigabytes) breaks it within the attack; the
// live heap (liveHeapCeiling) and the plateau check are the tighter bounds.
func rssCeiling() int64 {
	if raceBuild {
		return 640 << 20
	}
	return 256 << 20
}

// hostileEnv is the environment of the gateway under attack: the Go
// runtime logs every GC (GODEBUG=gctrace=1) so the test can read its live
// heap, which, unlike RSS, a -race build does not inflate.
func hostileEnv() []string {
	return []string{"GODEBUG=gctrace=1"}
}

// liveHeapCeiling bounds the gateway's live heap after a GC under attack.
const liveHeapCeiling = 96 // MB

var gcLineRe = regexp.MustCompile(`(?m)^gc \d+ @[^:]*: .* (\d+)->(\d+)->(\d+) MB`)

// liveHeap is the largest live heap after a GC the gateway logged (MB) and
// how many GCs it logged.
func liveHeap(g *testgw.Gateway) (peak, gcs int) {
	for _, m := range gcLineRe.FindAllStringSubmatch(g.Logs(), -1) {
		n, _ := strconv.Atoi(m[3])
		peak = max(peak, n)
		gcs++
	}
	return peak, gcs
}

// rss reads VmRSS of pid from /proc, in bytes.
func rss(t testing.TB, pid int) int64 {
	t.Helper()
	st, err := gwproc.ReadStatus(pid)
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		t.Skipf("no /proc: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return st.RSSKB << 10
}

// rssWatch samples the gateway's RSS every 100 ms until stop; peak returns
// the highest sample.
type rssWatch struct {
	start int64
	peak  atomic.Int64
	done  chan struct{}
	mu    sync.Mutex
	secs  []int64 // RSS at each whole second, MB
}

func watchRSS(t testing.TB, g *testgw.Gateway, stop <-chan struct{}) *rssWatch {
	w := &rssWatch{start: rss(t, g.Pid()), done: make(chan struct{})}
	w.peak.Store(w.start)
	pid := g.Pid()
	go func() {
		defer close(w.done)
		repeat(stop, 100*time.Millisecond, func(i int) bool {
			st, err := gwproc.ReadStatus(pid)
			if err != nil {
				return false
			}
			kb := st.RSSKB
			if kb<<10 > w.peak.Load() {
				w.peak.Store(kb << 10)
			}
			if (i+1)%10 == 0 {
				w.mu.Lock()
				w.secs = append(w.secs, kb>>10)
				w.mu.Unlock()
			}
			return true
		})
	}()
	return w
}

// check logs the RSS figures and returns what broke the bounds.
func (w *rssWatch) check(t testing.TB) (problems []string) {
	t.Helper()
	<-w.done
	peak := w.peak.Load()
	t.Logf("gateway RSS: start %.1f MB, peak %.1f MB (+%.1f MB; ceiling +%d MB)",
		float64(w.start)/(1<<20), float64(peak)/(1<<20), float64(peak-w.start)/(1<<20), rssCeiling()>>20)
	w.mu.Lock()
	secs := append([]int64(nil), w.secs...)
	w.mu.Unlock()
	t.Logf("gateway RSS each second (MB): %v", secs)
	// Bounded means it levels off: the last third of the attack does not
	// rise well above the middle third. (Not under -race: its shadow
	// memory keeps growing with allocations the GC has long freed; the
	// live heap check covers that build.)
	if n := len(secs); n >= 9 && !raceBuild {
		mid, last := slices.Max(secs[n/3:2*n/3]), slices.Max(secs[2*n/3:])
		if float64(last) > 1.25*float64(mid)+16 {
			problems = append(problems, fmt.Sprintf("the gateway's RSS keeps growing under hostile input: %d MB at most in the middle third of the attack, %d MB in the last", mid, last))
		}
	}
	if peak-w.start > rssCeiling() {
		problems = append(problems, fmt.Sprintf("the gateway's RSS grew by %.1f MB under hostile input, over the ceiling of %d MB", float64(peak-w.start)/(1<<20), rssCeiling()>>20))
	}
	return problems
}

// flowCounter counts a device's events reaching a browser, per second.
type flowCounter struct {
	mu      sync.Mutex
	start   time.Time
	perSec  []int
	corrupt []string
}

// countFlow reads r until stop, counting events of device; check, if not
// nil, validates each event's value.
func countFlow(r *testutil.WSReader, device string, stop <-chan struct{}, check func(json.RawMessage) error) (*flowCounter, <-chan struct{}) {
	fc := &flowCounter{start: time.Now()}
	done := make(chan struct{})
	corrupt := func(s string) {
		fc.mu.Lock()
		fc.corrupt = append(fc.corrupt, s)
		fc.mu.Unlock()
	}
	go func() {
		defer close(done)
		eachJSON(r, stop, corrupt, func(m struct {
			Type, Device string
			Value        json.RawMessage
		}) {
			if m.Type != "event" || m.Device != device {
				return
			}
			fc.mu.Lock()
			if check != nil {
				if err := check(m.Value); err != nil {
					fc.corrupt = append(fc.corrupt, err.Error())
				}
			}
			s := int(time.Since(fc.start) / time.Second)
			for len(fc.perSec) <= s {
				fc.perSec = append(fc.perSec, 0)
			}
			fc.perSec[s]++
			fc.mu.Unlock()
		})
	}()
	return fc, done
}

// checkEverySecond fails if any whole second of the run had no event.
func (fc *flowCounter) checkEverySecond(t testing.TB, d time.Duration) {
	t.Helper()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	whole := int(d / time.Second)
	counts := append([]int(nil), fc.perSec...)
	for len(counts) < whole {
		counts = append(counts, 0)
	}
	counts = counts[:whole]
	t.Logf("well-behaved readings reaching the browser per second: %v", counts)
	// Readings keep flowing: no three seconds in a row without one (a
	// -race gateway under this flood on two shared cores may pause a
	// second now and then; a starved board would show as a long gap).
	for i := 0; i+3 <= len(counts); i++ {
		if counts[i]+counts[i+1]+counts[i+2] == 0 {
			t.Errorf("seconds %d–%d of the attack: no reading of the well-behaved board reached the browser", i, i+2)
		}
	}
	for _, c := range fc.corrupt {
		t.Errorf("corrupt frame: %s", c)
	}
}

// goodBoard sends {"label":"t","value":N} 20 times a second until stop.
func goodBoardLoop(t testing.TB, b *board, stop <-chan struct{}) {
	repeat(stop, 50*time.Millisecond, func(i int) bool {
		b.wmu.Lock()
		b.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		err := b.c.WriteMessage(1, []byte(fmt.Sprintf(`{"label":"t","value":%d}`, i)))
		b.wmu.Unlock()
		if err != nil {
			t.Errorf("the well-behaved board's write failed: %v", err)
			return false
		}
		return true
	})
}

// hostileFrame is a ~60 KB array of readings cycling through 300 labels
// whose values are alternately limits.value_bytes (4096) and one over.
func hostileFrame(n *int) []byte {
	var sb strings.Builder
	sb.WriteByte('[')
	for i := 0; i < 14; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		k := *n
		*n++
		size := 4096 - 2 // JSON string of exactly 4096 bytes
		if k%2 == 1 {
			size++ // 4097: dropped and counted
		}
		fmt.Fprintf(&sb, `{"label":"l%d","value":"%s"}`, k%300, strings.Repeat(string(rune('a'+k%26)), size))
	}
	sb.WriteByte(']')
	return []byte(sb.String())
}

// Defect 1: a ws-listen board cycling 300 labels of ~4 KB values in ~60 KB
// frames. The gateway's memory stays bounded, another board's readings keep
// reaching a browser every second, and the oversized values are counted.
func TestHostileBoardMemoryBounded(t *testing.T) {
	// Not parallel: the attack loads both cores, and the timed contract
	// tests running beside it would measure the machine, not the gateway.
	g := testgw.StartEnv(t, header("gw1", "")+`  - id: evil
    transport: ws-listen
    token: "evil-token-0123456789"
  - id: good
    transport: ws-listen
    token: "good-token-0123456789"
`, hostileEnv()...)
	evil := dialBoard(t, g, "evil", "evil-token-0123456789", true)
	good := dialBoard(t, g, "good", "good-token-0123456789", true)
	waitOnline(t, g, "evil", true, 5*time.Second)
	waitOnline(t, g, "good", true, 5*time.Second)
	bc, r := browser(t, g, "/ws")
	r.NextMsg(t, 5*time.Second) // the snapshot
	sendJSON(t, bc, map[string]any{"type": "subscribe", "devices": []string{"good"}})
	dropped0 := metricValue(t, g, "esp32gw_dropped_readings_total")

	d := hostileDuration()
	stop := make(chan struct{})
	w := watchRSS(t, g, stop)
	fc, readDone := countFlow(r, "good", stop, nil)
	var wg sync.WaitGroup
	wg.Go(func() { goodBoardLoop(t, good, stop) })
	var frames, bytesSent atomic.Int64
	wg.Go(func() {
		n := 0
		repeat(stop, 0, func(int) bool {
			f := hostileFrame(&n)
			evil.wmu.Lock()
			evil.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			err := evil.c.WriteMessage(1, f)
			evil.wmu.Unlock()
			if err != nil {
				t.Errorf("the hostile board's link broke: %v", err)
				return false
			}
			frames.Add(1)
			bytesSent.Add(int64(len(f)))
			return true
		})
	})
	time.Sleep(d)
	close(stop)
	wg.Wait()
	<-readDone
	t.Logf("hostile board sent %d frames (%.0f MB)", frames.Load(), float64(bytesSent.Load())/(1<<20))
	for _, p := range w.check(t) {
		t.Error(p)
	}
	fc.checkEverySecond(t, d)
	if dropped := metricValue(t, g, "esp32gw_dropped_readings_total"); dropped <= dropped0 {
		t.Errorf("esp32gw_dropped_readings_total %v after the attack, was %v: oversized values are not counted", dropped, dropped0)
	} else {
		t.Logf("esp32gw_dropped_readings_total %v → %v", dropped0, dropped)
	}
	if strings.Contains(g.Logs(), "panic:") {
		t.Errorf("the gateway panicked:\n%s", g.Logs())
	}
	for _, p := range gctrace(t, g) {
		t.Error(p)
	}
}

// gctrace checks the gateway's live heap after its GCs against
// liveHeapCeiling.
func gctrace(t testing.TB, g *testgw.Gateway) (problems []string) {
	t.Helper()
	peak, gcs := liveHeap(g)
	t.Logf("gateway live heap after GC: peak %d MB over %d GCs (ceiling %d MB)", peak, gcs, liveHeapCeiling)
	if gcs == 0 {
		t.Errorf("the gateway logged no GC (GODEBUG=gctrace=1): cannot read its live heap")
	}
	if peak > liveHeapCeiling {
		problems = append(problems, fmt.Sprintf("the gateway's live heap reached %d MB under hostile input, over the ceiling of %d MB", peak, liveHeapCeiling))
	}
	return problems
}

// Defect 1 in cluster mode: an MQTT client publishes metas for 1100 remote
// devices and big values on many labels of each. RSS stays bounded and a
// local board's readings keep reaching a browser every second.
func TestHostileMQTTPublisherMemoryBounded(t *testing.T) {
	// Not parallel: the attack loads both cores, and the timed contract
	// tests running beside it would measure the machine, not the gateway.
	testgw.Require(t, "mosquitto")
	b := mosquittotest.Start(t, mosquittotest.Options{})
	g := testgw.StartEnv(t, header("gw-b", mqttConfig(b, "gw-b", "  cluster: true\n"))+`  - id: lb
    transport: ws-listen
    token: "lb-token-0123456789"
`, hostileEnv()...)
	local := dialBoard(t, g, "lb", "lb-token-0123456789", true)
	waitOnline(t, g, "lb", true, 5*time.Second)
	bc, r := browser(t, g, "/ws")
	r.NextMsg(t, 5*time.Second)
	sendJSON(t, bc, map[string]any{"type": "subscribe", "devices": []string{"lb"}})

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(fmt.Sprintf("evil-%d", time.Now().UnixNano()%1e6)).SetAutoReconnect(false))
	if tk := pub.Connect(); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt connect: %v", tk.Error())
	}
	t.Cleanup(func() { pub.Disconnect(100) })

	const devices = 1100
	d := hostileDuration()
	stop := make(chan struct{})
	w := watchRSS(t, g, stop)
	fc, readDone := countFlow(r, "lb", stop, nil)
	var wg sync.WaitGroup
	wg.Go(func() { goodBoardLoop(t, local, stop) })
	var published atomic.Int64
	wg.Go(func() {
		for i := 0; i < devices; i++ {
			pub.Publish(fmt.Sprintf("esp32gw/evil%d/meta", i), 0, true,
				fmt.Sprintf(`{"gateway":"gw-evil","name":"%s","transport":"sim","commands":[]}`, strings.Repeat("n", 200)))
			// Online, or the gateway ignores the device's readings.
			pub.Publish(fmt.Sprintf("esp32gw/evil%d/status", i), 0, true, "online")
			published.Add(2)
		}
		// Device by device, 300 labels each (256 is the cap): the worst
		// case for last values.
		repeat(stop, 0, func(n int) bool {
			size := 4096 - 2 + n%2 // values just under/over value_bytes
			if n%7 == 0 {
				size = 60 << 10 // and some far over
			}
			label := fmt.Sprintf("l%d%s", n%300, strings.Repeat("L", n%64))
			tk := pub.Publish(fmt.Sprintf("esp32gw/evil%d/%s", (n/300)%devices, label), 0, false,
				`"`+strings.Repeat("v", size)+`"`)
			published.Add(1)
			if n%64 == 0 {
				tk.WaitTimeout(5 * time.Second) // let the client's queue drain now and then
			}
			return true
		})
	})
	time.Sleep(d)
	close(stop)
	wg.Wait()
	<-readDone
	t.Logf("hostile MQTT client published %d messages (values for about %d devices × 300 labels)", published.Load(), published.Load()/300)
	problems := w.check(t)
	fc.checkEverySecond(t, d)
	if code, _ := g.Get("/api/devices/evil0"); code != 200 {
		t.Errorf("remote device evil0 was not imported (%d): the attack did not reach the gateway", code)
	}
	if strings.Contains(g.Logs(), "panic:") {
		t.Errorf("the gateway panicked:\n%s", g.Logs())
	}
	problems = append(problems, gctrace(t, g)...)
	// Open today: last values are bounded per device (256 labels × 4 KB),
	// not in total, and cluster mode imports up to 1024 devices: about
	// 1 GiB of values one broker client can make the gateway hold.
	for _, p := range problems {
		t.Error(p)
	}
}

// Attack 8: 500 sockets opened and closed quickly and a browser sending
// commands and junk as fast as it can. Other browsers keep receiving events,
// the flooder is rate-limited, and connection gauges return to baseline.
func TestFloods(t *testing.T) {
	// Not parallel: the attack loads both cores, and the timed contract
	// tests running beside it would measure the machine, not the gateway.
	g := testgw.Start(t, header("gw1", "")+`  - id: fb
    transport: ws-listen
    token: "fb-token-0123456789"
    commands: [toggle]
`)
	good := dialBoard(t, g, "fb", "fb-token-0123456789", true)
	waitOnline(t, g, "fb", true, 5*time.Second)
	_, r := browser(t, g, "/ws")
	r.NextMsg(t, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	baseBrowsers := metricValue(t, g, "esp32gw_browsers_connected")
	baseConns := metricValue(t, g, "esp32gw_connections_open")
	t.Logf("baseline: browsers_connected %v, connections_open %v", baseBrowsers, baseConns)

	const d = 4 * time.Second
	stop := make(chan struct{})
	fc, readDone := countFlow(r, "fb", stop, nil)
	var wg sync.WaitGroup
	wg.Go(func() { goodBoardLoop(t, good, stop) })

	// 500 sockets: /ws upgrades and bare TCP connects, from several
	// loopback addresses (connections_per_ip is 64), closed at once.
	var opened, refused atomic.Int64
	wg.Go(func() {
		var inner sync.WaitGroup
		for w := 0; w < 10; w++ {
			inner.Go(func() {
				src := fmt.Sprintf("127.0.0.%d", 10+w)
				for i := 0; i < 50; i++ {
					if i%2 == 0 {
						c, err := dialFrom(src, g.Addr)
						if err == nil {
							opened.Add(1)
							c.Close()
						} else {
							refused.Add(1)
						}
						continue
					}
					c, resp, err := dial(g.WSURL("/ws"), g.Header())
					if err != nil {
						refused.Add(1)
						_ = resp
						continue
					}
					opened.Add(1)
					c.Close()
				}
			})
		}
		inner.Wait()
	})

	// The flooder: commands and junk as fast as the socket takes them.
	fcConn, fr := browser(t, g, "/ws")
	fr.NextMsg(t, 5*time.Second)
	var rateLimited, otherErrors, acks atomic.Int64
	frDone := make(chan struct{})
	go func() {
		defer close(frDone)
		for f := range fr.Frames() {
			var m struct{ Type, Error, Message string }
			json.Unmarshal(f, &m)
			switch m.Type {
			case "error":
				if strings.Contains(string(f), "rate-limited") {
					rateLimited.Add(1)
				} else {
					otherErrors.Add(1)
				}
			case "ack":
				acks.Add(1)
			}
		}
	}()
	var sent atomic.Int64
	wg.Go(func() {
		repeat(stop, 0, func(i int) bool {
			var b []byte
			if i%4 == 3 {
				b = []byte(`{"type":"bogus","id":` + strconv.Itoa(i) + `}`)
			} else {
				b = []byte(fmt.Sprintf(`{"type":"command","id":%d,"device":"fb","label":"led","value":"toggle"}`, i))
			}
			fcConn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := fcConn.WriteMessage(1, b); err != nil {
				t.Logf("the flooder was cut off after %d messages: %v", i, err)
				return false
			}
			sent.Add(1)
			return true
		})
	})
	time.Sleep(d)
	close(stop)
	wg.Wait()
	<-readDone
	fcConn.Close()
	<-frDone
	t.Logf("sockets: %d opened and closed, %d refused; flooder sent %d messages: %d rate-limited errors, %d other errors, %d acks",
		opened.Load(), refused.Load(), sent.Load(), rateLimited.Load(), otherErrors.Load(), acks.Load())
	fc.checkEverySecond(t, d)
	if rateLimited.Load() == 0 {
		t.Errorf("the flooder got no rate-limited error")
	}
	if opened.Load() < 250 {
		t.Errorf("only %d of 500 flood sockets opened", opened.Load())
	}
	// Everything the flood opened is closed again: the gauges come back.
	testutil.Eventually(t, 20*time.Second, "connection gauges back to baseline", func() bool {
		return metricValue(t, g, "esp32gw_browsers_connected") <= baseBrowsers &&
			metricValue(t, g, "esp32gw_connections_open") <= baseConns
	})
	// And the first browser still receives events after the flood.
	good.send(t, `{"label":"after","value":1}`)
	r.WaitFor(t, 5*time.Second, "an event after the flood", func(m msg) bool { return str(m, "label") == "after" })
}

// hostileProxy forwards 127.0.0.1:PORT to target hostilely: every byte is
// its own write with a small delay, each chunk is held ~100 ms, and now and
// then a connection is reset in the middle of whatever it carries.
type hostileProxy struct {
	target string
	ln     net.Listener
	resets atomic.Int64
	conns  atomic.Int64
	mu     sync.Mutex
	open   map[net.Conn]struct{}
	wg     sync.WaitGroup
	reset  atomic.Bool // reset connections (mid-chunk) now and then
}

func newHostileProxy(t testing.TB, target string) *hostileProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &hostileProxy{target: target, ln: ln, open: map[net.Conn]struct{}{}}
	p.reset.Store(true)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.open {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *hostileProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		p.conns.Add(1)
		p.mu.Lock()
		p.open[in], p.open[out] = struct{}{}, struct{}{}
		p.mu.Unlock()
		// After 2–5 s the pair is reset in the middle of the next chunk
		// either way carries (half of it written); the timer is the
		// fallback for an idle link.
		life := time.Now().Add(time.Duration(2000+rand.Intn(3000)) * time.Millisecond)
		var once sync.Once
		rst := func() {
			once.Do(func() {
				p.resets.Add(1)
				for _, c := range []net.Conn{in, out} {
					if tc, ok := c.(*net.TCPConn); ok {
						tc.SetLinger(0) // RST, not FIN
					}
					c.Close()
				}
			})
		}
		kill := time.AfterFunc(time.Until(life)+3*time.Second, func() {
			if p.reset.Load() {
				rst()
			}
		})
		cut := func(i, n int) bool {
			if i == n/2 && n >= 8 && p.reset.Load() && time.Now().After(life) {
				rst()
				return true
			}
			return false
		}
		p.wg.Add(2)
		go p.pipe(out, in, kill, cut)
		go p.pipe(in, out, kill, cut)
	}
}

func (p *hostileProxy) pipe(dst, src net.Conn, kill *time.Timer, cut func(i, n int) bool) {
	defer p.wg.Done()
	defer func() {
		kill.Stop()
		dst.Close()
		src.Close()
		p.mu.Lock()
		delete(p.open, dst)
		delete(p.open, src)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			time.Sleep(100 * time.Millisecond) // latency
			for i := 0; i < n; i++ {
				if cut(i, n) {
					return
				}
				if _, werr := dst.Write(buf[i : i+1]); werr != nil {
					return
				}
				if i%64 == 63 {
					time.Sleep(time.Millisecond) // small delays between segments
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// Attack 14: a hostile network between a ws-dial board and the gateway.
// Readings arrive intact, the link comes back after each reset, and the
// gateway never panics.
func TestHostileNetworkProxy(t *testing.T) {
	// Not parallel: the attack loads both cores, and the timed contract
	// tests running beside it would measure the machine, not the gateway.
	bd := boardtest.NewBoard(t)
	p := newHostileProxy(t, bd.Addr())
	g := testgw.Start(t, header("gw1", "")+`  - id: hn
    transport: ws-dial
    url: "ws://`+p.ln.Addr().String()+`/ws"
`)
	_, r := browser(t, g, "/ws")
	r.NextMsg(t, 5*time.Second)

	// Values the board sends: a count, and a longer string whose content
	// is checked byte for byte.
	payload := func(n int) string { return fmt.Sprintf("v%d-%s", n, strings.Repeat(strconv.Itoa(n%10), 300)) }
	var mu sync.Mutex
	var intact, onlines, offlines int
	var bad []string
	const d = 15 * time.Second
	stop := make(chan struct{})
	readDone := make(chan struct{})
	notJSON := func(s string) {
		mu.Lock()
		bad = append(bad, s)
		mu.Unlock()
	}
	go func() {
		defer close(readDone)
		eachJSON(r, stop, notJSON, func(m struct {
			Type, Device, Label string
			Value               json.RawMessage
			Online              *bool
		}) {
			if m.Device != "hn" {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case m.Type == "status" && m.Online != nil && *m.Online:
				onlines++
			case m.Type == "status" && m.Online != nil:
				offlines++
			case m.Type == "event" && m.Label == "blob":
				var s string
				if json.Unmarshal(m.Value, &s) != nil {
					bad = append(bad, fmt.Sprintf("blob value not a string: %.100s", m.Value))
					break
				}
				var n int
				if _, err := fmt.Sscanf(s, "v%d-", &n); err != nil || s != payload(n) {
					bad = append(bad, fmt.Sprintf("blob value corrupted: %.100q", s))
					break
				}
				intact++
			}
		})
	}()
	var wg sync.WaitGroup
	wg.Go(func() {
		repeat(stop, 100*time.Millisecond, func(n int) bool {
			bd.TextAll(1, boardtest.Frame("blob", payload(n)))
			return true
		})
	})
	time.Sleep(d)
	// Stop resetting; the link must come back and carry a reading.
	p.reset.Store(false)
	mu.Lock()
	before := intact
	mu.Unlock()
	deadline := time.Now().Add(40 * time.Second)
	for {
		mu.Lock()
		got := intact
		mu.Unlock()
		if got > before+3 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("no reading arrived within 40 s after the resets stopped")
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	<-readDone
	mu.Lock()
	defer mu.Unlock()
	t.Logf("proxy: %d connections, %d resets; browser: %d intact readings, %d online / %d offline statuses",
		p.conns.Load(), p.resets.Load(), intact, onlines, offlines)
	for _, b := range bad {
		t.Errorf("%s", b)
	}
	if intact == 0 {
		t.Errorf("no reading arrived intact through the hostile network")
	}
	if p.resets.Load() > 0 && p.conns.Load() < 2 {
		t.Errorf("the gateway did not reconnect after %d resets (%d connections)", p.resets.Load(), p.conns.Load())
	}
	if strings.Contains(g.Logs(), "panic:") {
		t.Errorf("the gateway panicked:\n%s", g.Logs())
	}
}
