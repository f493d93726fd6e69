package mqttbridge

import (
	"encoding/json"
	"testing"
)

// The update entity's state from a board's attributes, step by step as a
// board reports them through an update.
func TestUpdateStateFromAttributes(t *testing.T) {
	up := &fakeUpdates{latest: map[string]string{"p/esp32": "2.0"}}
	var b boardFW
	step := func(what string, info map[string]string, u Updates, installed, latest string, inProgress bool, pct int) {
		t.Helper()
		raw := map[string]json.RawMessage{}
		for k, v := range info {
			raw[k] = json.RawMessage(v)
		}
		b.take(raw)
		s := b.state(u, "Dev")
		gotPct := -1
		if s.UpdatePercentage != nil {
			gotPct = *s.UpdatePercentage
		}
		if s.InstalledVersion != installed || s.LatestVersion != latest || s.InProgress != inProgress || gotPct != pct {
			t.Errorf("%s: got %s, want installed %s latest %s in_progress %v percentage %d", what, s.JSON(), installed, latest, inProgress, pct)
		}
	}
	base := map[string]string{"fw": `"1.0"`, "project": `"p"`, "chip": `"esp32"`}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	step("idle", base, up, "1.0", "2.0", false, -1)
	step("no catalogue", base, nil, "1.0", "1.0", false, -1)
	step("unknown project", with("project", `"q"`), up, "1.0", "1.0", false, -1)
	step("queued without progress", with("ota", `{"state":"sent"}`), up, "1.0", "2.0", true, -1)
	step("downloading", with("ota", `{"state":"downloading","progress":42}`), up, "1.0", "2.0", true, 42)
	step("progress out of range", with("ota", `{"state":"downloading","progress":140}`), up, "1.0", "2.0", true, 100)
	step("failed", with("ota", `{"state":"failed","error":"sha256 mismatch"}`), up, "1.0", "2.0", false, -1)
	step("again", with("ota", `{"state":"downloading","progress":99.6}`), up, "1.0", "2.0", true, 99)
	step("rebooted into the new version, old $ota left", with("fw", `"2.0"`, "ota", `{"state":"downloading","progress":99.6}`), nil, "2.0", "2.0", false, -1)
	step("a new update starts on 2.0", with("fw", `"2.0"`, "ota", `{"state":"downloading","progress":3}`), nil, "2.0", "2.0", true, 3)
	step("already on the latest", with("fw", `"2.0"`, "ota", `{"state":"downloading","progress":4}`), up, "2.0", "2.0", false, -1)
	step("numeric fw, garbage ota", map[string]string{"fw": `3`, "ota": `"weird"`}, up, "3", "3", false, -1)
}
