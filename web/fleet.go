package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/esp32gw/esp32gw/gateway"
)

// Fleet is enrollment and adoption as the API sees it (DESIGN.md, Fleet);
// cmd/esp32gw implements it. Its methods are safe for concurrent use.
// Adopt and Forget block until the change is applied (devices.yaml written,
// the device started or stopped) or ctx ends; their errors wrap the core's
// sentinels (gateway.ErrUnknownPending, ErrIDTaken, ErrConfigured, ErrBadID,
// ErrInvalid, ErrBoardGone, ErrUnknownDevice, ErrShutdown).
type Fleet interface {
	Pending() []gateway.PendingBoard
	Adopt(ctx context.Context, pendingID string, req gateway.AdoptRequest) (gateway.DeviceState, error)
	Forget(ctx context.Context, id string) error
	// EnrollToken is the enroll token and whether mDNS is on.
	EnrollToken() (token string, mdns bool)
}

// Bounds of an adopt request (besides maxBodyBytes for the body).
const (
	maxNameBytes    = 128
	maxCommands     = 64
	maxCommandBytes = 256
)

func (s *Server) fleetRoutes() {
	s.mux.Handle("GET /api/pending", s.requireToken(http.HandlerFunc(s.handlePending)))
	s.mux.Handle("POST /api/pending/{id}/adopt", s.requireAdmin("adopt boards", http.HandlerFunc(s.handleAdopt)))
	s.mux.Handle("DELETE /api/devices/{id}", s.requireAdmin("forget devices", http.HandlerFunc(s.handleForget)))
	s.mux.Handle("GET /api/enroll", s.requireAdmin("see the enroll token", http.HandlerFunc(s.handleEnroll)))
}

// fleetStatus maps an adoption error to its HTTP status.
func fleetStatus(err error) int {
	switch {
	case errors.Is(err, gateway.ErrUnknownPending), errors.Is(err, gateway.ErrUnknownDevice):
		return http.StatusNotFound
	case errors.Is(err, gateway.ErrIDTaken), errors.Is(err, gateway.ErrConfigured), errors.Is(err, gateway.ErrBoardGone):
		return http.StatusConflict
	case errors.Is(err, gateway.ErrBadID), errors.Is(err, gateway.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, gateway.ErrShutdown):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (s *Server) noFleet(w http.ResponseWriter) bool {
	if s.fleet == nil {
		writeError(w, http.StatusServiceUnavailable, "enrollment is not available in this gateway")
		return true
	}
	return false
}

// handlePending serves GET /api/pending: the boards waiting for adoption.
func (s *Server) handlePending(w http.ResponseWriter, r *http.Request) {
	if s.noFleet(w) {
		return
	}
	list := s.fleet.Pending()
	if list == nil {
		list = []gateway.PendingBoard{}
	}
	writeJSON(w, http.StatusOK, list)
}

// handleAdopt serves POST /api/pending/{id}/adopt with
// {"id":"garage","name":"Garage","commands":["toggle"]}, every field
// optional (an empty body too): 200 with the new device object.
func (s *Server) handleAdopt(w http.ResponseWriter, r *http.Request) {
	if s.noFleet(w) {
		return
	}
	pid := r.PathValue("id")
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req gateway.AdoptRequest
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, `body must be JSON like {"id":"garage","name":"Garage","commands":["toggle"]} (every field optional): `+err.Error())
			return
		}
		if dec.More() {
			writeError(w, http.StatusBadRequest, "body must hold one JSON object")
			return
		}
	}
	if msg := checkAdopt(req); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	st, err := s.fleet.Adopt(r.Context(), pid, req)
	if err != nil {
		writeError(w, fleetStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// checkAdopt is what is wrong with an adopt request, or "".
func checkAdopt(req gateway.AdoptRequest) string {
	if req.ID != "" && (!gateway.ValidID(req.ID) || req.ID == "bridge") {
		return fmt.Sprintf(`"id" must match [a-z0-9_-]+ (at most 64 characters; "bridge" is reserved), got %q`, gateway.Truncate(req.ID, 80))
	}
	if len(req.Name) > maxNameBytes || !utf8.ValidString(req.Name) || strings.ContainsFunc(req.Name, func(c rune) bool { return c < ' ' || c == 0x7f }) {
		return fmt.Sprintf(`"name" must be at most %d bytes of text without control characters`, maxNameBytes)
	}
	if len(req.Commands) > maxCommands {
		return fmt.Sprintf(`"commands" holds at most %d values`, maxCommands)
	}
	for _, c := range req.Commands {
		if c == "" || len(c) > maxCommandBytes || !utf8.ValidString(c) {
			return fmt.Sprintf(`every value of "commands" must be 1 to %d bytes of text`, maxCommandBytes)
		}
	}
	return ""
}

// handleForget serves DELETE /api/devices/{id}: 204 for a device added from
// the API, 409 for one of config.yaml, 404 for an unknown id.
func (s *Server) handleForget(w http.ResponseWriter, r *http.Request) {
	if s.noFleet(w) {
		return
	}
	if err := s.fleet.Forget(r.Context(), r.PathValue("id")); err != nil {
		msg := err.Error()
		if errors.Is(err, gateway.ErrConfigured) {
			msg += ": only devices added from the dashboard or the API (state_dir/devices.yaml) can be forgotten here"
		}
		writeError(w, fleetStatus(err), msg)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleEnroll serves GET /api/enroll (admin only): what a new board needs
// to enroll, including the lines for the firmware's secrets.h.
func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) {
	if s.noFleet(w) {
		return
	}
	token, mdns := s.fleet.EnrollToken()
	host, port := requestHostPort(r)
	scheme := "ws"
	if r.TLS != nil {
		scheme = "wss"
	}
	writeJSON(w, http.StatusOK, struct {
		EnrollToken string `json:"enroll_token"`
		URL         string `json:"url"`
		MDNS        bool   `json:"mdns"`
		Secrets     string `json:"secrets"`
	}{token, scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/device/", mdns, secretsText(token, host, port, mdns)})
}

// requestHostPort is the gateway's host and port as the request named them
// (its Host header), the scheme's default port when it names none.
func requestHostPort(r *http.Request) (string, int) {
	port := 80
	if r.TLS != nil {
		port = 443
	}
	h := r.Host
	if host, p, err := net.SplitHostPort(h); err == nil {
		if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 {
			port = n
		}
		h = host
	}
	return strings.Trim(h, "[]"), port
}

// secretsText is what a user pastes into the firmware's secrets.h to
// enroll a board. The macro names are the firmware's; they live here only.
func secretsText(token, host string, port int, mdns bool) string {
	var b strings.Builder
	b.WriteString("#define WIFI_SSID \"your-ssid\"\n")
	b.WriteString("#define WIFI_PASSWORD \"your-password\"\n")
	fmt.Fprintf(&b, "#define GW_ENROLL_TOKEN %s\n", cString(token))
	if !mdns {
		fmt.Fprintf(&b, "#define GW_HOST %s\n", cString(host))
		fmt.Fprintf(&b, "#define GW_PORT %d\n", port)
	}
	return b.String()
}

// cString quotes s as a C string literal (tokens and host names are plain
// ASCII; anything else is escaped so the line stays valid C).
func cString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
