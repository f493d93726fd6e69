package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/connlimit"
)

// HTTP server timeouts (DESIGN.md "Security defaults": every server timeout
// is set). WebSockets are not cut by them: gorilla clears the deadlines at
// the upgrade, and each WebSocket's writer and reader set their own.
const (
	// httpHeaderWait: slowloris; a request's headers must all arrive this fast.
	httpHeaderWait = 10 * time.Second
	// httpReadWait: bodies are small (commands, a history import).
	httpReadWait = 30 * time.Second
	// httpIdleWait: a keep-alive connection with no request is closed.
	httpIdleWait = 120 * time.Second
	// httpWriteStall: one write to a client that takes no data for this long
	// fails and the connection is closed (a client that never reads). A
	// per-write bound rather than http.Server.WriteTimeout, which would cut
	// a long export that is being read.
	httpWriteStall = 10 * time.Second
	// extraConns: connections beyond limits.browsers in the total cap, for
	// boards, API clients and page loads. The total cap is
	// limits.browsers + extraConns.
	extraConns = 256
)

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: httpHeaderWait,
		ReadTimeout:       httpReadWait, // WebSockets clear this after the upgrade
		IdleTimeout:       httpIdleWait,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateHijacked {
				connlimit.MarkHijacked(c) // its WebSocket sets its own deadlines
			}
		},
	}
}

// limitConns caps ln's connections: limits.connections_per_ip per address,
// limits.browsers + extraConns in all. A refused plain-HTTP connection gets
// a minimal 503; under TLS it is just closed.
func limitConns(ln net.Listener, l gateway.LimitsConfig, tlsOn bool) *connlimit.Listener {
	o := connlimit.Options{PerAddr: l.ConnectionsPerIP, Total: l.Browsers + extraConns,
		Refusal: connlimit.HTTP503, WriteStall: httpWriteStall}
	if tlsOn {
		o.Refusal = nil
	}
	return connlimit.New(ln, o)
}

// connMetrics adds the HTTP listener's counters to /metrics.
type connMetrics struct{ g *runningGateway }

func (m connMetrics) WriteMetrics(w io.Writer) {
	l := m.g.conns
	if l == nil {
		return
	}
	perIP, total := l.Refused()
	fmt.Fprintf(w, "# HELP esp32gw_connections_open Open HTTP and WebSocket connections.\n# TYPE esp32gw_connections_open gauge\nesp32gw_connections_open %d\n", l.Open())
	fmt.Fprintf(w, "# HELP esp32gw_connections_refused_total Connections refused over limits.connections_per_ip (per_ip) or the total cap (total).\n# TYPE esp32gw_connections_refused_total counter\n")
	fmt.Fprintf(w, "esp32gw_connections_refused_total{reason=\"per_ip\"} %d\nesp32gw_connections_refused_total{reason=\"total\"} %d\n", perIP, total)
}
