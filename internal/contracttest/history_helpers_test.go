package contracttest

// Small helpers for the history end-to-end tests (history_*_test.go). They
// are prefixed hist so they never clash with the package's shared helpers.

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // read the gateway's history.db directly (integrity checks)

	"github.com/esp32gw/esp32gw/internal/testgw"
)

// histRec is one exported reading (NDJSON line).
type histRec struct {
	TS     string          `json:"ts"`
	Device string          `json:"device"`
	Label  string          `json:"label"`
	Value  json.RawMessage `json:"value"`
}

// histPoint is one point of a ranged history answer: raw/changes points
// have ts and value; buckets have ts, min, max, mean, last and count.
type histPoint struct {
	TS    string          `json:"ts"`
	Value json.RawMessage `json:"value"`
	Min   *float64        `json:"min"`
	Max   *float64        `json:"max"`
	Mean  *float64        `json:"mean"`
	Last  *float64        `json:"last"`
	Count *int            `json:"count"`
}

// histRanged is the ranged history answer.
type histRanged struct {
	Device     string      `json:"device"`
	Label      string      `json:"label"`
	From       string      `json:"from"`
	To         string      `json:"to"`
	Resolution string      `json:"resolution"`
	Points     []histPoint `json:"points"`
}

// histMsRe is the answers' time format: RFC 3339 with milliseconds.
var histMsRe = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$`)

// histParseTS parses an answer's timestamp, failing the test when it is
// not RFC 3339 with milliseconds.
func histParseTS(t testing.TB, s string) time.Time {
	t.Helper()
	if !histMsRe.MatchString(s) {
		t.Fatalf("timestamp %q is not RFC 3339 with milliseconds", s)
	}
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("timestamp %q: %v", s, err)
	}
	return ts
}

// histMs is t as unix milliseconds, the form the tests pass in queries.
func histMs(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// histCompact is v in compact JSON, for comparing values as text.
func histCompact(v json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return string(v)
	}
	return b.String()
}

// histCanon is v decoded and encoded again, so 21.30 and 21.3 compare equal.
func histCanon(v json.RawMessage) string {
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return string(v)
	}
	b, _ := json.Marshal(x)
	return string(b)
}

// histQuery fetches a ranged history answer; it fails unless the status is 200.
func histQuery(t testing.TB, g *testgw.Gateway, dev string, q url.Values) histRanged {
	t.Helper()
	path := "/api/devices/" + dev + "/history?" + q.Encode()
	code, body := g.Get(path)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var h histRanged
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("GET %s: not the ranged answer: %v: %.300s", path, err, body)
	}
	if h.Points == nil && !bytes.Contains(body, []byte(`"points":[]`)) {
		t.Fatalf("GET %s: no points array: %.300s", path, body)
	}
	return h
}

// histExport fetches /api/export?format=ndjson with q and decodes every line.
func histExport(t testing.TB, g *testgw.Gateway, q url.Values) []histRec {
	t.Helper()
	q.Set("format", "ndjson")
	path := "/api/export?" + q.Encode()
	code, body := g.Get(path)
	if code != 200 {
		t.Fatalf("GET %s: %d %.300s", path, code, body)
	}
	var out []histRec
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r histRec
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("export NDJSON line %d is not JSON: %v: %q", n, err, sc.Text())
		}
		out = append(out, r)
	}
	return out
}

// histImportResult is the import answer.
type histImportResult struct {
	Imported int      `json:"imported"`
	Rejected int      `json:"rejected"`
	Errors   []string `json:"errors"`
}

// histImport posts NDJSON lines in requests of at most maxBody bytes and
// sums the answers.
func histImport(t testing.TB, g *testgw.Gateway, dev string, lines []string, maxBody int) histImportResult {
	t.Helper()
	var total histImportResult
	var body []byte
	flush := func() {
		if len(body) == 0 {
			return
		}
		code, resp := g.Do("POST", "/api/devices/"+dev+"/history", body)
		if code != 200 {
			t.Fatalf("import (%d bytes): %d %.300s", len(body), code, resp)
		}
		var r histImportResult
		if err := json.Unmarshal(resp, &r); err != nil {
			t.Fatalf("import answer not JSON: %v: %.300s", err, resp)
		}
		total.Imported += r.Imported
		total.Rejected += r.Rejected
		total.Errors = append(total.Errors, r.Errors...)
		body = body[:0]
	}
	for _, l := range lines {
		if len(body)+len(l)+1 > maxBody {
			flush()
		}
		body = append(body, l...)
		body = append(body, '\n')
	}
	flush()
	return total
}

// histIntegrity opens a SQLite file read-only and returns PRAGMA
// integrity_check's answer (all rows joined).
func histIntegrity(t testing.TB, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	rows, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		t.Fatalf("%s: integrity_check: %v", path, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatalf("%s: integrity_check row: %v", path, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: integrity_check: %v", path, err)
	}
	return strings.Join(out, "; ")
}

// histMetric is the value of an unlabelled /metrics line, or -1 when absent.
func histMetric(t testing.TB, g *testgw.Gateway, name string) float64 {
	t.Helper()
	code, body := g.Get("/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d %.200s", code, body)
	}
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("/metrics %s: %q is not a number", name, f[1])
			}
			return v
		}
	}
	return -1
}

// histPoll calls f until it returns "" (done) or the deadline passes; then
// it fails with f's last complaint.
func histPoll(t testing.TB, within time.Duration, f func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		why := f()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, why)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// histEvent is a /ws event frame, value kept as JSON text.
type histEvent struct {
	Type   string          `json:"type"`
	Device string          `json:"device"`
	Label  string          `json:"label"`
	Value  json.RawMessage `json:"value"`
	TS     string          `json:"ts"`
	Seq    int64           `json:"seq"`
	Online *bool           `json:"online"`
}

func (e histEvent) String() string {
	return fmt.Sprintf("%s/%s=%s@%s#%d", e.Device, e.Label, e.Value, e.TS, e.Seq)
}
