package web_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// FuzzBrowserMessage feeds arbitrary bytes as one browser text message
// through the real /ws handler (the in-process rig: hub, board, web server
// on loopback). The property: no panic; every answer is a JSON object of
// type ack or error; the connection stays usable (a subscribe with an id is
// acked after it). Messages the contract closes on (invalid UTF-8: 1007,
// over 16 KiB: 1009) must close with exactly that code.
func FuzzBrowserMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"command","id":"c1","device":"board","value":"toggle"}`,
		`{"type":"command","id":7,"device":"board","label":"led","value":{"on":true}}`,
		`{"type":"command","id":"h","device":"board","value":"hang"}`,
		`{"type":"command","device":"nope","value":1}`,
		`{"type":"command","id":"x","device":"board"}`,
		`{"type":"subscribe","id":"s","devices":["board"],"logs":true}`,
		`{"type":"subscribe","devices":[]}`,
		`{"type":"subscribe","devices":["../etc","a b",""]}`,
		`{"type":"subscribe","devices":"all"}`,
		`{"type":"command","id":123456789012345678901234567890123456789,"device":"board","value":"toggle"}`,
		`{"type":"command","id":1e400,"device":"board","value":"toggle"}`,
		`{"type":"command","id":-0.0e-0,"device":"board","value":"toggle"}`,
		`{"type":"command","id":{"a":1},"device":"board","value":"toggle"}`,
		`{"type":"command","id":"` + strings.Repeat("i", 8000) + `","device":"board","value":"toggle"}`,
		`{"type":"ping"}`,
		`{"id":"n"}`,
		`{}`, `[]`, `null`, `"x"`, `42`, ``, ` `, `{`, `{"type":`, `{"type":"command"} trailing`,
		`{"type":"command","value":"\ud800"}`,
		strings.Repeat(`[`, 5000) + strings.Repeat(`]`, 5000),
		`{"type":"command","device":"board","value":` + strings.Repeat(`{"a":`, 3000) + `1` + strings.Repeat(`}`, 3000) + `}`,
		"{\"type\":\"command\",\"device\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	r := newRig(f)
	// The rig's board takes commands on a channel: drain it for the whole run.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-r.cmds:
			case <-stop:
				return
			}
		}
	}()
	f.Cleanup(func() { close(stop); <-done })

	var c *websocket.Conn
	connect := func(t *testing.T) {
		c = r.dial(t, "/ws", websocket.DefaultDialer)
		if m := readMsg(t, c); m.Type != "snapshot" {
			t.Fatalf("first frame %+v, want the snapshot", m)
		}
	}
	n := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		// r.dial registers the close with this t; each input gets its own
		// connection's lifetime tied to it.
		connect(t)
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := c.WriteMessage(websocket.TextMessage, data); err != nil {
			t.Fatalf("write: %v", err)
		}
		if !utf8.Valid(data) || len(data) > 16<<10 {
			want := websocket.CloseInvalidFramePayloadData
			if len(data) > 16<<10 {
				want = websocket.CloseMessageTooBig
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				_, b, err := c.ReadMessage()
				if err == nil {
					checkAnswer(t, b)
					continue
				}
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || (ce.Code != want && !(want == websocket.CloseMessageTooBig && ce.Code == websocket.CloseInvalidFramePayloadData)) {
					t.Fatalf("message of %d bytes (valid UTF-8 %v): connection ended with %v, want close %d", len(data), utf8.Valid(data), err, want)
				}
				return
			}
		}
		n++
		sentinel := fmt.Sprintf("sentinel-%d", n)
		c.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","id":"`+sentinel+`"}`))
		deadline := time.Now().Add(5 * time.Second)
		for {
			c.SetReadDeadline(deadline)
			_, b, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("after %q the connection ended before the sentinel's ack: %v", trunc(data), err)
			}
			m := checkAnswer(t, b)
			if m.Type == "ack" && m.ID == sentinel {
				return
			}
		}
	})
}

// checkAnswer fails unless b is a JSON object of type ack or error (an
// error with a message).
func checkAnswer(t *testing.T, b []byte) msg {
	t.Helper()
	var m msg
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %q", err, trunc(b))
	}
	if err := json.Unmarshal(b, &m); err != nil {
		// id may be a number: decode the type and error alone.
		var m2 struct{ Type, Error string }
		if err := json.Unmarshal(b, &m2); err != nil {
			t.Fatalf("answer %q: %v", trunc(b), err)
		}
		m.Type, m.Error = m2.Type, m2.Error
	}
	switch m.Type {
	case "ack":
	case "error":
		if m.Error == "" {
			t.Fatalf("error without a message: %q", trunc(b))
		}
	default:
		t.Fatalf("answer of type %q, want ack or error: %q", m.Type, trunc(b))
	}
	return m
}

func trunc(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
