package web

import (
	"net/http"
	"strings"
	"time"
)

// canonicalBearer rewrites an Authorization header whose scheme is "bearer"
// in any case (RFC 9110: auth schemes are case-insensitive) to "Bearer ", so
// every check of the token downstream sees one spelling.
func canonicalBearer(r *http.Request) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") && h[:7] != "Bearer " {
		r.Header.Set("Authorization", "Bearer "+strings.TrimLeft(h[7:], " "))
	}
}

// warnWrongLogin logs a login with a wrong token at most once per
// gateway.LogEvery, with how many were suppressed meanwhile.
func (s *Server) warnWrongLogin(r *http.Request) {
	if n, ok := s.wrongLogins.Allow(time.Now()); ok {
		s.log.Warn("login with a wrong token", "addr", r.RemoteAddr, "suppressed", n)
	} else {
		s.log.Debug("login with a wrong token", "addr", r.RemoteAddr)
	}
}
