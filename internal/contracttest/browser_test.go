package contracttest

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/testgw"
)

const browserConfigDevices = `  - id: demo
    name: "Demo board"
    transport: sim
    sim: {board: tutorial, interval: 50ms}
    commands: [toggle]
    command_format: text
  - id: climate
    transport: sim
    sim: {board: climate, interval: 50ms}
  - id: lb
    name: "Listen board"
    transport: ws-listen
    token: "lb-token-0123456789"
    commands: [toggle, ping2, ping3]
    command_format: text
  - id: lj
    transport: ws-listen
    token: "lj-token-0123456789"
    commands: [toggle, T]
    command_format: json
`

var deviceObjectKeys = []string{"id", "name", "gateway", "transport", "online", "last_seen", "reconnects", "commands", "labels"}

func checkDeviceObject(t *testing.T, d msg, gateway string) {
	t.Helper()
	for _, k := range deviceObjectKeys {
		if _, ok := d[k]; !ok {
			t.Errorf("device object %v lacks %q (contract: id,name,gateway,transport,online,last_seen,reconnects,commands,labels)", d["id"], k)
		}
	}
	if g := str(d, "gateway"); g != gateway {
		t.Errorf("device %v: gateway %q, want %q", d["id"], g, gateway)
	}
	if _, ok := d["online"].(bool); !ok {
		t.Errorf("device %v: online is not a bool: %v", d["id"], d["online"])
	}
	if _, ok := num(d, "reconnects"); !ok {
		t.Errorf("device %v: reconnects is not a number: %v", d["id"], d["reconnects"])
	}
	if _, ok := d["commands"].([]any); !ok {
		t.Errorf("device %v: commands is not an array: %v", d["id"], d["commands"])
	}
	labels, ok := d["labels"].(map[string]any)
	if !ok {
		t.Errorf("device %v: labels is not an object: %v", d["id"], d["labels"])
		return
	}
	for l, v := range labels {
		lv, ok := v.(map[string]any)
		if !ok {
			t.Errorf("device %v label %s: not an object: %v", d["id"], l, v)
			continue
		}
		for _, k := range []string{"value", "ts", "seq"} {
			if _, ok := lv[k]; !ok {
				t.Errorf("device %v label %s lacks %q: %v", d["id"], l, k, lv)
			}
		}
	}
}

func findDevice(devs []any, id string) msg {
	for _, d := range devs {
		if m, ok := d.(map[string]any); ok && str(m, "id") == id {
			return m
		}
	}
	return nil
}

func isEvent(m msg) bool { return str(m, "type") == "event" }

func TestBrowserWS(t *testing.T) {
	t.Parallel()
	g := testgw.Start(t, header("gw1", "")+browserConfigDevices)
	// Both sims have reported at least once.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		d1, d2 := device(t, g, "demo"), device(t, g, "climate")
		l1, _ := d1["labels"].(map[string]any)
		l2, _ := d2["labels"].(map[string]any)
		if len(l1) > 0 && len(l2) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	t.Run("snapshot first with the device object fields", func(t *testing.T) {
		_, r := browser(t, g, "/ws")
		m := r.NextMsg(t, 5*time.Second)
		if str(m, "type") != "snapshot" {
			t.Fatalf("first frame is %q, want snapshot: %v", str(m, "type"), m)
		}
		if _, ok := num(m, "seq"); !ok {
			t.Errorf("snapshot has no numeric seq: %v", m)
		}
		devs, _ := m["devices"].([]any)
		if len(devs) != 4 {
			t.Fatalf("snapshot lists %d devices, want 4: %v", len(devs), m)
		}
		for _, id := range []string{"demo", "climate", "lb", "lj"} {
			d := findDevice(devs, id)
			if d == nil {
				t.Errorf("snapshot lacks device %s", id)
				continue
			}
			checkDeviceObject(t, d, "gw1")
		}
		demo := findDevice(devs, "demo")
		if demo != nil {
			if str(demo, "name") != "Demo board" || str(demo, "transport") != "sim" {
				t.Errorf("demo: name %q transport %q", str(demo, "name"), str(demo, "transport"))
			}
			if !reflect.DeepEqual(demo["commands"], []any{"toggle"}) {
				t.Errorf("demo commands = %v, want [toggle]", demo["commands"])
			}
			if on, _ := demo["online"].(bool); !on {
				t.Errorf("demo (sim) not online in snapshot")
			}
			labels, _ := demo["labels"].(map[string]any)
			c, ok := labels["count"].(map[string]any)
			if !ok {
				t.Errorf("demo labels lack count: %v", labels)
			} else if s := seqOf(c); s > seqOf(m) || s <= 0 {
				t.Errorf("label seq %d not in (0, snapshot seq %d]", s, seqOf(m))
			}
		}
		if lb := findDevice(devs, "lb"); lb != nil {
			if on, _ := lb["online"].(bool); on {
				t.Errorf("lb has no board connected but is online")
			}
			if str(lb, "name") != "Listen board" || str(lb, "transport") != "ws-listen" {
				t.Errorf("lb: name %q transport %q", str(lb, "name"), str(lb, "transport"))
			}
		}
		if lj := findDevice(devs, "lj"); lj != nil && str(lj, "name") != "lj" {
			t.Errorf("lj has no name: contract default is the id, got %q", str(lj, "name"))
		}
	})

	t.Run("events carry device,label,value,ts,seq and seq rises by one", func(t *testing.T) {
		_, r := browser(t, g, "/ws")
		snap := r.NextMsg(t, 5*time.Second)
		prev := seqOf(snap)
		for i := 0; i < 40; i++ {
			m := r.WaitFor(t, 5*time.Second, "event", isEvent)
			for _, k := range []string{"device", "label", "value", "ts", "seq"} {
				if _, ok := m[k]; !ok {
					t.Fatalf("event lacks %q: %v", k, m)
				}
			}
			if _, err := time.Parse(time.RFC3339Nano, str(m, "ts")); err != nil {
				t.Errorf("event ts %q is not RFC 3339: %v", str(m, "ts"), err)
			}
			if s := seqOf(m); s != prev+1 {
				t.Fatalf("event seq %d after %d (snapshot seq %d): seq must rise by one", s, prev, seqOf(snap))
			}
			prev = seqOf(m)
		}
	})

	t.Run("command acked with its id; text and json boards receive the contract's bytes", func(t *testing.T) {
		c, r := browser(t, g, "/ws")
		r.NextMsg(t, 5*time.Second)
		start := time.Now()
		sendJSON(t, c, map[string]any{"type": "command", "id": "c1", "device": "demo", "label": "led", "value": "toggle"})
		a := r.WaitFor(t, 2*time.Second, "ack c1", func(m msg) bool { return str(m, "id") == "c1" })
		if str(a, "type") != "ack" {
			t.Fatalf("answer to c1: %v, want ack", a)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("ack took %v, contract: within 2 s", d)
		}

		b := dialBoard(t, g, "lb", "lb-token-0123456789", true)
		waitOnline(t, g, "lb", true, 5*time.Second)
		sendJSON(t, c, map[string]any{"type": "command", "id": "c2", "device": "lb", "label": "led", "value": "toggle"})
		if got := string(b.r.Next(t, 2*time.Second)); got != "toggle" {
			t.Errorf("text board received %q, want the bare value toggle", got)
		}
		if a := r.WaitFor(t, 2*time.Second, "answer c2", func(m msg) bool { return str(m, "id") == "c2" }); str(a, "type") != "ack" {
			t.Errorf("answer to c2: %v, want ack", a)
		}

		j := dialBoard(t, g, "lj", "lj-token-0123456789", true)
		waitOnline(t, g, "lj", true, 5*time.Second)
		sendJSON(t, c, map[string]any{"type": "command", "id": "c3", "device": "lj", "label": "led", "value": "toggle"})
		got := j.r.Next(t, 2*time.Second)
		var gm msg
		if err := json.Unmarshal(got, &gm); err != nil || !reflect.DeepEqual(gm, msg{"label": "led", "value": "toggle"}) {
			t.Errorf("json board received %q, want {\"label\":\"led\",\"value\":\"toggle\"}", got)
		}
		if a := r.WaitFor(t, 2*time.Second, "answer c3", func(m msg) bool { return str(m, "id") == "c3" }); str(a, "type") != "ack" {
			t.Errorf("answer to c3: %v, want ack", a)
		}
		b.c.Close()
		j.c.Close()
		waitOnline(t, g, "lb", false, 5*time.Second)
		waitOnline(t, g, "lj", false, 5*time.Second)
	})

	t.Run("command errors within 2 s", func(t *testing.T) {
		c, r := browser(t, g, "/ws")
		r.NextMsg(t, 5*time.Second)
		cases := []struct {
			id   string
			cmd  map[string]any
			want string // substring of the error, "" for any
		}{
			{"e1", map[string]any{"type": "command", "id": "e1", "device": "nosuch", "label": "led", "value": "toggle"}, ""},
			{"e2", map[string]any{"type": "command", "id": "e2", "device": "demo", "label": "led", "value": "explode"}, ""},
			{"e3", map[string]any{"type": "command", "id": "e3", "device": "lb", "label": "led", "value": "toggle"}, "offline"},
			{"e4", map[string]any{"type": "command", "id": "e4", "label": "led", "value": "toggle"}, ""},
		}
		waitOnline(t, g, "lb", false, 5*time.Second)
		for _, tc := range cases {
			start := time.Now()
			sendJSON(t, c, tc.cmd)
			a := r.WaitFor(t, 2*time.Second, "answer "+tc.id, func(m msg) bool { return str(m, "id") == tc.id })
			if str(a, "type") != "error" || str(a, "error") == "" {
				t.Errorf("%v → %v, want {type:error,id,error}", tc.cmd, a)
			}
			if tc.want != "" && !strings.Contains(str(a, "error"), tc.want) {
				t.Errorf("%v → error %q, want it to say %q", tc.cmd, str(a, "error"), tc.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s answered after %v", tc.id, d)
			}
		}
	})

	t.Run("a command sent while offline is never delivered later", func(t *testing.T) {
		c, r := browser(t, g, "/ws")
		r.NextMsg(t, 5*time.Second)
		waitOnline(t, g, "lb", false, 5*time.Second)
		sendJSON(t, c, map[string]any{"type": "command", "id": "o1", "device": "lb", "label": "led", "value": "toggle"})
		if a := r.WaitFor(t, 2*time.Second, "answer o1", func(m msg) bool { return str(m, "id") == "o1" }); str(a, "type") != "error" {
			t.Fatalf("command to an offline board: %v, want error", a)
		}
		b := dialBoard(t, g, "lb", "lb-token-0123456789", true)
		waitOnline(t, g, "lb", true, 5*time.Second)
		sendJSON(t, c, map[string]any{"type": "command", "id": "o2", "device": "lb", "label": "led", "value": "ping3"})
		if got := string(b.r.Next(t, 2*time.Second)); got != "ping3" {
			t.Errorf("the board's first frame after coming back is %q, want ping3 (the offline command must not be replayed)", got)
		}
		b.c.Close()
		waitOnline(t, g, "lb", false, 5*time.Second)
	})

	t.Run("status online:false with a reason on every link loss", func(t *testing.T) {
		_, r := browser(t, g, "/ws")
		r.NextMsg(t, 5*time.Second)
		isLB := func(online bool) func(m msg) bool {
			return func(m msg) bool {
				on, ok := m["online"].(bool)
				return str(m, "type") == "status" && str(m, "device") == "lb" && ok && on == online
			}
		}
		for _, how := range []string{"close frame", "TCP reset"} {
			b := dialBoard(t, g, "lb", "lb-token-0123456789", true)
			r.WaitFor(t, 5*time.Second, "status lb online", isLB(true))
			b.send(t, `{"label":"temp","value":21.5}`)
			ev := r.WaitFor(t, 5*time.Second, "lb event", func(m msg) bool { return isEvent(m) && str(m, "device") == "lb" })
			if v, _ := num(ev, "value"); str(ev, "label") != "temp" || v != 21.5 {
				t.Errorf("event %v, want label temp value 21.5", ev)
			}
			if how == "close frame" {
				b.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
				b.c.Close()
			} else {
				b.c.UnderlyingConn().Close()
			}
			st := r.WaitFor(t, 5*time.Second, "status lb offline after "+how, isLB(false))
			if str(st, "reason") == "" {
				t.Errorf("offline status after %s has no reason: %v", how, st)
			}
		}
	})

	t.Run("subscribe devices filter", func(t *testing.T) {
		c, r := browser(t, g, "/ws")
		r.NextMsg(t, 5*time.Second)
		sendJSON(t, c, map[string]any{"type": "subscribe", "devices": []string{"climate"}})
		// A barrier: the answer to a later message means the subscribe was read.
		sendJSON(t, c, map[string]any{"type": "command", "id": "b1", "device": "nosuch", "value": "x"})
		r.WaitFor(t, 2*time.Second, "answer b1", func(m msg) bool { return str(m, "id") == "b1" })
		after := apiSeq(t, g)
		n := 0
		for n < 20 {
			m := r.WaitFor(t, 5*time.Second, "event", isEvent)
			if seqOf(m) <= after {
				continue
			}
			if str(m, "device") != "climate" {
				t.Fatalf("subscribed to climate, got %v", m)
			}
			n++
		}
	})

	t.Run("since resumes exactly, without a snapshot", func(t *testing.T) {
		// A watches throughout; B reads to E, leaves, and resumes with ?since=E.
		_, ra := browser(t, g, "/ws")
		ra.NextMsg(t, 5*time.Second)
		cb, rb := browser(t, g, "/ws")
		rb.NextMsg(t, 5*time.Second)
		var e int64
		for i := 0; i < 5; i++ {
			e = seqOf(rb.WaitFor(t, 5*time.Second, "event", isEvent))
		}
		cb.Close()
		deadline := time.Now().Add(10 * time.Second)
		for apiSeq(t, g) < e+20 {
			if time.Now().After(deadline) {
				t.Fatal("no new events")
			}
			time.Sleep(20 * time.Millisecond)
		}
		_, rb2 := browser(t, g, "/ws?since="+itoa(int(e)))
		first := rb2.NextMsg(t, 5*time.Second)
		if str(first, "type") != "event" || seqOf(first) != e+1 {
			t.Fatalf("?since=%d: first frame %v, want the event with seq %d (no snapshot)", e, first, e+1)
		}
		got := map[int64]msg{seqOf(first): first}
		for s := e + 2; s <= e+20; s++ {
			m := rb2.WaitFor(t, 5*time.Second, "event", isEvent)
			if seqOf(m) != s {
				t.Fatalf("resumed stream: seq %d, want %d", seqOf(m), s)
			}
			got[s] = m
		}
		want := map[int64]msg{}
		for len(want) < 20 {
			m := ra.WaitFor(t, 5*time.Second, "event", isEvent)
			if s := seqOf(m); s > e && s <= e+20 {
				want[s] = m
			}
		}
		for s := e + 1; s <= e+20; s++ {
			if !reflect.DeepEqual(got[s], want[s]) {
				t.Errorf("seq %d: resumed %v, live browser saw %v", s, got[s], want[s])
			}
		}
	})
}

func sortedKeys(m msg) []string {
	k := keys(m)
	sort.Strings(k)
	return k
}
