// Package web serves everything a browser or HTTP client talks to.
package web

import (
	"io"
	"log/slog"
	"net/http"

	"github.com/esp32gw/esp32gw/gateway"
)

// MetricsWriter adds Prometheus text lines to /metrics (e.g. the MQTT bridge).
type MetricsWriter interface{ WriteMetrics(w io.Writer) }

// Options configure the web server.
type Options struct {
	Hub            *gateway.Hub
	AuthMode       string // token | none
	Token          string
	AllowedOrigins []string
	Logger         *slog.Logger
	Metrics        []MetricsWriter
	Version        string
}

// Server is the browser-facing side.
type Server struct{ o Options }

// New returns the server.
func New(o Options) *Server { return &Server{o: o} }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }

// Wait blocks until every WebSocket connection has ended.
func (s *Server) Wait() {}
