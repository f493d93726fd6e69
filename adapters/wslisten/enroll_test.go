package wslisten

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

const enrollTok = "enroll-token-0123456789"

// newEnrollRig serves an Enroller on a real loopback server; Lookup knows
// "kitchen" as configured and "old" as adopted as "garage".
func newEnrollRig(t *testing.T) (*Enroller, *gateway.Pending, *httptest.Server) {
	t.Helper()
	p := gateway.NewPending(gateway.PendingOptions{})
	t.Cleanup(p.Close)
	e := NewEnroller(EnrollOptions{Token: enrollTok, Pending: p, Lookup: func(id string) (string, string) {
		switch id {
		case "kitchen":
			return "kitchen", ""
		case "old":
			return "", "garage"
		}
		return "", ""
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	srv := httptest.NewServer(e)
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	testutil.Eventually(t, 5*time.Second, "enroller running", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.ctx != nil
	})
	return e, p, srv
}

func dialEnroll(srv *httptest.Server, id, tok string) (*websocket.Conn, *http.Response, error) {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+tok)
	return websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/device/"+id, h)
}

func TestEnrollerRefusals(t *testing.T) {
	_, p, srv := newEnrollRig(t)
	for _, tc := range []struct {
		id, tok string
		want    int
	}{
		{"newboard", "wrong", http.StatusUnauthorized},
		{"newboard", "", http.StatusUnauthorized},
		{"kitchen", enrollTok, http.StatusForbidden},
		{"old", enrollTok, http.StatusForbidden},
		{"Bad", enrollTok, http.StatusBadRequest},
		{"bridge", enrollTok, http.StatusBadRequest}, // adopt refuses it too
	} {
		c, resp, err := dialEnroll(srv, tc.id, tc.tok)
		if err == nil {
			c.Close()
		}
		if resp == nil || resp.StatusCode != tc.want {
			t.Errorf("%s with %q: %v, want %d", tc.id, tc.tok, resp, tc.want)
		}
	}
	if p.Len() != 0 {
		t.Errorf("refused boards pending: %+v", p.List())
	}
}

func TestEnrollerPendingAndAdopt(t *testing.T) {
	_, p, srv := newEnrollRig(t)
	c, _, err := dialEnroll(srv, "newboard", enrollTok)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := testutil.NewWSReader(c)
	c.WriteMessage(websocket.TextMessage, []byte(`{"temp":1,"$fw":"1.0.0"}`))
	testutil.Eventually(t, 5*time.Second, "newboard pending with fw", func() bool {
		b, _, _, ok := p.Get("newboard")
		return ok && string(b.Info["fw"]) == `"1.0.0"` && b.Info["temp"] == nil
	})
	_, _, link, _ := p.Get("newboard")
	if err := link.Adopt(context.Background(), "garage", "tok123"); err != nil {
		t.Fatal(err)
	}
	var f map[string]string
	if err := json.Unmarshal(r.Next(t, 5*time.Second), &f); err != nil || f["type"] != "adopted" || f["id"] != "garage" || f["token"] != "tok123" {
		t.Fatalf("adopted frame: %v %v", f, err)
	}
	if err, ok := r.Closed(5 * time.Second); !ok || !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("after adoption: %v %v, want close 1000", err, ok)
	}
	testutil.Eventually(t, 5*time.Second, "newboard no longer pending", func() bool { return p.Len() == 0 })
}
