package contracttest

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/testgw"
)

// exactLabelValue checks a compat frame is exactly {"label":L,"value":V}.
func exactLabelValue(t *testing.T, b []byte) msg {
	t.Helper()
	var m msg
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("compat frame not JSON: %q", b)
	}
	if len(m) != 2 || m["label"] == nil || !hasKey(m, "value") {
		t.Fatalf("compat frame %s: want exactly {\"label\":L,\"value\":V}", b)
	}
	return m
}

func hasKey(m msg, k string) bool { _, ok := m[k]; return ok }

func TestCompatEndpoint(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gw1", "")+`  - id: demo
    transport: sim
    sim: {board: tutorial, interval: 50ms}
    commands: [toggle]
  - id: ct
    transport: ws-listen
    token: "ct-token-0123456789"
    commands: [toggle, "on"]
    command_format: text
  - id: cj
    transport: ws-listen
    token: "cj-token-0123456789"
    commands: [toggle, "on"]
    command_format: json
`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, _ := device(t, g, "demo")["labels"].(map[string]any)
		if len(l) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo does not report count and ledStatus: %v", l)
		}
		time.Sleep(20 * time.Millisecond)
	}

	t.Run("current values on connect, then new readings, as exactly {label,value}", func(t *testing.T) {
		labels, _ := device(t, g, "demo")["labels"].(map[string]any)
		_, r := browser(t, g, "/ws/devices/demo")
		seen := map[string]bool{}
		for i := 0; i < len(labels); i++ {
			m := exactLabelValue(t, r.Next(t, 5*time.Second))
			seen[str(m, "label")] = true
		}
		for l := range labels {
			if !seen[l] {
				t.Errorf("the first %d frames do not give label %s's current value (saw %v)", len(labels), l, seen)
			}
		}
		for i := 0; i < 10; i++ {
			exactLabelValue(t, r.Next(t, 5*time.Second))
		}
	})

	t.Run("a ws-listen board's reading reaches the compat client", func(t *testing.T) {
		b := dialBoard(t, g, "ct", "ct-token-0123456789", true)
		waitOnline(t, g, "ct", true, 5*time.Second)
		_, r := browser(t, g, "/ws/devices/ct")
		b.send(t, `{"temp":21.5}`)
		m := exactLabelValue(t, r.Next(t, 5*time.Second))
		if str(m, "label") != "temp" || m["value"] != 21.5 {
			t.Errorf("compat frame %v, want {label:temp,value:21.5}", m)
		}
		b.c.Close()
		waitOnline(t, g, "ct", false, 5*time.Second)
	})

	cmds := []struct {
		name, dev, token, frame string
		want                    string // text board: exact bytes; json board: JSON
		json                    bool
	}{
		{"text board, {label,value} frame", "ct", "ct-token-0123456789", `{"label":"led","value":"toggle"}`, "toggle", false},
		{"text board, other text T", "ct", "ct-token-0123456789", `toggle`, "toggle", false},
		{"json board, {label,value} frame", "cj", "cj-token-0123456789", `{"label":"led","value":"toggle"}`, `{"label":"led","value":"toggle"}`, true},
		{"json board, other text T", "cj", "cj-token-0123456789", `toggle`, `{"value":"toggle"}`, true},
	}
	for _, tc := range cmds {
		t.Run("command: "+tc.name, func(t *testing.T) {
			b := dialBoard(t, g, tc.dev, tc.token, true)
			waitOnline(t, g, tc.dev, true, 5*time.Second)
			c, _ := browser(t, g, "/ws/devices/"+tc.dev)
			// Not in the allow-list: never reaches the board.
			c.WriteMessage(websocket.TextMessage, []byte("explode"))
			c.WriteMessage(websocket.TextMessage, []byte(tc.frame))
			got := b.r.Next(t, 2*time.Second)
			if tc.json {
				var gm, wm msg
				json.Unmarshal([]byte(tc.want), &wm)
				if err := json.Unmarshal(got, &gm); err != nil || !reflect.DeepEqual(gm, wm) {
					t.Errorf("compat %q → json board received %q, want %s", tc.frame, got, tc.want)
				}
			} else if string(got) != tc.want {
				t.Errorf("compat %q → text board received %q, want %q", tc.frame, got, tc.want)
			}
			b.c.Close()
			waitOnline(t, g, tc.dev, false, 5*time.Second)
		})
	}

	t.Run("auth and origin as for /ws", func(t *testing.T) {
		_, resp, err := dial(g.WSURL("/ws/devices/demo"), nil)
		if err == nil || status(resp) != http.StatusUnauthorized {
			t.Errorf("compat without token: err %v HTTP %d, want 401", err, status(resp))
		}
		h := g.Header()
		h.Set("Origin", "http://evil.example")
		_, resp, err = dial(g.WSURL("/ws/devices/demo"), h)
		if err == nil || status(resp) != http.StatusForbidden {
			t.Errorf("compat with a cross-site Origin: err %v HTTP %d, want 403", err, status(resp))
		}
	})
}
