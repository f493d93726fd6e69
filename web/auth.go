package web

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// cookieName is the login cookie; it holds a session id, never a token.
const cookieName = "esp32gw_session"

// authenticator checks tokens and sessions; token compares run in constant
// time and tokens are never logged. Both tokens can be replaced while the
// server runs (Server.SetToken, Server.SetViewerToken); every check reads
// the current ones.
type authenticator struct {
	mode     string
	token    atomic.Pointer[string] // the admin token
	viewer   atomic.Pointer[string] // the viewer token; "" when there is none
	sessions *sessionStore
}

func (a *authenticator) enabled() bool { return a.mode != "none" }

func load(p *atomic.Pointer[string]) string {
	if v := p.Load(); v != nil {
		return *v
	}
	return ""
}

func (a *authenticator) current() string { return load(&a.token) }

// roleOf is the role token t grants, or "".
func (a *authenticator) roleOf(t string) string {
	if t == "" {
		return ""
	}
	admin, viewer := a.current(), load(&a.viewer)
	isAdmin := admin != "" && subtle.ConstantTimeCompare([]byte(t), []byte(admin)) == 1
	isViewer := viewer != "" && subtle.ConstantTimeCompare([]byte(t), []byte(viewer)) == 1
	switch {
	case isAdmin:
		return roleAdmin
	case isViewer:
		return roleViewer
	}
	return ""
}

// grants is the fingerprint of the token in force for each role: a session
// is valid only while the token that made it is.
func (a *authenticator) grants() map[string]string {
	return map[string]string{roleAdmin: grantOf(a.current()), roleViewer: grantOf(load(&a.viewer))}
}

// identify says who r is: Authorization: Bearer (either token), the session
// cookie, or (allowQuery: the WebSocket upgrades) ?token=.
func (a *authenticator) identify(r *http.Request, allowQuery bool) (identity, bool) {
	if !a.enabled() {
		return identity{role: roleAdmin}, true
	}
	if h := r.Header.Get("Authorization"); len(h) > len("bearer ") && strings.EqualFold(h[:len("bearer ")], "bearer ") {
		if role := a.roleOf(strings.TrimSpace(h[len("bearer "):])); role != "" {
			return identity{role: role}, true
		}
	}
	for _, c := range r.Cookies() {
		if c.Name == cookieName {
			if who, ok := a.sessions.lookup(c.Value, a.grants()); ok {
				return who, true
			}
		}
	}
	if allowQuery {
		if role := a.roleOf(r.URL.Query().Get("token")); role != "" {
			return identity{role: role}, true
		}
	}
	return identity{}, false
}

func (a *authenticator) setCookie(w http.ResponseWriter, r *http.Request, id string) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(a.sessions.ttl.Seconds()),
	})
}

func (a *authenticator) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: "", Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: -1,
	})
}

// whoIs is the identity admit or requireToken found for r.
func whoIs(r *http.Request) identity {
	who, _ := r.Context().Value(identityKey{}).(identity)
	return who
}

// requireToken answers 401 unless the request is authenticated (Bearer or
// the session cookie; ?token= only works on the login URL and upgrades).
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, ok := s.auth.identify(r, false)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="esp32gw"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong token: send Authorization: Bearer TOKEN or log in at / (the token is in the gateway's log and state_dir/token)")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, who)))
	})
}

// requireAdmin is requireToken that also answers 403 to a viewer.
func (s *Server) requireAdmin(what string, next http.Handler) http.Handler {
	return s.requireToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if whoIs(r).role != roleAdmin {
			writeError(w, http.StatusForbidden, "viewer sessions cannot "+what)
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// handleSession serves GET /api/session: {"role":"admin"|"viewer","auth":"token"|"none"}.
func (s *Server) handleSession(w http.ResponseWriter, r *http.Request) {
	mode := "token"
	if !s.auth.enabled() {
		mode = "none"
	}
	writeJSON(w, http.StatusOK, map[string]string{"role": whoIs(r).role, "auth": mode})
}

// socketSet is every open /ws and compatibility socket with who opened it,
// so a logout or a new token can close them.
type socketSet struct {
	mu    sync.Mutex
	conns map[*conn]identity
}

// bindConn records c as opened by r's identity; a viewer's c may not
// command. Call the returned func when c has ended.
func (s *Server) bindConn(r *http.Request, c *conn) func() {
	who := whoIs(r)
	c.viewer = who.role != roleAdmin
	s.sockets.mu.Lock()
	if s.sockets.conns == nil {
		s.sockets.conns = map[*conn]identity{}
	}
	s.sockets.conns[c] = who
	s.sockets.mu.Unlock()
	return func() {
		s.sockets.mu.Lock()
		delete(s.sockets.conns, c)
		s.sockets.mu.Unlock()
	}
}

// closeSockets closes every socket whose identity matches with a close
// frame (closeLoggedOut, "logged out").
func (s *Server) closeSockets(match func(identity) bool) {
	s.sockets.mu.Lock()
	defer s.sockets.mu.Unlock()
	for c, who := range s.sockets.conns {
		if match(who) {
			c.requestClose(closeLoggedOut, "logged out")
		}
	}
}

// handleLogout serves POST /logout: the session ends, its sockets close,
// the cookie is cleared; 204 whether or not there was a session.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	for _, c := range r.Cookies() {
		if c.Name != cookieName {
			continue
		}
		if h := s.auth.sessions.end(c.Value); h != "" {
			s.closeSockets(func(who identity) bool { return who.session == h })
		}
	}
	s.auth.clearCookie(w, r)
	w.WriteHeader(http.StatusNoContent)
}

// login makes a session for the token t from a login URL; false when t is
// no valid token.
func (s *Server) login(w http.ResponseWriter, r *http.Request, t string) bool {
	role := s.auth.roleOf(t)
	if role == "" {
		return false
	}
	for _, c := range r.Cookies() { // a new login replaces this browser's old session
		if c.Name == cookieName {
			s.auth.sessions.end(c.Value)
		}
	}
	id, err := s.auth.sessions.create(role, grantOf(t))
	if err != nil {
		s.log.Error("login: no session", "err", err)
		return false
	}
	s.auth.setCookie(w, r, id)
	return true
}
