package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{"-24h", now.Add(-24 * time.Hour), false},
		{"-7d", now.Add(-7 * 24 * time.Hour), false},
		{"-1y", now.Add(-365 * 24 * time.Hour), false},
		{"-1h30m", now.Add(-90 * time.Minute), false},
		{"1764669600123", time.UnixMilli(1764669600123), false},
		{"2026-12-01T10:00:00.5Z", time.Date(2026, 12, 1, 10, 0, 0, 5e8, time.UTC), false},
		{"2026-12-01T11:00:00+01:00", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), false},
		{"", time.Time{}, true},
		{"yesterday", time.Time{}, true},
		{"-7x", time.Time{}, true},
		{"--1h", time.Time{}, true},
		{"-1000000y", time.Time{}, true},
		{"99999999999999999999", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := parseTime(tt.in, now)
		if (err != nil) != tt.bad || (!tt.bad && !got.Equal(tt.want)) {
			t.Errorf("parseTime(%q) = %v, %v; want %v (bad %v)", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

// fakeHistory records appends and answers queries from a fixed result.
type fakeHistory struct {
	mu       sync.Mutex
	appended []gateway.Record
	lastQ    gateway.HistoryQuery
	result   gateway.HistoryResult
	export   []gateway.Record
}

func (f *fakeHistory) Append(rs ...gateway.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.appended = append(f.appended, rs...)
}
func (f *fakeHistory) AppendStatus(string, time.Time, bool, string) {}
func (f *fakeHistory) Query(_ context.Context, q gateway.HistoryQuery) (gateway.HistoryResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastQ = q
	return f.result, nil
}
func (f *fakeHistory) Recent(context.Context, string, string, int) ([]gateway.HistoryPoint, error) {
	return nil, nil
}
func (f *fakeHistory) Availability(_ context.Context, _ string, from, _ time.Time) ([]gateway.Interval, error) {
	return []gateway.Interval{{From: from, Online: true}}, nil
}
func (f *fakeHistory) Export(_ context.Context, ef gateway.ExportFilter, fn func(gateway.Record) error) error {
	for _, r := range f.export {
		if ef.Device != "" && r.Device != ef.Device {
			continue
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func historyServer(t *testing.T) (*httptest.Server, *fakeHistory) {
	t.Helper()
	hub := gateway.NewHub(gateway.Options{GatewayID: "gw"})
	if err := hub.AddDevice(gateway.DeviceInfo{ID: "demo", Name: "Demo", Transport: "sim"}); err != nil {
		t.Fatal(err)
	}
	fh := &fakeHistory{}
	srv := httptest.NewServer(New(Options{Hub: hub, AuthMode: "none", History: fh, ValueBytes: 4096}))
	t.Cleanup(func() { srv.Close(); hub.Close() })
	return srv, fh
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHistoryBadInput(t *testing.T) {
	srv, _ := historyServer(t)
	tests := []struct {
		query string
		code  int
		names string // the parameter the error must name
	}{
		{"/api/devices/demo/history?label=t&from=yesterday", 400, "from"},
		{"/api/devices/demo/history?label=t&from=-1h&to=never", 400, "to"},
		{"/api/devices/demo/history?label=t&from=-1h&to=-2h", 400, "from"},
		{"/api/devices/demo/history?label=t&from=-1h&max_points=0", 400, "max_points"},
		{"/api/devices/demo/history?label=t&from=-1h&max_points=10001", 400, "max_points"},
		{"/api/devices/demo/history?label=t&from=-1h&max_points=ten", 400, "max_points"},
		{"/api/devices/nope/history?label=t&from=-1h", 404, "nope"},
		{"/api/devices/nope/availability", 404, "nope"},
		{"/api/devices/demo/availability?from=x", 400, "from"},
		{"/api/export?format=xml", 400, "format"},
		{"/api/export?from=-1h&to=-2h", 400, "from"},
	}
	for _, tt := range tests {
		code, body := get(t, srv.URL+tt.query)
		if code != tt.code || !strings.Contains(body, tt.names) {
			t.Errorf("GET %s = %d %s; want %d naming %q", tt.query, code, body, tt.code, tt.names)
		}
	}
}

func TestHistoryRangedAnswer(t *testing.T) {
	srv, fh := historyServer(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	fh.result = gateway.HistoryResult{Resolution: "1m", Points: []gateway.HistoryPoint{
		{TS: t0, Min: 1, Max: 3, Mean: 2, Last: 3, Count: 60},
	}}
	code, body := get(t, srv.URL+"/api/devices/demo/history?label=temp&from=-24h&max_points=500")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var ans struct {
		Device, Label, From, To, Resolution string
		Points                              []map[string]any
	}
	if err := json.Unmarshal([]byte(body), &ans); err != nil {
		t.Fatal(err)
	}
	if ans.Device != "demo" || ans.Label != "temp" || ans.Resolution != "1m" || len(ans.Points) != 1 {
		t.Fatalf("answer %s", body)
	}
	p := ans.Points[0]
	if p["ts"] != "2026-12-01T10:00:00.000Z" || p["min"] != 1.0 || p["max"] != 3.0 || p["mean"] != 2.0 || p["last"] != 3.0 || p["count"] != 60.0 {
		t.Errorf("bucket point %v", p)
	}
	if fh.lastQ.MaxPoints != 500 || fh.lastQ.To.Sub(fh.lastQ.From) != 24*time.Hour {
		t.Errorf("query %+v", fh.lastQ)
	}
	// Raw points carry ts and value only.
	fh.result = gateway.HistoryResult{Resolution: "raw", Points: []gateway.HistoryPoint{{TS: t0, Value: json.RawMessage(`21.5`)}}}
	_, body = get(t, srv.URL+"/api/devices/demo/history?label=temp&from=-1h")
	if !strings.Contains(body, `"points":[{"ts":"2026-12-01T10:00:00.000Z","value":21.5}]`) || fh.lastQ.MaxPoints != gateway.DefaultMaxPoints {
		t.Errorf("raw answer %s (max_points %d)", body, fh.lastQ.MaxPoints)
	}
}

func TestImport(t *testing.T) {
	srv, fh := historyServer(t)
	post := func(body string) (int, string) {
		resp, err := http.Post(srv.URL+"/api/devices/demo/history", "application/x-ndjson", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	lines := []string{
		`{"label":"temp","value":21.5,"ts":"2026-12-01T10:00:00Z"}`,
		`{"label":"temp","value":21.6,"ts":1764583201000}`,
		`not json`,
		`{"label":"temp","ts":"2026-12-01T10:00:02Z"}`,
		``,
		`{"label":"temp","value":1,"ts":"tomorrow"}`,
		`{"label":"temp","value":1,"ts":"2999-01-01T00:00:00Z"}`,
		`{"label":"a/b","value":1,"ts":"2026-12-01T10:00:00Z"}`,
		fmt.Sprintf(`{"label":"big","value":"%s","ts":"2026-12-01T10:00:00Z"}`, strings.Repeat("x", 5000)),
		`{"label":"state","value":"on","ts":"2026-12-01T10:00:03.250Z"}`,
	}
	code, body := post(strings.Join(lines, "\n"))
	var ans struct {
		Imported, Rejected int
		Errors             []string
	}
	if code != 200 || json.Unmarshal([]byte(body), &ans) != nil {
		t.Fatalf("%d %s", code, body)
	}
	if ans.Imported != 3 || ans.Rejected != 6 || len(ans.Errors) != 6 {
		t.Fatalf("answer %s, want 3 imported, 6 rejected", body)
	}
	for i, n := range []int{3, 4, 6, 7, 8, 9} {
		if !strings.HasPrefix(ans.Errors[i], fmt.Sprintf("line %d: ", n)) {
			t.Errorf("error %d = %q, want line %d", i, ans.Errors[i], n)
		}
	}
	if len(fh.appended) != 3 || fh.appended[2].Label != "state" || string(fh.appended[2].Value) != `"on"` ||
		!fh.appended[2].TS.Equal(time.Date(2026, 12, 1, 10, 0, 3, 250e6, time.UTC)) || fh.appended[0].Device != "demo" {
		t.Errorf("stored %+v", fh.appended)
	}
	// Over 16 MiB: 413 and nothing more stored.
	big := strings.Repeat(lines[0]+"\n", gateway.MaxImportBytes/len(lines[0])+10)
	if code, body := post(big); code != http.StatusRequestEntityTooLarge {
		t.Errorf("big import: %d %s", code, body)
	}
	if len(fh.appended) != 3 {
		t.Errorf("a refused import stored %d readings", len(fh.appended)-3)
	}
	// Only the first 10 errors are listed; all are counted.
	code, body = post(strings.Repeat("junk\n", 25))
	if code != 200 || json.Unmarshal([]byte(body), &ans) != nil || ans.Rejected != 25 || len(ans.Errors) != 10 {
		t.Errorf("25 bad lines: %d %s", code, body)
	}
}

func TestExportFormats(t *testing.T) {
	srv, fh := historyServer(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	fh.export = []gateway.Record{
		{Device: "demo", Label: "temp", TS: t0, Value: json.RawMessage(`21.5`)},
		{Device: "demo", Label: "msg", TS: t0.Add(time.Second), Value: json.RawMessage(`"a,\"b\""`)},
		{Device: "other", Label: "x", TS: t0, Value: json.RawMessage(`1`)},
	}
	code, body := get(t, srv.URL+"/api/export?device=demo")
	want := "ts,device,label,value\n2026-12-01T10:00:00.000Z,demo,temp,21.5\n2026-12-01T10:00:01.000Z,demo,msg,\"\"\"a,\\\"\"b\\\"\"\"\"\"\n"
	if code != 200 || body != want {
		t.Errorf("csv export: %d\n%s\nwant\n%s", code, body, want)
	}
	code, body = get(t, srv.URL+"/api/export?format=ndjson")
	if code != 200 || strings.Count(body, "\n") != 3 || !strings.HasPrefix(body, `{"ts":"2026-12-01T10:00:00.000Z","device":"demo","label":"temp","value":21.5}`) {
		t.Errorf("ndjson export: %d %s", code, body)
	}
}
