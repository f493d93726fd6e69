// Package web serves everything a browser or HTTP client talks to: the
// embedded dashboard, the /ws event stream, the per-device compatibility
// endpoint, the JSON API, auth, /healthz and /metrics.
//
// Each WebSocket connection runs one reader goroutine, and a writer that
// runs only while there is something to write (see conn in ws.go); every
// write to the socket goes through one lock (wsconn.go). Both end when the
// connection closes, the client falls behind, or the hub shuts down.
// Server.Wait returns once every connection's goroutines have exited.
package web

import (
	"embed"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
)

//go:embed static
var staticFiles embed.FS

// MetricsWriter adds Prometheus text lines to /metrics (e.g. the MQTT bridge).
type MetricsWriter interface{ WriteMetrics(w io.Writer) }

// Options configure the web server.
type Options struct {
	Hub      *gateway.Hub
	AuthMode string // "token" (default) or "none"
	Token    string // required with auth token
	// ViewerToken logs in read-only sessions (esp32gw token -viewer); "": none yet.
	ViewerToken string
	// SessionsFile keeps login sessions across restarts (state_dir/sessions.json);
	// "": in memory only.
	SessionsFile string
	// SessionTTL: a session unused this long ends; 0: DefaultSessionTTL (30 days).
	SessionTTL time.Duration
	// MaxSessions bounds the sessions kept; 0: DefaultMaxSessions (1000).
	MaxSessions    int
	AllowedOrigins []string
	Logger         *slog.Logger
	Metrics        []MetricsWriter
	Version        string
	// History serves ranged charts, availability, export and import; nil
	// answers those with 503.
	History gateway.History
	// ValueBytes bounds an imported value's JSON (limits.value_bytes); 0: no bound.
	ValueBytes int
	// MaxBrowsers bounds open /ws and compatibility sockets together
	// (limits.browsers); beyond it upgrades answer 503. 0: 2000.
	MaxBrowsers int
	// Fleet serves enrollment and adoption (fleet.go); nil answers 503.
	Fleet Fleet
	// Firmware serves firmware uploads, update jobs and boards' downloads;
	// nil answers /api/firmware and /api/ota with 503.
	Firmware Firmware
}

// Server is the browser-facing side of the gateway. It is an http.Handler.
type Server struct {
	hub     *gateway.Hub
	auth    authenticator
	origins map[string]bool
	log     *slog.Logger
	metrics []MetricsWriter
	version string
	history gateway.History
	// valueBytes bounds imported values (limits.value_bytes).
	valueBytes  int
	maxBrowsers int64
	mux         *http.ServeMux
	static      fs.FS
	fleet       Fleet

	conns    sync.WaitGroup // every WebSocket connection's goroutines
	closing  sync.Mutex
	closed   bool               // Wait has begun: slow browsers are not kept lingering
	lingers  map[*conn]struct{} // slow browsers waiting to answer their close frame
	browsers atomic.Int64       // open /ws and compatibility connections
	sockets  socketSet          // who opened each socket, for logout and token changes

	wrongLogins gateway.LogLimiter // Warn lines for wrong-token logins
}

// New builds the server and its routes.
func New(o Options) *Server {
	s := &Server{
		hub:         o.Hub,
		auth:        authenticator{mode: o.AuthMode},
		origins:     map[string]bool{},
		log:         o.Logger,
		metrics:     o.Metrics,
		version:     o.Version,
		history:     o.History,
		valueBytes:  o.ValueBytes,
		maxBrowsers: int64(o.MaxBrowsers),
		mux:         http.NewServeMux(),
		fleet:       o.Fleet,
	}
	if s.maxBrowsers <= 0 {
		s.maxBrowsers = maxBrowserConnsTotal
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.auth.token.Store(&o.Token)
	s.auth.viewer.Store(&o.ViewerToken)
	if s.auth.enabled() {
		s.auth.sessions = newSessionStore(o.SessionsFile, o.SessionTTL, o.MaxSessions, s.log)
	} else {
		s.auth.sessions = newSessionStore("", o.SessionTTL, o.MaxSessions, s.log)
	}
	for _, origin := range o.AllowedOrigins {
		s.origins[normalizeOrigin(origin)] = true
	}
	s.static, _ = fs.Sub(staticFiles, "static")

	s.mux.HandleFunc("GET /{$}", s.handleIndex)
	s.mux.Handle("GET /assets/", http.FileServerFS(s.static))
	s.mux.HandleFunc("POST /logout", s.handleLogout)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	s.mux.Handle("GET /metrics", s.requireToken(http.HandlerFunc(s.handleMetrics)))
	s.mux.HandleFunc("GET /ws", s.handleWS)
	s.mux.HandleFunc("GET /ws/devices/{id}", s.handleCompat)
	s.mux.Handle("GET /api/devices", s.requireToken(http.HandlerFunc(s.handleDevices)))
	s.mux.Handle("GET /api/devices/{id}", s.requireToken(http.HandlerFunc(s.handleDevice)))
	s.mux.Handle("GET /api/devices/{id}/history", s.requireToken(http.HandlerFunc(s.handleHistory)))
	s.mux.Handle("POST /api/devices/{id}/history", s.requireAdmin("import history", http.HandlerFunc(s.handleImport)))
	s.mux.Handle("GET /api/devices/{id}/availability", s.requireToken(http.HandlerFunc(s.handleAvailability)))
	s.mux.Handle("GET /api/export", s.requireToken(http.HandlerFunc(s.handleExport)))
	s.mux.Handle("POST /api/devices/{id}/command", s.requireAdmin("send commands", http.HandlerFunc(s.handleCommand)))
	s.mux.Handle("GET /api/session", s.requireToken(http.HandlerFunc(s.handleSession)))
	s.fleetRoutes()
	s.routeFirmware(o.Firmware)
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+r.URL.Path)
	})
	return s
}

// ServeHTTP routes a request. Unsafe cross-origin requests (a form on another
// site posting a command with the user's cookie) are refused with 403.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	canonicalBearer(r)
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions {
		if origin := r.Header.Get("Origin"); origin != "" && !s.originAllowed(r) {
			writeError(w, http.StatusForbidden, "cross-origin request refused")
			return
		}
		if r.Header.Get("Sec-Fetch-Site") == "cross-site" && r.Header.Get("Origin") == "" {
			writeError(w, http.StatusForbidden, "cross-site request refused")
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// Wait blocks until every WebSocket connection has ended. Call it after the
// hub is closed, which ends every subscription.
func (s *Server) Wait() {
	s.closing.Lock()
	s.closed = true
	for c := range s.lingers {
		c.ws.Close()
	}
	s.closing.Unlock()
	s.conns.Wait() // no Add can follow: track refuses once closed is set
}

// track counts a new connection for Wait, unless Wait has begun (a browser
// that connected during shutdown is closed at once instead). Add and Wait
// never overlap: both happen under the closing lock.
func (s *Server) track() bool {
	s.closing.Lock()
	defer s.closing.Unlock()
	if s.closed {
		return false
	}
	s.conns.Add(1)
	return true
}

// linger registers a slow browser that is given time to answer its close
// frame; false means the server is shutting down and it must close now.
func (s *Server) linger(c *conn) bool {
	s.closing.Lock()
	defer s.closing.Unlock()
	if s.closed {
		return false
	}
	if s.lingers == nil {
		s.lingers = map[*conn]struct{}{}
	}
	s.lingers[c] = struct{}{}
	return true
}

func (s *Server) unlinger(c *conn) {
	s.closing.Lock()
	delete(s.lingers, c)
	s.closing.Unlock()
}

// handleIndex serves the dashboard. A login link (/?token=T, the admin or
// the viewer token) starts a session, sets its cookie and redirects to / so
// the token leaves the address bar.
func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	if t := r.URL.Query().Get("token"); t != "" && s.auth.enabled() {
		if !s.login(w, r, t) {
			s.warnWrongLogin(r)
			http.Redirect(w, r, "/?login=failed", http.StatusSeeOther)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'")
	http.ServeFileFS(w, r, s.static, "index.html")
}

// originAllowed: no Origin (a non-browser client), the same origin as the
// request's Host, or one listed in allowed_origins.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	o := normalizeOrigin(origin)
	if s.origins[o] {
		return true
	}
	_, host, ok := strings.Cut(o, "://")
	return ok && strings.EqualFold(host, r.Host)
}

func normalizeOrigin(o string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o)), "/")
}
