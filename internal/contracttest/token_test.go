package contracttest

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/testgw"
)

var loginURLRe = regexp.MustCompile(`(?m)^(https?://\S+/\?token=([0-9A-Za-z_-]+))$`)

// tokenCmd runs esp32gw token with args and returns its login URL and token.
func tokenCmd(t *testing.T, dir string, args ...string) (url, token string) {
	t.Helper()
	code, out := run(t, dir, 20*time.Second, append([]string{"token"}, args...)...)
	if code != 0 {
		t.Fatalf("esp32gw token %v: exit %d\n%s", args, code, out)
	}
	m := loginURLRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("esp32gw token %v printed no login URL:\n%s", args, out)
	}
	return m[1], m[2]
}

// login opens a login URL as a browser does and returns the session cookie.
func login(t *testing.T, url string) *http.Cookie {
	t.Helper()
	c := http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("GET %s: %d to %q, want 303 to /", url, resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, ck := range resp.Cookies() {
		if ck.Value != "" {
			return ck
		}
	}
	t.Fatalf("GET %s set no cookie", url)
	return nil
}

// statusWith is GET /api/devices with a bearer token or a cookie.
func statusWith(t *testing.T, g *testgw.Gateway, token string, cookie *http.Cookie) int {
	t.Helper()
	req, _ := http.NewRequest("GET", g.URL+"/api/devices", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestTokenCommand: esp32gw token prints the login URL of the running
// gateway; -rotate replaces the token at once without a restart.
func TestTokenCommand(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	g := testgw.Start(t, fmt.Sprintf("gateway_id: gw1\nstate_dir: data\nhttp:\n  listen: %q\ndevices:\n  - id: demo\n    transport: sim\n", addr))

	url, token := tokenCmd(t, g.Dir, "-config", g.Config)
	if want := "http://" + addr + "/?token=" + g.Token; url != want {
		t.Errorf("esp32gw token printed %s, want %s (the gateway's own login URL)", url, want)
	}
	oldCookie := login(t, url)
	if code := statusWith(t, g, "", oldCookie); code != 200 {
		t.Fatalf("the login URL's cookie: %d, want 200", code)
	}

	newURL, newToken := tokenCmd(t, g.Dir, "-config", g.Config, "-rotate")
	if newToken == token || !strings.HasPrefix(newURL, "http://"+addr+"/") {
		t.Fatalf("token -rotate printed %s (old token %s)", newURL, token)
	}
	fi, err := os.Stat(filepath.Join(g.Dir, "data", "token"))
	if err != nil {
		t.Errorf("token file after -rotate: %v", err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file after -rotate: mode %v, want 0600", fi.Mode().Perm())
	}
	deadline := time.Now().Add(5 * time.Second)
	for statusWith(t, g, token, nil) != 401 {
		if time.Now().After(deadline) {
			t.Fatalf("the old token still works 5 s after token -rotate")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := statusWith(t, g, "", oldCookie); code != 401 {
		t.Errorf("a cookie from the old token after -rotate: %d, want 401", code)
	}
	if code := statusWith(t, g, newToken, nil); code != 200 {
		t.Errorf("the new token: %d, want 200", code)
	}
	if code := statusWith(t, g, "", login(t, newURL)); code != 200 {
		t.Errorf("the new login URL's cookie: %d, want 200", code)
	}
	if _, again := tokenCmd(t, g.Dir, "-config", g.Config); again != newToken {
		t.Errorf("esp32gw token after -rotate prints token %s, want the new %s", again, newToken)
	}
	if err, _ := g.Stop(); err != nil {
		t.Errorf("exit %v, want 0", err)
	}
}

// TestTokenCommandRefusals: -rotate refuses a token that config.yaml sets,
// auth: none needs no token (and has no viewer token).
func TestTokenCommandRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(yaml string) string {
		p := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := "state_dir: data\nhttp:\n  listen: \"127.0.0.1:8080\"\n"

	p := write(base + "  token: \"from-the-config-0123456789\"\n")
	if url, _ := tokenCmd(t, dir, "-config", p); url != "http://127.0.0.1:8080/?token=from-the-config-0123456789" {
		t.Errorf("token with http.token set: %s", url)
	}
	if code, out := run(t, dir, 20*time.Second, "token", "-config", p, "-rotate"); code == 0 || !strings.Contains(out, "http.token") {
		t.Errorf("token -rotate with http.token set: exit %d, %q; want a refusal naming http.token", code, out)
	}

	p = write(base + "  auth: none\n")
	code, out := run(t, dir, 20*time.Second, "token", "-config", p)
	if code != 0 || !strings.Contains(out, "auth: none") || !strings.Contains(out, "http://127.0.0.1:8080/") {
		t.Errorf("token with auth: none: exit %d, %q", code, out)
	}
	if code, out := run(t, dir, 20*time.Second, "token", "-config", p, "-viewer"); code == 0 || !strings.Contains(out, "auth: none") {
		t.Errorf("token -viewer with auth: none: exit %d, %q; want a refusal naming auth: none", code, out)
	}
}
