package contracttest

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/testgw"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// sessionConfig is a token-auth gateway with one sim device.
func sessionConfig() string {
	return header("gw1", "") + "  - id: demo\n    transport: sim\n    commands: [toggle]\n"
}

// cookieHeader carries a session cookie on a WebSocket upgrade, with the
// gateway's own Origin as a browser sends it.
func cookieHeader(g *testgw.Gateway, ck *http.Cookie) http.Header {
	return http.Header{"Cookie": {ck.Name + "=" + ck.Value}, "Origin": {g.URL}}
}

// sessionSocket opens /ws with the session cookie and reads its snapshot.
func sessionSocket(t *testing.T, g *testgw.Gateway, ck *http.Cookie) *testutil.WSReader {
	t.Helper()
	c, resp, err := dial(g.WSURL("/ws"), cookieHeader(g, ck))
	if err != nil {
		t.Fatalf("/ws with the session cookie: %v (HTTP %d)", err, status(resp))
	}
	t.Cleanup(func() { c.Close() })
	r := testutil.NewWSReader(c)
	r.WaitFor(t, 10*time.Second, "snapshot", func(m msg) bool { return str(m, "type") == "snapshot" })
	return r
}

// closedLoggedOut checks r is closed by the gateway with 1008 within d.
func closedLoggedOut(t *testing.T, r *testutil.WSReader, d time.Duration, what string) {
	t.Helper()
	err, ended := r.Closed(d)
	if !ended {
		t.Fatalf("%s: the open /ws is still open %v later", what, d)
	}
	if code, reason := closeCode(err); code != websocket.ClosePolicyViolation {
		t.Errorf("%s: /ws closed with %d %q (%v), want 1008 \"logged out\"", what, code, reason, err)
	}
}

// TestSessionLoginAndLogout: the login URL's cookie is a session id, not
// the token; POST /logout closes the session's sockets within 1 s and the
// cookie stops working; ?token= no longer opens API routes.
func TestSessionLoginAndLogout(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, sessionConfig())
	ck := login(t, g.LoginURL())
	if ck.Value == g.Token || strings.Contains(ck.Value, g.Token) || len(ck.Value) < 22 {
		t.Errorf("the login cookie %q: want a random session id (≥128 bits), never the token", ck.Value)
	}
	if ck.MaxAge != 30*24*3600 || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Errorf("the login cookie %+v: want HttpOnly, SameSite=Strict, Max-Age 30 days", ck)
	}
	if code := statusWith(t, g, "", ck); code != 200 {
		t.Fatalf("/api/devices with the session cookie: %d, want 200", code)
	}
	if code, body := getWith(t, g.URL+"/api/session", nil, ck); code != 200 || !strings.Contains(body, `"role":"admin"`) {
		t.Errorf("/api/session: %d %s, want role admin", code, body)
	}

	t.Run("?token= only on the login URL and upgrades", func(t *testing.T) {
		for _, path := range []string{"/api/devices", "/api/devices/demo", "/metrics"} {
			if code, _ := getWith(t, g.URL+path+"?token="+g.Token, nil, nil); code != 401 {
				t.Errorf("%s?token=: %d, want 401", path, code)
			}
			if code, _ := getWith(t, g.URL+path, http.Header{"Authorization": {"Bearer " + g.Token}}, nil); code != 200 {
				t.Errorf("%s with Bearer: %d, want 200", path, code)
			}
		}
		c, resp, err := dial(g.WSURL("/ws?token="+g.Token), nil)
		if err != nil {
			t.Errorf("/ws?token=: %v (HTTP %d), want 101", err, status(resp))
		} else {
			c.Close()
		}
	})

	t.Run("hostile cookies", func(t *testing.T) {
		for name, v := range map[string]string{
			"garbage":       `%%%\;;=="x"`,
			"the token":     g.Token,
			"huge":          strings.Repeat("A", 32<<10),
			"many":          strings.Repeat("B; esp32gw_session=", 500),
			"id-shaped":     strings.Repeat("z", 43),
			"session-empty": "",
		} {
			h := http.Header{"Cookie": {"esp32gw_session=" + v}}
			if code, _ := getWith(t, g.URL+"/api/devices", h, nil); code != 401 {
				t.Errorf("cookie %s: %d, want 401", name, code)
			}
		}
		if code := statusWith(t, g, "", ck); code != 200 {
			t.Errorf("the real session after hostile cookies: %d, want 200 (the gateway is still up)", code)
		}
	})

	r := sessionSocket(t, g, ck)
	req, _ := http.NewRequest("POST", g.URL+"/logout", nil)
	req.AddCookie(ck)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("POST /logout: %d, want 204", resp.StatusCode)
	}
	cleared := false
	for _, c := range resp.Cookies() {
		cleared = cleared || (c.Name == ck.Name && c.MaxAge < 0)
	}
	if !cleared {
		t.Errorf("POST /logout does not clear the cookie: %v", resp.Header["Set-Cookie"])
	}
	closedLoggedOut(t, r, time.Second, "logout")
	if code := statusWith(t, g, "", ck); code != 401 {
		t.Errorf("the cookie after logout: %d, want 401", code)
	}
	if c, resp, err := dial(g.WSURL("/ws"), cookieHeader(g, ck)); err == nil || status(resp) != 401 {
		if c != nil {
			c.Close()
		}
		t.Errorf("/ws with the cookie after logout: %v (HTTP %d), want 401", err, status(resp))
	}
}

// TestSessionSurvivesRestart: sessions are kept in state_dir (hashed, mode
// 0600) and work after a restart.
func TestSessionSurvivesRestart(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, sessionConfig())
	ck := login(t, g.LoginURL())
	if err, _ := g.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	file := filepath.Join(g.Dir, "data", "sessions.json")
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("sessions file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("sessions file mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(file); bytes.Contains(b, []byte(ck.Value)) || bytes.Contains(b, []byte(g.Token)) {
		t.Errorf("the sessions file holds a session id or the token:\n%s", b)
	}
	g.Restart()
	if code := statusWith(t, g, "", ck); code != 200 {
		t.Errorf("the session after a restart: %d, want 200", code)
	}

	// A damaged sessions file: kept aside, everyone logs in again, no crash.
	g.Stop()
	if err := os.WriteFile(file, []byte("{\"version\":1,\"sess"), 0o600); err != nil {
		t.Fatal(err)
	}
	g.Restart()
	if code := statusWith(t, g, "", ck); code != 401 {
		t.Errorf("a session from a damaged file: %d, want 401", code)
	}
	if aside, _ := filepath.Glob(file + ".corrupt-*"); len(aside) != 1 {
		t.Errorf("the damaged file is not kept aside: %v", aside)
	}
	if code := statusWith(t, g, "", login(t, g.LoginURL())); code != 200 {
		t.Errorf("a new login after a damaged file: %d, want 200", code)
	}
}

// TestSessionExpires: a session unused for its lifetime is refused (the
// lifetime is shortened by a test-only environment variable).
func TestSessionExpires(t *testing.T) {
	t.Parallel()
	g := testgw.StartEnv(t, sessionConfig(), "ESP32GW_TEST_SESSION_TTL=2s")
	ck := login(t, g.LoginURL())
	if code := statusWith(t, g, "", ck); code != 200 {
		t.Fatalf("a fresh session: %d, want 200", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for statusWith(t, g, "", ck) != 401 {
		if time.Now().After(deadline) {
			t.Fatal("a session unused for its 2 s lifetime still works 10 s later")
		}
		time.Sleep(3 * time.Second) // unused for longer than its lifetime
	}
}

// TestRotateEndsSessions: esp32gw token -rotate ends every session and
// closes their sockets on the running gateway.
func TestRotateEndsSessions(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, sessionConfig())
	ck := login(t, g.LoginURL())
	r := sessionSocket(t, g, ck)
	_, viewer := tokenCmd(t, g.Dir, "-config", g.Config, "-viewer")
	vck := loginWhenReady(t, g, viewer)

	_, newToken := tokenCmd(t, g.Dir, "-config", g.Config, "-rotate")
	closedLoggedOut(t, r, 5*time.Second, "token -rotate")
	if code := statusWith(t, g, "", ck); code != 401 {
		t.Errorf("a session after -rotate: %d, want 401", code)
	}
	if code := statusWith(t, g, newToken, nil); code != 200 {
		t.Errorf("the new token: %d, want 200", code)
	}
	if code := statusWith(t, g, "", vck); code != 401 {
		t.Errorf("a viewer session after -rotate: %d, want 401", code)
	}
	if _, again := tokenCmd(t, g.Dir, "-config", g.Config, "-viewer"); again == viewer {
		t.Errorf("-rotate kept the viewer token")
	}
}

// TestViewerLogin: esp32gw token -viewer prints a read-only login URL; its
// session sees the snapshot and its commands are refused.
func TestViewerLogin(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, sessionConfig())
	url, viewer := tokenCmd(t, g.Dir, "-config", g.Config, "-viewer")
	if viewer == g.Token || !strings.HasPrefix(url, "http://") {
		t.Fatalf("token -viewer printed %s", url)
	}
	if fi, err := os.Stat(filepath.Join(g.Dir, "data", "viewer_token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("viewer_token file: %v %v, want mode 0600", fi, err)
	}
	if _, again := tokenCmd(t, g.Dir, "-config", g.Config, "-viewer"); again != viewer {
		t.Errorf("a second token -viewer printed another token")
	}
	ck := loginWhenReady(t, g, viewer)
	if code, body := getWith(t, g.URL+"/api/session", nil, ck); code != 200 || !strings.Contains(body, `"role":"viewer"`) {
		t.Errorf("/api/session of the viewer: %d %s", code, body)
	}
	r := sessionSocket(t, g, ck)
	sendJSON(t, r.Conn(), map[string]any{"type": "command", "id": "v1", "device": "demo", "label": "led", "value": "toggle"})
	m := r.WaitFor(t, 5*time.Second, "the answer to the viewer's command", func(m msg) bool { return str(m, "id") == "v1" })
	if str(m, "type") != "error" || !strings.Contains(str(m, "error"), "viewer sessions cannot send commands") {
		t.Errorf("the viewer's /ws command: %v, want an error", m)
	}
	post := func(path, body string, h http.Header, ck *http.Cookie) int {
		code, _ := requestWith(t, "POST", g.URL+path, body, h, ck)
		return code
	}
	cmd := `{"label":"led","value":"toggle"}`
	if code := post("/api/devices/demo/command", cmd, nil, ck); code != 403 {
		t.Errorf("the viewer's POST command: %d, want 403", code)
	}
	if code := post("/api/devices/demo/history", `[]`, nil, ck); code != 403 {
		t.Errorf("the viewer's history import: %d, want 403", code)
	}
	vb := http.Header{"Authorization": {"Bearer " + viewer}}
	if code, _ := getWith(t, g.URL+"/api/devices", vb, nil); code != 200 {
		t.Errorf("GET with the viewer token as Bearer: %d, want 200", code)
	}
	if code := post("/api/devices/demo/command", cmd, vb, nil); code != 403 {
		t.Errorf("POST command with the viewer token as Bearer: %d, want 403", code)
	}
	if code := post("/api/devices/demo/command", cmd, http.Header{"Authorization": {"Bearer " + g.Token}}, nil); code == 401 || code == 403 {
		t.Errorf("POST command with the admin token: %d, want it let through", code)
	}
}

// getWith is a GET with extra headers and an optional cookie.
func getWith(t *testing.T, url string, h http.Header, ck *http.Cookie) (int, string) {
	t.Helper()
	return requestWith(t, "GET", url, "", h, ck)
}

// requestWith sends a request with extra headers and an optional cookie and
// returns the status and body.
func requestWith(t *testing.T, method, url, body string, h http.Header, ck *http.Cookie) (int, string) {
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

// loginWhenReady logs in with token, which a running gateway may only pick
// up from its file within about 1 s (esp32gw token -viewer).
func loginWhenReady(t *testing.T, g *testgw.Gateway, token string) *http.Cookie {
	t.Helper()
	var ck *http.Cookie
	c := http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(5 * time.Second)
	for ck == nil {
		resp, err := c.Get(g.URL + "/?token=" + token)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, k := range resp.Cookies() {
			if k.Value != "" {
				ck = k
			}
		}
		if ck == nil {
			if time.Now().After(deadline) {
				t.Fatalf("the login URL does not log in 5 s after token -viewer (HTTP %d to %s)", resp.StatusCode, resp.Header.Get("Location"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return ck
}
