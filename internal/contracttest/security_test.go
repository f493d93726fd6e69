package contracttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/testgw"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

const boardToken = "board-secret-0123456789abcdef"

func TestSecurity(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gw1", "  allowed_origins: [\"http://nodered.local:1880\"]\n")+`  - id: demo
    transport: sim
    sim: {board: tutorial, interval: 50ms}
    commands: [toggle]
  - id: garage
    transport: ws-listen
    token: "`+boardToken+`"
`)
	if g.Token == "" {
		t.Fatalf("auth is on by default but no login URL with a token was logged:\n%s", g.Logs())
	}

	upgrade := func(path string, h http.Header) (int, error) {
		c, resp, err := dial(g.WSURL(path), h)
		if err == nil {
			c.Close()
			return 101, nil
		}
		return status(resp), err
	}
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	bearer := "Bearer " + g.Token
	same := "http://" + g.Addr

	wsCases := []struct {
		name string
		path string
		h    http.Header
		want int
	}{
		{"cross-site Origin → 403", "/ws", hdr("Authorization", bearer, "Origin", "http://evil.example"), 403},
		{"allowed_origins honoured", "/ws", hdr("Authorization", bearer, "Origin", "http://nodered.local:1880"), 101},
		{"same origin allowed", "/ws", hdr("Authorization", bearer, "Origin", same), 101},
		{"no token → 401", "/ws", hdr(), 401},
		{"no token, same origin → 401", "/ws", hdr("Origin", same), 401},
		{"wrong token → 401", "/ws", hdr("Authorization", "Bearer wrong"+g.Token), 401},
		{"wrong ?token= → 401", "/ws?token=nope", hdr(), 401},
		{"no Origin header + Bearer token → allowed", "/ws", hdr("Authorization", bearer), 101},
		{"?token= on the upgrade", "/ws?token=" + g.Token, hdr(), 101},
		{"ws-listen: Bearer", "/device/garage", hdr("Authorization", "Bearer "+boardToken), 101},
		{"ws-listen: ?token=", "/device/garage?token=" + boardToken, hdr(), 101},
		{"ws-listen: Origin file:// ignored", "/device/garage", hdr("Authorization", "Bearer "+boardToken, "Origin", "file://"), 101},
		{"ws-listen: cross-site Origin ignored", "/device/garage", hdr("Authorization", "Bearer "+boardToken, "Origin", "http://evil.example"), 101},
		{"ws-listen: bad token → 401", "/device/garage", hdr("Authorization", "Bearer wrong-"+boardToken), 401},
		{"ws-listen: no token → 401", "/device/garage", hdr(), 401},
		{"ws-listen: the browser token is not the board's", "/device/garage", hdr("Authorization", bearer), 401},
	}
	for _, tc := range wsCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := upgrade(tc.path, tc.h)
			if got != tc.want {
				t.Errorf("upgrade %s with %v: %d (%v), want %d", tc.path, redact(tc.h), got, err, tc.want)
			}
			if strings.HasPrefix(tc.path, "/device/") && got == 101 {
				waitOnline(t, g, "garage", false, 5*time.Second)
			}
		})
	}

	t.Run("token in state_dir/token with mode 0600", func(t *testing.T) {
		p := filepath.Join(g.Dir, "data", "token")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("state_dir/token: %v", err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("state_dir/token mode %v, want 0600", fi.Mode().Perm())
		}
		b, _ := os.ReadFile(p)
		if strings.TrimSpace(string(b)) != g.Token {
			t.Errorf("state_dir/token holds %q, the logged token is %q", b, g.Token)
		}
	})

	t.Run("login URL logged as http://HOST:PORT/?token=TOKEN", func(t *testing.T) {
		want := "http://" + g.Addr + "/?token=" + g.Token
		if !strings.Contains(g.Logs(), want) {
			t.Errorf("log lacks the login URL %s:\n%s", want, g.Logs())
		}
	})

	t.Run("login URL sets an HttpOnly SameSite=Strict cookie and redirects to /", func(t *testing.T) {
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Get(g.LoginURL())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 300 || resp.StatusCode > 399 {
			t.Fatalf("login URL: %d, want a redirect", resp.StatusCode)
		}
		if loc := resp.Header.Get("Location"); loc != "/" && loc != g.URL+"/" {
			t.Errorf("login redirect to %q, want /", loc)
		}
		var ck *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Value != "" {
				ck = c
			}
		}
		if ck == nil {
			t.Fatalf("login URL sets no cookie: %v", resp.Header["Set-Cookie"])
		}
		if !ck.HttpOnly {
			t.Errorf("cookie not HttpOnly: %v", resp.Header["Set-Cookie"])
		}
		if ck.SameSite != http.SameSiteStrictMode {
			t.Errorf("cookie not SameSite=Strict: %v", resp.Header["Set-Cookie"])
		}
		// The cookie authenticates the API and /ws.
		req, _ := http.NewRequest("GET", g.URL+"/api/devices", nil)
		req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		r2, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r2.Body.Close()
		if r2.StatusCode != 200 {
			t.Errorf("/api/devices with the login cookie: %d, want 200", r2.StatusCode)
		}
		h := hdr("Cookie", ck.Name+"="+ck.Value, "Origin", same)
		if got, err := upgrade("/ws", h); got != 101 {
			t.Errorf("/ws with the login cookie: %d (%v), want 101", got, err)
		}
	})

	t.Run("API needs the token", func(t *testing.T) {
		resp, err := http.Get(g.URL + "/api/devices")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("/api/devices without token: %d, want 401", resp.StatusCode)
		}
	})

	t.Run("tokens never appear in logs after the first line", func(t *testing.T) {
		// Everything above used the tokens in headers, queries, bad attempts.
		if n := strings.Count(g.Logs(), g.Token); n != 1 {
			t.Errorf("the login token appears %d times in the log, want once:\n%s", n, g.Logs())
		}
		if n := strings.Count(g.Logs(), boardToken); n != 0 {
			t.Errorf("the board token appears %d times in the log, want never", n)
		}
	})

	t.Run("restart keeps the token from state_dir", func(t *testing.T) {
		old := g.Token
		if err, _ := g.Stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}
		g.Restart()
		req, _ := http.NewRequest("GET", g.URL+"/api/devices", nil)
		req.Header.Set("Authorization", "Bearer "+old)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("the first start's token after a restart: %d, want 200", resp.StatusCode)
		}
	})
}

func redact(h http.Header) http.Header {
	c := h.Clone()
	for k := range c {
		if k == "Authorization" {
			c.Set(k, "Bearer …")
		}
	}
	return c
}

func TestAuthNone(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gw1", "  auth: none\n")+`  - id: demo
    transport: sim
    sim: {board: tutorial, interval: 50ms}
    commands: [toggle]
`)
	if _, err := os.Stat(filepath.Join(g.Dir, "data", "token")); err == nil {
		t.Errorf("auth: none still generated state_dir/token")
	}
	resp, err := http.Get(g.URL + "/api/devices")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("auth: none: /api/devices without token %d, want 200", resp.StatusCode)
	}
	c, resp, err := dial(g.WSURL("/ws"), nil)
	if err != nil {
		t.Fatalf("auth: none: /ws without token: %v (HTTP %d)", err, status(resp))
	}
	r := testutil.NewWSReader(c)
	if m := r.NextMsg(t, 5*time.Second); str(m, "type") != "snapshot" {
		t.Errorf("first frame %v", m)
	}
	c.Close()
	// Origin is still checked with auth: none.
	_, resp, err = dial(g.WSURL("/ws"), http.Header{"Origin": {"http://evil.example"}})
	if err == nil || status(resp) != 403 {
		t.Errorf("auth: none, cross-site Origin: %v HTTP %d, want 403", err, status(resp))
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	cert, keyf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	g := testgw.Start(t, header("gw1", "  tls: {cert: \""+cert+"\", key: \""+keyf+"\"}\n")+`  - id: demo
    transport: sim
    sim: {board: tutorial, interval: 50ms}
`)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + g.Addr + "/healthz")
	if err != nil {
		t.Fatalf("tls set: https /healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("https /healthz: %d", resp.StatusCode)
	}
	d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, HandshakeTimeout: 5 * time.Second}
	h := g.Header()
	c, resp, err := d.Dial("wss://"+g.Addr+"/ws", h)
	if err != nil {
		t.Fatalf("wss /ws: %v (HTTP %d)", err, status(resp))
	}
	c.Close()
	if m := regexp.MustCompile(`https://` + regexp.QuoteMeta(g.Addr) + `/\?token=`).FindString(g.Logs()); m == "" && g.Token != "" {
		t.Errorf("with TLS the login URL should be https://: %s", g.Logs())
	}
}
