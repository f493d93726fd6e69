package web

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSecretsText(t *testing.T) {
	got := secretsText("t0k", "192.168.1.2", 8080, false)
	want := "#define WIFI_SSID \"your-ssid\"\n#define WIFI_PASSWORD \"your-password\"\n#define GW_ENROLL_TOKEN \"t0k\"\n#define GW_HOST \"192.168.1.2\"\n#define GW_PORT 8080\n"
	if got != want {
		t.Errorf("mDNS off:\n%s\nwant:\n%s", got, want)
	}
	if got := secretsText("t0k", "h", 80, true); strings.Contains(got, "GW_HOST") || strings.Contains(got, "GW_PORT") {
		t.Errorf("mDNS on names the host:\n%s", got)
	}
	if got := cString("a\"b\\c\n"); got != `"a\"b\\c\x0a"` {
		t.Errorf("cString: %s", got)
	}
}

func TestRequestHostPort(t *testing.T) {
	for _, tc := range []struct {
		host string
		want string
		port int
	}{
		{"pi.local:8080", "pi.local", 8080},
		{"pi.local", "pi.local", 80},
		{"[fe80::1]:9000", "fe80::1", 9000},
		{"10.0.0.2:99999", "10.0.0.2", 80},
	} {
		r := httptest.NewRequest("GET", "/api/enroll", nil)
		r.Host = tc.host
		if h, p := requestHostPort(r); h != tc.want || p != tc.port {
			t.Errorf("%s: %s %d, want %s %d", tc.host, h, p, tc.want, tc.port)
		}
	}
}
