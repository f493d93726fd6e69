package web

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"sync/atomic"
)

const cookieName = "esp32gw_token"

// authenticator checks the browser token; compares run in constant time and
// the token is never logged. The token can be replaced while the server runs
// (Server.SetToken); every check reads the current one.
type authenticator struct {
	mode  string
	token atomic.Pointer[string]
}

func (a *authenticator) enabled() bool { return a.mode != "none" }

func (a *authenticator) current() string {
	if p := a.token.Load(); p != nil {
		return *p
	}
	return ""
}

func (a *authenticator) valid(t string) bool {
	want := a.current()
	return t != "" && want != "" && subtle.ConstantTimeCompare([]byte(t), []byte(want)) == 1
}

// ok reports whether r carries the token: Authorization: Bearer, the session
// cookie, or (allowQuery) ?token= as WebSocket upgrades and scripts use.
func (a *authenticator) ok(r *http.Request, allowQuery bool) bool {
	if !a.enabled() {
		return true
	}
	if h := r.Header.Get("Authorization"); h != "" {
		if t, found := strings.CutPrefix(h, "Bearer "); found && a.valid(strings.TrimSpace(t)) {
			return true
		}
	}
	if c, err := r.Cookie(cookieName); err == nil && a.valid(c.Value) {
		return true
	}
	return allowQuery && a.valid(r.URL.Query().Get("token"))
}

func (a *authenticator) setCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: a.current(), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: 400 * 24 * 3600,
	})
}

func (a *authenticator) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: "", Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: -1,
	})
}

// requireToken answers 401 unless the request is authenticated.
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.auth.ok(r, true) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="esp32gw"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong token: send Authorization: Bearer TOKEN (the token is in the gateway's log and state_dir/token)")
			return
		}
		next.ServeHTTP(w, r)
	})
}
