package contracttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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

// enrollConfig has one config.yaml device (a sim board) and leaves
// enroll_token empty, so the gateway generates one.
func enrollConfig(id string) string {
	return header(id, "") + `  - id: cfgdev
    transport: sim
    sim: {board: tutorial, interval: 200ms}
`
}

// enrollToken reads GET /api/enroll and checks its shape.
func enrollToken(t *testing.T, g *testgw.Gateway) string {
	t.Helper()
	code, body := g.Get("/api/enroll")
	if code != 200 {
		t.Fatalf("GET /api/enroll: %d %s", code, body)
	}
	var e struct {
		EnrollToken string `json:"enroll_token"`
		URL         string `json:"url"`
		MDNS        *bool  `json:"mdns"`
		Secrets     string `json:"secrets"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.EnrollToken == "" || e.MDNS == nil {
		t.Fatalf("GET /api/enroll: %v %s", err, body)
	}
	if want := "ws://" + g.Addr + "/device/"; e.URL != want {
		t.Errorf("url %q, want %q", e.URL, want)
	}
	host, port, _ := strings.Cut(g.Addr, ":")
	for _, line := range []string{
		`#define WIFI_SSID "your-ssid"`, `#define WIFI_PASSWORD "your-password"`,
		`#define GW_ENROLL_TOKEN "` + e.EnrollToken + `"`, `#define GW_HOST "` + host + `"`, `#define GW_PORT ` + port,
	} {
		if !strings.Contains(e.Secrets, line+"\n") {
			t.Errorf("secrets lack %q:\n%s", line, e.Secrets)
		}
	}
	return e.EnrollToken
}

// pendingList is GET /api/pending.
func pendingList(t *testing.T, g *testgw.Gateway) []msg {
	t.Helper()
	code, body := g.Get("/api/pending")
	if code != 200 {
		t.Fatalf("GET /api/pending: %d %s", code, body)
	}
	var l []msg
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatalf("GET /api/pending: %v %s", err, body)
	}
	return l
}

func pendingEntry(l []msg, id string) msg {
	for _, p := range l {
		if str(p, "id") == id {
			return p
		}
	}
	return nil
}

// dialRefused dials /device/id with a Bearer token and expects a refused
// upgrade; it returns the status and body.
func dialRefused(t *testing.T, g *testgw.Gateway, id, token string) (int, string) {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	c, resp, err := dial(g.WSURL("/device/"+id), h)
	if err == nil {
		c.Close()
		t.Fatalf("/device/%s with that token: upgraded, want refused", id)
	}
	body := ""
	if resp != nil && resp.Body != nil {
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
	}
	return status(resp), body
}

func jsonBody(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestEnrollAdopt: a board enrolls with the enroll token and is held as
// pending (attributes shown, readings not published), is adopted over the
// API (it receives its id and token, then close 1000), dials again as the
// new device and its readings reach browsers, also after a gateway restart;
// the enroll token opens neither the adopted device nor the id it enrolled
// under; forgetting it removes it everywhere, and a config.yaml device
// cannot be forgotten.
func TestEnrollAdopt(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, enrollConfig("gw-enroll"))
	enroll := enrollToken(t, g)
	tokFile := filepath.Join(g.Dir, "data", "enroll_token")
	if fi, err := os.Stat(tokFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state_dir/enroll_token: %v %v, want mode 0600", fi, err)
	}
	if b, _ := os.ReadFile(tokFile); strings.TrimSpace(string(b)) != enroll {
		t.Fatalf("enroll_token file holds %q, /api/enroll says %q", b, enroll)
	}

	_, br := browser(t, g, "/ws")
	if first := br.NextMsg(t, 5*time.Second); str(first, "type") != "snapshot" {
		t.Fatalf("first frame: %v", first)
	}
	// Every frame the browser gets is checked: never an event of the
	// pending board (under either id before adoption).
	leaked := func(m msg) bool {
		return str(m, "type") == "event" && str(m, "device") == "newboard"
	}

	b := dialBoard(t, g, "newboard", enroll, true)
	b.send(t, `{"temp":21.5}`)
	b.send(t, `{"$fw":"1.0.0","$chip":"esp32","$mac":"24:6F:28:AA:BB:CC"}`)
	var p msg
	testutil.Eventually(t, 5*time.Second, "newboard pending with its info", func() bool {
		p = pendingEntry(pendingList(t, g), "newboard")
		info, _ := p["info"].(map[string]any)
		return info != nil && info["fw"] == "1.0.0" && info["chip"] == "esp32" && info["mac"] == "24:6F:28:AA:BB:CC"
	})
	if str(p, "transport") != "ws-listen" || !strings.HasPrefix(str(p, "addr"), "127.0.0.1:") {
		t.Errorf("pending entry: %v", p)
	}
	if _, err := time.Parse(time.RFC3339, str(p, "first_seen")); err != nil {
		t.Errorf("first_seen %q: %v", str(p, "first_seen"), err)
	}
	if code, _ := g.Get("/api/devices/newboard"); code != 404 {
		t.Errorf("GET /api/devices/newboard while pending: %d, want 404", code)
	}

	// Adopt as garage.
	code, body := g.Do("POST", "/api/pending/newboard/adopt", jsonBody(map[string]any{"id": "garage", "name": "Garage", "commands": []string{"toggle"}}))
	if code != 200 {
		t.Fatalf("adopt: %d %s", code, body)
	}
	var dev msg
	json.Unmarshal(body, &dev)
	if str(dev, "id") != "garage" || str(dev, "name") != "Garage" || str(dev, "transport") != "ws-listen" || fmt.Sprint(dev["commands"]) != "[toggle]" || str(dev, "source") != "api" {
		t.Errorf("adopt answer: %s", body)
	}
	if _, b := g.Get("/api/devices/cfgdev"); !strings.Contains(string(b), `"source":"config"`) {
		t.Errorf("a config.yaml device: %s, want \"source\":\"config\"", b)
	}
	// The board gets exactly the adopted frame, then close 1000.
	var adopted struct{ Type, ID, Token string }
	frame := b.r.Next(t, 5*time.Second)
	if err := json.Unmarshal(frame, &adopted); err != nil || adopted.Type != "adopted" || adopted.ID != "garage" || len(adopted.Token) < 16 {
		t.Fatalf("adopted frame: %s", frame)
	}
	var keysOf map[string]any
	json.Unmarshal(frame, &keysOf)
	if len(keysOf) != 3 {
		t.Errorf("adopted frame has other keys: %s", frame)
	}
	if err, ok := b.r.Closed(5 * time.Second); !ok || !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("pending connection after adoption: %v (ended %v), want close 1000", err, ok)
	}
	br.WaitFor(t, 5*time.Second, "a snapshot with garage", func(m msg) bool {
		if leaked(m) {
			t.Errorf("a pending board's reading reached a browser: %v", m)
		}
		ids, _ := snapshotDevices(m)
		return str(m, "type") == "snapshot" && sameSet(ids, []string{"cfgdev", "garage"})
	})
	if l := pendingList(t, g); pendingEntry(l, "newboard") != nil {
		t.Errorf("newboard still pending after adoption: %v", l)
	}
	devYAML, err := os.ReadFile(filepath.Join(g.Dir, "data", "devices.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"id: garage", "transport: ws-listen", "token: " + adopted.Token, "enrolled_as: newboard"} {
		if !bytes.Contains(devYAML, []byte(want)) {
			t.Errorf("devices.yaml lacks %q:\n%s", want, devYAML)
		}
	}

	// The board dials again as garage with its token: its readings flow.
	b2 := dialBoard(t, g, "garage", adopted.Token, true)
	b2.send(t, `{"temp":22.5}`)
	br.WaitFor(t, 5*time.Second, "garage's reading", func(m msg) bool {
		return str(m, "type") == "event" && str(m, "device") == "garage" && m["value"] == 22.5
	})

	// The enroll token opens neither garage, nor newboard again, nor a
	// config.yaml device.
	if code, _ := dialRefused(t, g, "garage", enroll); code != 401 && code != 403 {
		t.Errorf("enroll token on /device/garage: %d, want 401 or 403", code)
	}
	if code, body := dialRefused(t, g, "newboard", enroll); code != 403 || !strings.Contains(body, "already adopted as garage") {
		t.Errorf("enroll token on /device/newboard after adoption: %d %q, want 403 already adopted as garage", code, body)
	}
	if code, _ := dialRefused(t, g, "cfgdev", enroll); code != 401 && code != 403 {
		t.Errorf("enroll token on /device/cfgdev: %d, want 401 or 403", code)
	}
	if code, _ := dialRefused(t, g, "stranger", "wrong-token"); code != 401 {
		t.Errorf("wrong token on an unknown id: %d, want 401", code)
	}

	// Restart: garage is still a device and its board gets back in.
	b2.c.Close()
	if err, took := g.Terminate(); err != nil {
		t.Fatalf("SIGTERM: %v after %v", err, took)
	}
	g.Restart()
	_, br = browser(t, g, "/ws")
	if first := br.NextMsg(t, 5*time.Second); str(first, "type") != "snapshot" {
		t.Fatalf("first frame after restart: %v", first)
	}
	if again := enrollToken(t, g); again != enroll {
		t.Errorf("enroll token changed across a restart: %q then %q", enroll, again)
	}
	b3 := dialBoard(t, g, "garage", adopted.Token, true)
	b3.send(t, `{"temp":23.5}`)
	br.WaitFor(t, 5*time.Second, "garage's reading after the restart", func(m msg) bool {
		return str(m, "type") == "event" && str(m, "device") == "garage" && m["value"] == 23.5
	})
	if code, body := dialRefused(t, g, "newboard", enroll); code != 403 || !strings.Contains(body, "already adopted as garage") {
		t.Errorf("enroll token on /device/newboard after restart: %d %q", code, body)
	}

	// Forgetting.
	if code, body := g.Do("DELETE", "/api/devices/cfgdev", nil); code != 409 {
		t.Errorf("DELETE a config.yaml device: %d %s, want 409", code, body)
	}
	if code, body := g.Do("DELETE", "/api/devices/nosuch", nil); code != 404 {
		t.Errorf("DELETE an unknown device: %d %s, want 404", code, body)
	}
	if code, body := g.Do("DELETE", "/api/devices/garage", nil); code != 204 {
		t.Fatalf("DELETE garage: %d %s, want 204", code, body)
	}
	br.WaitFor(t, 5*time.Second, "a snapshot without garage", func(m msg) bool {
		ids, _ := snapshotDevices(m)
		return str(m, "type") == "snapshot" && sameSet(ids, []string{"cfgdev"})
	})
	if code, _ := g.Get("/api/devices/garage"); code != 404 {
		t.Errorf("GET /api/devices/garage after DELETE: %d, want 404", code)
	}
	if err, ok := b3.r.Closed(5 * time.Second); !ok {
		t.Errorf("garage's link still open after DELETE: %v", err)
	}
	devYAML, _ = os.ReadFile(filepath.Join(g.Dir, "data", "devices.yaml"))
	if bytes.Contains(devYAML, []byte("garage")) {
		t.Errorf("devices.yaml still holds garage:\n%s", devYAML)
	}
	if code, _ := dialRefused(t, g, "garage", adopted.Token); code != 401 {
		t.Errorf("garage's old token after DELETE: %d, want 401", code)
	}
}

// TestEnrollEviction: at most 32 boards wait for adoption; the 33rd evicts
// the one waiting longest, whose connection is closed with a reason.
func TestEnrollEviction(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, enrollConfig("gw-evict"))
	enroll := enrollToken(t, g)
	first := dialBoard(t, g, "b00", enroll, true)
	testutil.Eventually(t, 5*time.Second, "b00 pending", func() bool { return pendingEntry(pendingList(t, g), "b00") != nil })
	for i := 1; i < 33; i++ {
		dialBoard(t, g, fmt.Sprintf("b%02d", i), enroll, true)
	}
	err, ok := first.r.Closed(5 * time.Second)
	var ce *websocket.CloseError
	if !ok || !asCloseError(err, &ce) || ce.Text == "" {
		t.Fatalf("the oldest pending board: %v (ended %v), want a close frame with a reason", err, ok)
	}
	testutil.Eventually(t, 5*time.Second, "32 pending boards without b00", func() bool {
		l := pendingList(t, g)
		return len(l) == 32 && pendingEntry(l, "b00") == nil && pendingEntry(l, "b32") != nil
	})
}

func asCloseError(err error, ce **websocket.CloseError) bool {
	c, ok := err.(*websocket.CloseError)
	*ce = c
	return ok
}

// TestEnrollHostile: adopt refuses oversized and malformed bodies, bad and
// taken ids, unknown pending ids and viewers; enrolling needs a valid id.
func TestEnrollHostile(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, enrollConfig("gw-enroll-hostile"))
	enroll := enrollToken(t, g)
	dialBoard(t, g, "victim", enroll, true)
	testutil.Eventually(t, 5*time.Second, "victim pending", func() bool { return pendingEntry(pendingList(t, g), "victim") != nil })

	adopt := func(body []byte) (int, string) {
		code, b := g.Do("POST", "/api/pending/victim/adopt", body)
		return code, string(b)
	}
	for _, tc := range []struct {
		name string
		body []byte
		want int
	}{
		{"oversized", append(append([]byte(`{"name":"`), bytes.Repeat([]byte("x"), 20<<10)...), '"', '}'), 413},
		{"bad JSON", []byte(`{"id":`), 400},
		{"not an object", []byte(`[1,2]`), 400},
		{"unknown field", []byte(`{"idd":"x"}`), 400},
		{"upper case id", jsonBody(map[string]string{"id": "Garage"}), 400},
		{"slash id", jsonBody(map[string]string{"id": "../x"}), 400},
		{"long id", jsonBody(map[string]string{"id": strings.Repeat("a", 65)}), 400},
		{"reserved id", jsonBody(map[string]string{"id": "bridge"}), 400},
		{"control name", jsonBody(map[string]string{"name": "a\x00b"}), 400},
		{"empty command", jsonBody(map[string]any{"commands": []string{""}}), 400},
		{"taken id", jsonBody(map[string]string{"id": "cfgdev"}), 409},
	} {
		if code, body := adopt(tc.body); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
	}
	if code, body := g.Do("POST", "/api/pending/nosuch/adopt", nil); code != 404 {
		t.Errorf("adopt an unknown pending id: %d %s, want 404", code, body)
	}
	_, viewer := tokenCmd(t, g.Dir, "-config", g.Config, "-viewer")
	asViewer := func(method, path string) int {
		req, _ := http.NewRequest(method, g.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+viewer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testutil.Eventually(t, 5*time.Second, "the viewer token in force", func() bool { return asViewer("GET", "/api/pending") == 200 })
	for _, r := range [][2]string{{"POST", "/api/pending/victim/adopt"}, {"DELETE", "/api/devices/cfgdev"}, {"GET", "/api/enroll"}} {
		if code := asViewer(r[0], r[1]); code != 403 {
			t.Errorf("viewer %s %s: %d, want 403", r[0], r[1], code)
		}
	}
	if code, _ := dialRefused(t, g, "Bad_Id", enroll); code != 400 {
		t.Errorf("enrolling under an invalid id: %d, want 400", code)
	}
	// The board is still pending and adoptable after all that.
	if code, body := adopt(nil); code != 200 {
		t.Errorf("adopt with an empty body: %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(g.Dir, "data", "devices.yaml")); err != nil {
		t.Errorf("devices.yaml: %v", err)
	}
}
