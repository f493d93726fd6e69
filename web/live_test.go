package web_test

import (
	"net/http"
	"testing"
)

func TestSetToken(t *testing.T) {
	r := newRig(t)
	get := func(h http.Header, cookie *http.Cookie) int {
		t.Helper()
		req, _ := http.NewRequest("GET", r.http.URL+"/api/devices", nil)
		for k, v := range h {
			req.Header[k] = v
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
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	if code := get(bearer(token), nil); code != 200 {
		t.Fatalf("old token before rotation: %d", code)
	}
	oldSession := loginCookie(t, r.http.URL, token)
	const fresh = "fresh-token-9876543210"
	r.srv.SetToken(fresh)
	for name, code := range map[string]int{
		"old bearer":  get(bearer(token), nil),
		"old session": get(nil, oldSession),
		"new bearer":  get(bearer(fresh), nil),
		"new session": get(nil, loginCookie(t, r.http.URL, fresh)),
		"empty token": get(bearer(""), nil),
	} {
		want := 401
		if name == "new bearer" || name == "new session" {
			want = 200
		}
		if code != want {
			t.Errorf("%s after SetToken: %d, want %d", name, code, want)
		}
	}
	if n := r.srv.Browsers(); n != 0 {
		t.Errorf("Browsers() = %d with none connected", n)
	}
	c := r.dial(t, "/ws?token="+fresh, nil)
	defer c.Close()
	readMsg(t, c) // the snapshot: the connection is counted by now
	if n := r.srv.Browsers(); n != 1 {
		t.Errorf("Browsers() = %d with one connected", n)
	}
}
