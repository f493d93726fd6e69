package web

// SetToken replaces the browser token while the server runs (esp32gw token
// -rotate, a reloaded http.token): from the next request on, only the new
// token and cookies holding it are accepted. Connections already open stay
// open. Safe for concurrent use.
func (s *Server) SetToken(token string) { s.auth.token.Store(&token) }

// Browsers is how many /ws and compatibility connections are open now.
func (s *Server) Browsers() int { return int(s.browsers.Load()) }
