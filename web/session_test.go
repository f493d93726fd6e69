package web_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/web"
)

const viewerToken = "viewer-token-0123456789"

// loginCookie opens base/?token=tok as a browser does and returns the
// session cookie it sets.
func loginCookie(t *testing.T, base, tok string) *http.Cookie {
	t.Helper()
	c := http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(base + "/?token=" + tok)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, ck := range resp.Cookies() {
		if ck.Value != "" {
			return ck
		}
	}
	t.Fatal("login set no cookie")
	return nil
}

// sessionServer is a web server with a sessions file and a viewer token.
func sessionServer(t *testing.T, file string) (*web.Server, *httptest.Server) {
	t.Helper()
	return sessionServerMax(t, file, 0)
}

func sessionServerMax(t *testing.T, file string, max int) (*web.Server, *httptest.Server) {
	t.Helper()
	hub := gateway.NewHub(gateway.Options{GatewayID: "test"})
	if err := hub.AddDevice(gateway.DeviceInfo{ID: "board", Transport: "sim", Commands: []string{"toggle"}}); err != nil {
		t.Fatal(err)
	}
	srv := web.New(web.Options{Hub: hub, AuthMode: "token", Token: token, ViewerToken: viewerToken, SessionsFile: file, MaxSessions: max})
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hub.Close()
		srv.Wait()
		hs.Close()
	})
	return srv, hs
}

func do(t *testing.T, method, url string, body string, h http.Header, ck *http.Cookie) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	if ck != nil {
		req.AddCookie(ck)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func dialWith(t *testing.T, base, path string, h http.Header) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+path, h)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSessionCookieAndLogout(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sessions.json")
	_, hs := sessionServer(t, file)
	ck := loginCookie(t, hs.URL, token)
	if ck.Value == token || strings.Contains(ck.Value, token) || len(ck.Value) < 22 {
		t.Errorf("cookie %q: want a random session id of at least 128 bits, never the token", ck.Value)
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.MaxAge != 30*24*3600 {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Max-Age 30 days", ck)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("sessions file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("sessions file mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(file); bytes.Contains(b, []byte(ck.Value)) || bytes.Contains(b, []byte(token)) {
		t.Errorf("sessions file holds the session id or the token: %s", b)
	}
	if code, body := do(t, "GET", hs.URL+"/api/session", "", nil, ck); code != 200 || !strings.Contains(body, `"role":"admin"`) {
		t.Errorf("/api/session with the cookie: %d %s", code, body)
	}
	for name, want := range map[string]int{
		"?token= on an API route": 401,
		"Bearer":                  200,
		"bearer (lower case)":     200,
	} {
		var h http.Header
		url := hs.URL + "/api/devices"
		switch name {
		case "Bearer":
			h = http.Header{"Authorization": {"Bearer " + token}}
		case "bearer (lower case)":
			h = http.Header{"Authorization": {"bearer " + token}}
		default:
			url += "?token=" + token
		}
		if code, _ := do(t, "GET", url, "", h, nil); code != want {
			t.Errorf("%s: %d, want %d", name, code, want)
		}
	}

	c := dialWith(t, hs.URL, "/ws", http.Header{"Cookie": {ck.Name + "=" + ck.Value}})
	readMsg(t, c) // snapshot
	code, _ := do(t, "POST", hs.URL+"/logout", "", nil, ck)
	if code != http.StatusNoContent {
		t.Errorf("POST /logout: %d, want 204", code)
	}
	start := time.Now()
	if got := closeCode(t, c); got != websocket.ClosePolicyViolation || time.Since(start) > time.Second {
		t.Errorf("open /ws after logout: close %d after %v, want 1008 within 1 s", got, time.Since(start))
	}
	if code, _ := do(t, "GET", hs.URL+"/api/devices", "", nil, ck); code != 401 {
		t.Errorf("the cookie after logout: %d, want 401", code)
	}
}

func TestSessionsSurviveARestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sessions.json")
	_, hs := sessionServer(t, file)
	ck := loginCookie(t, hs.URL, token)
	_, again := sessionServer(t, file)
	if code, _ := do(t, "GET", again.URL+"/api/devices", "", nil, ck); code != 200 {
		t.Errorf("a session after a restart: %d, want 200", code)
	}

	// A damaged file is kept aside; nobody is logged in, nothing breaks.
	if err := os.WriteFile(file, []byte(`{"version":1,"sessions":[{`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, third := sessionServer(t, file)
	if code, _ := do(t, "GET", third.URL+"/api/devices", "", nil, ck); code != 401 {
		t.Errorf("a session from a damaged file: %d, want 401", code)
	}
	aside, _ := filepath.Glob(file + ".corrupt-*")
	if len(aside) != 1 {
		t.Errorf("damaged sessions file not kept aside: %v", aside)
	}
	if code, _ := do(t, "GET", third.URL+"/api/devices", "", nil, loginCookie(t, third.URL, token)); code != 200 {
		t.Errorf("a new login after a damaged file: %d, want 200", code)
	}
}

func TestViewerSession(t *testing.T) {
	srv, hs := sessionServer(t, "")
	ck := loginCookie(t, hs.URL, viewerToken)
	if code, body := do(t, "GET", hs.URL+"/api/session", "", nil, ck); code != 200 || !strings.Contains(body, `"role":"viewer"`) {
		t.Errorf("/api/session of a viewer: %d %s", code, body)
	}
	if code, _ := do(t, "GET", hs.URL+"/api/devices", "", nil, ck); code != 200 {
		t.Errorf("a viewer reads /api/devices: %d, want 200", code)
	}
	cmd := `{"label":"led","value":"toggle"}`
	if code, body := do(t, "POST", hs.URL+"/api/devices/board/command", cmd, nil, ck); code != 403 || !strings.Contains(body, "viewer") {
		t.Errorf("a viewer's POST command: %d %s, want 403", code, body)
	}
	if code, _ := do(t, "POST", hs.URL+"/api/devices/board/command", cmd, http.Header{"Authorization": {"Bearer " + viewerToken}}, nil); code != 403 {
		t.Errorf("POST command with the viewer token as Bearer: %d, want 403", code)
	}
	if code, _ := do(t, "POST", hs.URL+"/api/devices/board/history", `[]`, nil, ck); code != 403 {
		t.Errorf("a viewer's history import: %d, want 403", code)
	}

	c := dialWith(t, hs.URL, "/ws", http.Header{"Cookie": {ck.Name + "=" + ck.Value}})
	readMsg(t, c)
	c.WriteJSON(map[string]any{"type": "command", "id": "v1", "device": "board", "label": "led", "value": "toggle"})
	if m := readMsg(t, c); m.Type != "error" || m.ID != "v1" || !strings.Contains(m.Error, "viewer sessions cannot send commands") {
		t.Errorf("a viewer's /ws command: %+v, want an error", m)
	}

	// A new viewer token ends viewer sessions and closes their sockets.
	srv.SetViewerToken("another-viewer-token-000")
	if got := closeCode(t, c); got != websocket.ClosePolicyViolation {
		t.Errorf("a viewer's /ws after a new viewer token: close %d, want 1008", got)
	}
	if code, _ := do(t, "GET", hs.URL+"/api/devices", "", nil, ck); code != 401 {
		t.Errorf("a viewer session after a new viewer token: %d, want 401", code)
	}
}

func TestSetTokenEndsSessionsAndSockets(t *testing.T) {
	srv, hs := sessionServer(t, "")
	ck := loginCookie(t, hs.URL, token)
	c := dialWith(t, hs.URL, "/ws", http.Header{"Cookie": {ck.Name + "=" + ck.Value}})
	readMsg(t, c)
	b := dialWith(t, hs.URL, "/ws", http.Header{"Authorization": {"Bearer " + token}})
	readMsg(t, b)
	srv.SetToken("rotated-token-0123456789")
	for name, ws := range map[string]*websocket.Conn{"session": c, "bearer": b} {
		if got := closeCode(t, ws); got != websocket.ClosePolicyViolation {
			t.Errorf("%s socket after a new token: close %d, want 1008", name, got)
		}
	}
	if code, _ := do(t, "GET", hs.URL+"/api/devices", "", nil, ck); code != 401 {
		t.Errorf("a session after a new token: %d, want 401", code)
	}
}

func TestHostileCookies(t *testing.T) {
	_, hs := sessionServer(t, "")
	for name, v := range map[string]string{
		"empty":   "",
		"garbage": "%%%\\;;==\"\"",
		"token":   token, // the old cookie held the token itself: no longer
		"long":    strings.Repeat("A", 40<<10),
		"quoted":  `"` + strings.Repeat("z", 43) + `"`,
	} {
		h := http.Header{"Cookie": {"esp32gw_session=" + v + "; esp32gw_session=" + v}}
		if code, _ := do(t, "GET", hs.URL+"/api/devices", "", h, nil); code != 401 {
			t.Errorf("cookie %s: %d, want 401", name, code)
		}
	}
}

func TestSessionsFileIsBounded(t *testing.T) {
	const max = 20 // DefaultMaxSessions is 1000; each login is a synced write
	file := filepath.Join(t.TempDir(), "sessions.json")
	_, hs := sessionServerMax(t, file, max)
	first := loginCookie(t, hs.URL, token)
	for range max {
		loginCookie(t, hs.URL, token)
	}
	b, _ := os.ReadFile(file)
	var f struct {
		Sessions []json.RawMessage `json:"sessions"`
	}
	if err := json.Unmarshal(b, &f); err != nil || len(f.Sessions) != max {
		t.Errorf("sessions file after %d logins: %d sessions (%v), want %d", max+1, len(f.Sessions), err, max)
	}
	if code, _ := do(t, "GET", hs.URL+"/api/devices", "", nil, first); code != 401 {
		t.Errorf("the oldest unused session after %d more: %d, want 401 (evicted)", max, code)
	}
}
