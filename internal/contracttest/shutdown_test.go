package contracttest

import (
	"syscall"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/testgw"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

func TestShutdown(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			srv := newDialServer(t)
			g := testgw.Start(t, header("gw1", "")+`  - id: demo
    transport: sim
    sim: {board: tutorial, interval: 50ms}
  - id: lb
    transport: ws-listen
    token: "lb-token-0123456789"
  - id: kd
    transport: ws-dial
    url: "`+srv.url()+`"
`)
			b := dialBoard(t, g, "lb", "lb-token-0123456789", true)
			srv.accept(t, 5*time.Second)
			waitOnline(t, g, "lb", true, 5*time.Second)
			waitOnline(t, g, "kd", true, 5*time.Second)
			_, r1 := browser(t, g, "/ws")
			r1.NextMsg(t, 5*time.Second)
			_, r2 := browser(t, g, "/ws/devices/demo")
			r2.Next(t, 5*time.Second)
			var err error
			var took time.Duration
			if sig == syscall.SIGINT {
				err, took = g.Stop()
			} else {
				err, took = g.Terminate()
			}
			if err != nil {
				t.Errorf("%v: exit %v, want 0", sig, err)
			}
			t.Logf("%v: exit after %v", sig, took)
			if took > 5*time.Second {
				t.Errorf("%v: exit took %v, want within 5 s", sig, took)
			}
			for name, r := range map[string]*testutil.WSReader{"/ws": r1, "/ws/devices/demo": r2} {
				e, ok := r.Closed(2 * time.Second)
				if !ok {
					t.Errorf("%s still open after exit", name)
					continue
				}
				if code, _ := closeCode(e); code < 0 {
					t.Errorf("%s ended without a close frame: %v", name, e)
				}
			}
			if _, ok := b.r.Closed(2 * time.Second); !ok {
				t.Errorf("ws-listen board link still open after exit")
			}
		})
	}
}
