package web

// SetToken replaces the admin token while the server runs (esp32gw token
// -rotate, a reloaded http.token). A new token ends every session and
// closes every open socket (closeLoggedOut): -rotate logs everyone out.
func (s *Server) SetToken(token string) {
	if old := s.auth.token.Swap(&token); old != nil && *old == token {
		return
	}
	s.auth.sessions.endRole("")
	s.closeSockets(func(identity) bool { return true })
}

// SetViewerToken replaces the viewer token (esp32gw token -viewer creates
// it, -rotate replaces it). A new one ends every viewer session and closes
// viewers' sockets; "" leaves the viewer token as it is.
func (s *Server) SetViewerToken(token string) {
	if token == "" {
		return
	}
	if old := s.auth.viewer.Swap(&token); old != nil && *old == token {
		return
	}
	s.auth.sessions.endRole(roleViewer)
	s.closeSockets(func(who identity) bool { return who.role == roleViewer })
}

// Browsers is how many /ws and compatibility connections are open now.
func (s *Server) Browsers() int { return int(s.browsers.Load()) }
