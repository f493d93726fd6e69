package contracttest

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/testgw"
)

func TestHTTPAPI(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gw1", "")+`  - id: demo
    name: "Demo board"
    transport: sim
    sim: {board: tutorial, interval: 50ms}
    commands: [toggle]
  - id: off
    transport: ws-listen
    token: "off-token-0123456789"
    commands: [toggle]
`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, _ := device(t, g, "demo")["labels"].(map[string]any)
		if l["count"] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("demo never reports count")
		}
		time.Sleep(20 * time.Millisecond)
	}

	t.Run("GET /api/devices shape", func(t *testing.T) {
		code, body := g.Get("/api/devices")
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var m msg
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("not JSON: %s", body)
		}
		if str(m, "gateway") != "gw1" {
			t.Errorf("gateway %v, want gw1", m["gateway"])
		}
		if _, ok := num(m, "seq"); !ok {
			t.Errorf("no numeric seq: %s", body)
		}
		devs, ok := m["devices"].([]any)
		if !ok || len(devs) != 2 {
			t.Fatalf("devices: %v", m["devices"])
		}
		for _, id := range []string{"demo", "off"} {
			if d := findDevice(devs, id); d == nil {
				t.Errorf("no device %s", id)
			} else {
				checkDeviceObject(t, d, "gw1")
			}
		}
	})

	t.Run("GET /api/devices/{id}", func(t *testing.T) {
		d := device(t, g, "demo")
		checkDeviceObject(t, d, "gw1")
		if str(d, "id") != "demo" {
			t.Errorf("id %v", d["id"])
		}
		if code, body := g.Get("/api/devices/nosuch"); code != 404 {
			t.Errorf("unknown device: %d %s, want 404", code, body)
		}
	})

	t.Run("GET history?label=", func(t *testing.T) {
		code, body := g.Get("/api/devices/demo/history?label=count")
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var m any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("not JSON: %s", body)
		}
	})

	cmds := []struct {
		name   string
		dev    string
		body   string
		bearer bool
		want   int
	}{
		{"ack", "demo", `{"label":"led","value":"toggle"}`, true, 200},
		{"bad body", "demo", `{"label":`, true, 400},
		{"not in allow-list", "demo", `{"label":"led","value":"explode"}`, true, 403},
		{"unknown device", "nosuch", `{"label":"led","value":"toggle"}`, true, 404},
		{"offline", "off", `{"label":"led","value":"toggle"}`, true, 409},
		{"no token", "demo", `{"label":"led","value":"toggle"}`, false, 401},
	}
	for _, tc := range cmds {
		t.Run("POST command: "+tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", g.URL+"/api/devices/"+tc.dev+"/command", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if tc.bearer {
				req.Header.Set("Authorization", "Bearer "+g.Token)
			}
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("POST %s → %d %s, want %d", tc.body, resp.StatusCode, body, tc.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("answered after %v (contract: within 2 s)", d)
			}
			if tc.want == 200 && !strings.Contains(string(body), "ack") {
				t.Errorf("200 body %s does not carry the ack", body)
			}
		})
	}

	t.Run("healthz needs no token", func(t *testing.T) {
		resp, err := http.Get(g.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("/healthz without token: %d, want 200", resp.StatusCode)
		}
	})

	t.Run("metrics behind the token, Prometheus text format", func(t *testing.T) {
		resp, err := http.Get(g.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("/metrics without token: %d, want 401", resp.StatusCode)
		}
		req, _ := http.NewRequest("GET", g.URL+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+g.Token)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("/metrics with Bearer: %d %s", resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("/metrics Content-Type %q, want text/plain (Prometheus text format)", ct)
		}
		sample := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [-+]?([0-9.eE+-]+|NaN|\+Inf|-Inf)( [0-9]+)?$`)
		typ := regexp.MustCompile(`^# (TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped)|HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*)$`)
		samples := 0
		for _, line := range strings.Split(strings.TrimRight(string(body), "\n"), "\n") {
			switch {
			case strings.HasPrefix(line, "# TYPE") || strings.HasPrefix(line, "# HELP"):
				if !typ.MatchString(line) {
					t.Errorf("bad metadata line %q", line)
				}
			case strings.HasPrefix(line, "#") || line == "":
			default:
				if !sample.MatchString(line) {
					t.Errorf("not a Prometheus sample line: %q", line)
				}
				samples++
			}
		}
		if samples == 0 {
			t.Errorf("/metrics has no samples:\n%s", body)
		}
	})
}
