package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func attr(name, value string) Reading {
	return Reading{Label: name, Value: json.RawMessage(value), Attr: true}
}

// Attributes are the device's info, not labels: no event, no seq, an info
// message with all of them, "$name" records in history.
func TestAttributesAreInfo(t *testing.T) {
	rec := &historyRecorder{}
	clock := newFakeClock()
	h := newTestHub(t, Options{History: rec, Now: clock.Now}, DeviceInfo{ID: "kitchen"})
	l := mustAttach(t, h, "kitchen", nil)
	s, _ := mustSubscribe(t, h, -1, 0)
	drain(s)

	l.Publish(attr("fw", `"1.2.0"`), attr("rssi", `-61`), r("temp", `21.5`))
	ms := drain(s)
	if ev := kinds(ms, KindEvent); len(ev) != 1 || ev[0].Label != "temp" || ev[0].Seq != 1 {
		t.Fatalf("events %v, want only temp with seq 1", ms)
	}
	infos := kinds(ms, KindInfo)
	if len(infos) != 1 {
		t.Fatalf("%d info messages, want one for the frame", len(infos))
	}
	want := `{"type":"info","device":"kitchen","info":{"fw":"1.2.0","rssi":-61},"ts":"2026-11-23T10:00:00.123Z"}`
	if string(infos[0].Data) != want {
		t.Errorf("info frame\n got %s\nwant %s", infos[0].Data, want)
	}
	st, _ := h.DeviceState("kitchen")
	if _, ok := st.Labels["$fw"]; ok || len(st.Labels) != 1 {
		t.Errorf("labels %v: attributes must not be labels", st.Labels)
	}
	if string(st.Info["fw"]) != `"1.2.0"` || string(st.Info["rssi"]) != `-61` {
		t.Errorf("info %s", st.Info)
	}
	b, _ := json.Marshal(st)
	if !strings.Contains(string(b), `"info":{"fw":"1.2.0","rssi":-61}`) || !strings.Contains(string(b), `"readings_per_min":1`) {
		t.Errorf("device object %s", b)
	}
	recs, _ := rec.get()
	var labels []string
	for _, r := range recs {
		labels = append(labels, r.Label)
	}
	if strings.Join(labels, ",") != "$fw,$rssi,temp" {
		t.Errorf("history records %v, want $fw,$rssi,temp", labels)
	}

	// The same values again: nothing changed, no info message; an older
	// one is a backfill (history only).
	l.Publish(attr("fw", `"1.2.0"`))
	l.Publish(Reading{Label: "rssi", Value: json.RawMessage(`-90`), TS: clock.Now().Add(-time.Hour), Attr: true})
	if ms := drain(s); len(ms) != 0 {
		t.Errorf("unchanged or older attributes sent %d messages", len(ms))
	}
	if info, _ := h.Info("kitchen"); string(info["rssi"]) != "-61" {
		t.Errorf("a backfilled attribute replaced the newest: %s", info["rssi"])
	}
}

func TestAttributesBounded(t *testing.T) {
	h := newTestHub(t, Options{LabelsPerDevice: 3, ValueBytes: 16}, DeviceInfo{ID: "d"})
	l := mustAttach(t, h, "d", nil)
	l.Publish(attr("a", "1"), attr("b", "2"), attr("c", "3"), attr("d", "4"), attr("big", `"`+strings.Repeat("x", 40)+`"`), attr("", "1"))
	info, _ := h.Info("d")
	if len(info) != 3 || info["d"] != nil {
		t.Errorf("info %s: want at most 3 attributes", info)
	}
	if n := h.Counters().DroppedReadings.Load(); n != 3 {
		t.Errorf("dropped %d, want 3 (one over the count, one too long, one unnamed)", n)
	}
}

func TestRestoreAttributes(t *testing.T) {
	h := newTestHub(t, Options{}, DeviceInfo{ID: "d"})
	ts := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	h.RestoreLast(map[string]map[string]Record{"d": {
		"$fw":  {Device: "d", Label: "$fw", Value: json.RawMessage(`"0.9"`), TS: ts},
		"temp": {Device: "d", Label: "temp", Value: json.RawMessage(`20`), TS: ts, Seq: 7},
	}}, 0)
	st, _ := h.DeviceState("d")
	if string(st.Info["fw"]) != `"0.9"` || len(st.Labels) != 1 {
		t.Errorf("restored info %s labels %v", st.Info, st.Labels)
	}
	// A live value equal to the restored one still tells subscribers.
	l := mustAttach(t, h, "d", nil)
	s, _ := mustSubscribe(t, h, -1, 0)
	drain(s)
	l.Publish(attr("fw", `"0.9"`))
	if len(kinds(drain(s), KindInfo)) != 1 {
		t.Error("the first live attribute after a restore sent no info message")
	}
}

func TestSendFrameAndAddr(t *testing.T) {
	h := newTestHub(t, Options{}, DeviceInfo{ID: "d", Commands: []string{"toggle"}}, DeviceInfo{ID: "far", Remote: true})
	if err := h.SendFrame(context.Background(), "d", json.RawMessage(`{"type":"ota"}`)); !errors.Is(err, ErrOffline) {
		t.Errorf("offline: %v", err)
	}
	var got Command
	l := mustAttach(t, h, "d", func(_ context.Context, c Command) error { got = c; return nil })
	l.SetAddr("127.0.0.1:8080", "127.0.0.1:5555")
	if err := h.SendFrame(context.Background(), "d", json.RawMessage(`{"type":"ota"}`)); err != nil || !got.Frame || string(got.Value) != `{"type":"ota"}` {
		t.Errorf("SendFrame: %v, board got %+v", err, got)
	}
	if loc, rem, on := h.LinkAddr("d"); loc != "127.0.0.1:8080" || rem != "127.0.0.1:5555" || !on {
		t.Errorf("LinkAddr %q %q %v", loc, rem, on)
	}
	// A frame never passes as a command, nor a command as a frame.
	if err := h.Command(context.Background(), "d", Command{Value: json.RawMessage(`"toggle"`), Frame: true}); err != nil || got.Frame {
		t.Errorf("command with Frame set: %v, Frame %v", err, got.Frame)
	}
	if err := h.SendFrame(context.Background(), "far", json.RawMessage(`{}`)); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("remote: %v", err)
	}
	l.Detach("gone")
	if _, _, on := h.LinkAddr("d"); on {
		t.Error("LinkAddr online after detach")
	}
}

// A remote device's attributes are its gateway's info, replaced whole:
// within the limits or not at all; an empty info clears them; only remote
// devices take them.
func TestSetRemoteInfo(t *testing.T) {
	rec := &historyRecorder{}
	h := newTestHub(t, Options{History: rec, LabelsPerDevice: 3, ValueBytes: 16, LastValuesBytes: 40},
		DeviceInfo{ID: "far", Remote: true, Gateway: "pi-a"}, DeviceInfo{ID: "near"})
	s, _ := mustSubscribe(t, h, -1, 0)
	drain(s)
	raw := func(kv ...string) map[string]json.RawMessage {
		m := map[string]json.RawMessage{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = json.RawMessage(kv[i+1])
		}
		return m
	}

	if err := h.SetRemoteInfo("far", raw("fw", `"1.2.0"`, "rssi", `-61`)); err != nil {
		t.Fatal(err)
	}
	infos := kinds(drain(s), KindInfo)
	if len(infos) != 1 || !strings.Contains(string(infos[0].Data), `"info":{"fw":"1.2.0","rssi":-61}`) {
		t.Fatalf("info messages %v", infos)
	}
	// Unchanged: no message.
	if err := h.SetRemoteInfo("far", raw("fw", `"1.2.0"`, "rssi", `-61`)); err != nil {
		t.Fatal(err)
	}
	if ms := drain(s); len(ms) != 0 {
		t.Errorf("an unchanged info sent %v", ms)
	}

	// Beyond the limits: refused whole, nothing changes.
	for name, info := range map[string]map[string]json.RawMessage{
		"too many":     raw("a", `1`, "b", `2`, "c", `3`, "d", `4`),
		"too long":     raw("fw", `"0123456789abcdef"`),
		"bad name":     raw("a/b", `1`),
		"empty name":   raw("", `1`),
		"not JSON":     raw("fw", `nope`),
		"no room left": raw("a", `"0123456789ab"`, "b", `"0123456789ab"`, "c", `"0123456789ab"`),
	} {
		if err := h.SetRemoteInfo("far", info); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if ms := drain(s); len(ms) != 0 {
		t.Errorf("refused infos sent %v", ms)
	}
	if info, _ := h.Info("far"); len(info) != 2 || string(info["fw"]) != `"1.2.0"` {
		t.Errorf("info after refusals: %s", info)
	}

	// A change replaces the whole set: names gone from it are gone.
	if err := h.SetRemoteInfo("far", raw("fw", `"1.3.0"`)); err != nil {
		t.Fatal(err)
	}
	if info, _ := h.Info("far"); len(info) != 1 || string(info["fw"]) != `"1.3.0"` {
		t.Errorf("info after a change: %s", info)
	}
	if infos := kinds(drain(s), KindInfo); len(infos) != 1 {
		t.Errorf("%d info messages after a change, want 1", len(infos))
	}
	// Clearing: an empty info message.
	if err := h.SetRemoteInfo("far", nil); err != nil {
		t.Fatal(err)
	}
	infos = kinds(drain(s), KindInfo)
	if len(infos) != 1 || !strings.Contains(string(infos[0].Data), `"info":{}`) {
		t.Errorf("info messages after clearing: %v", infos)
	}
	// The room freed is room again (the total of last values is kept).
	if err := h.SetRemoteInfo("far", raw("a", `"0123456789ab"`, "b", `"0123456789ab"`)); err != nil {
		t.Errorf("info within the limits after clearing: %v", err)
	}

	if err := h.SetRemoteInfo("near", raw("fw", `"1"`)); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("a local device: %v, want ErrNotAllowed", err)
	}
	if err := h.SetRemoteInfo("nobody", nil); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("an unknown device: %v, want ErrUnknownDevice", err)
	}
	// History holds each change once, under "$name", as for a local board.
	recs, _ := rec.get()
	var got []string
	for _, r := range recs {
		got = append(got, r.Label+"="+string(r.Value))
	}
	want := `$fw="1.2.0",$rssi=-61,$fw="1.3.0",$a="0123456789ab",$b="0123456789ab"`
	if strings.Join(got, ",") != want {
		t.Errorf("history records %s, want %s", strings.Join(got, ","), want)
	}
}

// SetInfo seeds a device's attributes (an adopted board's, from its
// pending entry), bounded like attributes, with an info message and no
// history; the board's first own report is announced even when equal.
func TestSetInfo(t *testing.T) {
	rec := &historyRecorder{}
	h := newTestHub(t, Options{History: rec, LabelsPerDevice: 2, ValueBytes: 16}, DeviceInfo{ID: "d"})
	s, _ := mustSubscribe(t, h, -1, 0)
	drain(s)
	if h.SetInfo("nosuch", map[string]json.RawMessage{"fw": json.RawMessage(`"1"`)}) {
		t.Error("SetInfo on an unknown device reported success")
	}
	ok := h.SetInfo("d", map[string]json.RawMessage{
		"chip": json.RawMessage(`"esp32"`), "fw": json.RawMessage(`"1.2.0"`),
		"big": json.RawMessage(`"` + strings.Repeat("x", 40) + `"`), // over ValueBytes
		"mac": json.RawMessage(`"aa"`),                              // the 3rd name (sorted): over LabelsPerDevice
	})
	info, _ := h.Info("d")
	if !ok || len(info) != 2 || string(info["fw"]) != `"1.2.0"` || string(info["chip"]) != `"esp32"` {
		t.Errorf("SetInfo %v: info %s", ok, info)
	}
	if infos := kinds(drain(s), KindInfo); len(infos) != 1 || !strings.Contains(string(infos[0].Data), `"fw":"1.2.0"`) {
		t.Errorf("info messages after SetInfo: %v", infos)
	}
	if recs, _ := rec.get(); len(recs) != 0 {
		t.Errorf("SetInfo wrote history: %v", recs)
	}
	l := mustAttach(t, h, "d", nil)
	l.Publish(attr("fw", `"1.2.0"`))
	if len(kinds(drain(s), KindInfo)) != 1 {
		t.Error("the board's first own report after SetInfo sent no info message")
	}
}

func TestStopReason(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := StopReason(ctx); r != "gateway shutting down" {
		t.Errorf("plain cancel: %q", r)
	}
	ctx, cancelCause := context.WithCancelCause(context.Background())
	cancelCause(errors.New("device removed from the gateway"))
	if r := StopReason(ctx); r != "device removed from the gateway" {
		t.Errorf("with a cause: %q", r)
	}
}
