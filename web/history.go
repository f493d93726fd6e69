package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
)

// History endpoints (DESIGN.md, "History"): ranged chart queries,
// availability, export and import. They read s.history; without one (a
// gateway built without a store) they answer 503.

// maxImportErrors is how many line errors an import answer lists.
const maxImportErrors = 10

// defaultAvailabilityRange is the availability window without a from.
const defaultAvailabilityRange = 24 * time.Hour

// parseTime reads a time parameter: RFC 3339, unix milliseconds, or a
// duration back from now ("-24h", "-7d", "-1y", "-90m", "-1h30m").
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("empty")
	}
	if s[0] == '-' {
		d, err := gateway.ParseDuration(s[1:])
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(-d), nil
	}
	if isDigits(s) {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms > 253402300799999 {
			return time.Time{}, fmt.Errorf("%q is not unix milliseconds", s)
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not RFC 3339, unix milliseconds or a duration back like -24h", s)
	}
	return t, nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// timeRange reads from and to: to defaults to now, from to defFrom (a zero
// defFrom makes from required). Errors name the parameter.
func timeRange(r *http.Request, now time.Time, defFrom time.Time) (from, to time.Time, err error) {
	q := r.URL.Query()
	to = now
	if v := q.Get("to"); v != "" {
		if to, err = parseTime(v, now); err != nil {
			return from, to, fmt.Errorf("to: %w", err)
		}
	}
	from = defFrom
	if v := q.Get("from"); v != "" {
		if from, err = parseTime(v, now); err != nil {
			return from, to, fmt.Errorf("from: %w", err)
		}
	}
	if !from.IsZero() && from.After(to) {
		return from, to, fmt.Errorf("from: %s is after to (%s)", gateway.FormatTime(from), gateway.FormatTime(to))
	}
	return from, to, nil
}

// knownDevice answers 404 and reports false for a device the gateway does
// not know.
func (s *Server) knownDevice(w http.ResponseWriter, id string) bool {
	if _, ok := s.hub.Device(id); !ok {
		writeError(w, http.StatusNotFound, "unknown device "+id)
		return false
	}
	return true
}

func (s *Server) historyOff(w http.ResponseWriter) bool {
	if s.history == nil {
		writeError(w, http.StatusServiceUnavailable, "history is not available on this gateway")
		return true
	}
	return false
}

// recentPoint is a point of the answer without a range: {"value","ts"}.
type recentPoint struct {
	Value json.RawMessage `json:"value"`
	TS    string          `json:"ts"`
}

// recentHistory answers GET /api/devices/{id}/history without a range: the
// label's (or every label's) most recent raw points, at most
// gateway.RecentPoints each, oldest first.
func (s *Server) recentHistory(w http.ResponseWriter, r *http.Request, id, label string) {
	if !s.knownDevice(w, id) {
		return
	}
	labels := []string{label}
	if label == "" {
		labels = s.hub.Labels(id)
	}
	out := make(map[string][]recentPoint, len(labels))
	for _, l := range labels {
		pts := []recentPoint{}
		if s.history != nil {
			hp, err := s.history.Recent(r.Context(), id, l, gateway.RecentPoints)
			if err != nil {
				s.log.Error("history query failed", "device", id, "label", l, "err", err)
				writeError(w, http.StatusInternalServerError, "history query failed: "+err.Error())
				return
			}
			for _, p := range hp {
				pts = append(pts, recentPoint{Value: p.Value, TS: gateway.FormatTime(p.TS)})
			}
		}
		out[l] = pts
	}
	if label != "" {
		writeJSON(w, http.StatusOK, struct {
			Device string        `json:"device"`
			Label  string        `json:"label"`
			Points []recentPoint `json:"points"`
		}{id, label, out[label]})
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Device string                   `json:"device"`
		Labels map[string][]recentPoint `json:"labels"`
	}{id, out})
}

// rangedHistory answers GET /api/devices/{id}/history with a from.
func (s *Server) rangedHistory(w http.ResponseWriter, r *http.Request, id, label string) {
	if s.historyOff(w) {
		return
	}
	if label == "" {
		writeError(w, http.StatusBadRequest, "label: required with from (…/history?label=temp&from=-24h)")
		return
	}
	from, to, err := timeRange(r, time.Now(), time.Time{})
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	maxPoints := gateway.DefaultMaxPoints
	if v := r.URL.Query().Get("max_points"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > gateway.MaxMaxPoints {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("max_points: %q is not a whole number from 1 to %d", v, gateway.MaxMaxPoints))
			return
		}
		maxPoints = n
	}
	res, err := s.history.Query(r.Context(), gateway.HistoryQuery{Device: id, Label: label, From: from, To: to, MaxPoints: maxPoints})
	if err != nil {
		s.log.Error("history query failed", "device", id, "label", label, "err", err)
		writeError(w, http.StatusInternalServerError, "history query failed: "+err.Error())
		return
	}
	points := make([]json.RawMessage, 0, len(res.Points))
	for _, p := range res.Points {
		points = append(points, encodeHistoryPoint(res.Resolution, p))
	}
	writeJSON(w, http.StatusOK, struct {
		Device     string            `json:"device"`
		Label      string            `json:"label"`
		From       string            `json:"from"`
		To         string            `json:"to"`
		Resolution string            `json:"resolution"`
		Points     []json.RawMessage `json:"points"`
	}{id, label, gateway.FormatTime(from), gateway.FormatTime(to), res.Resolution, points})
}

// encodeHistoryPoint writes a raw or change point as {"ts","value"} and a
// bucket as {"ts","min","max","mean","last","count"}.
func encodeHistoryPoint(resolution string, p gateway.HistoryPoint) json.RawMessage {
	var b []byte
	if resolution == gateway.ResolutionRaw || resolution == gateway.ResolutionChanges {
		b, _ = json.Marshal(struct {
			TS    string          `json:"ts"`
			Value json.RawMessage `json:"value"`
		}{gateway.FormatTime(p.TS), p.Value})
		return b
	}
	b, _ = json.Marshal(struct {
		TS    string  `json:"ts"`
		Min   float64 `json:"min"`
		Max   float64 `json:"max"`
		Mean  float64 `json:"mean"`
		Last  float64 `json:"last"`
		Count int     `json:"count"`
	}{gateway.FormatTime(p.TS), p.Min, p.Max, p.Mean, p.Last, p.Count})
	return b
}

// handleAvailability answers GET /api/devices/{id}/availability.
func (s *Server) handleAvailability(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !s.knownDevice(w, id) || s.historyOff(w) {
		return
	}
	now := time.Now()
	from, to, err := timeRange(r, now, now.Add(-defaultAvailabilityRange))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ivs, err := s.history.Availability(r.Context(), id, from, to)
	if err != nil {
		s.log.Error("availability query failed", "device", id, "err", err)
		writeError(w, http.StatusInternalServerError, "availability query failed: "+err.Error())
		return
	}
	type interval struct {
		From   string  `json:"from"`
		To     *string `json:"to"`
		Online bool    `json:"online"`
		Reason string  `json:"reason,omitempty"`
	}
	out := make([]interval, 0, len(ivs))
	for _, iv := range ivs {
		it := interval{From: gateway.FormatTime(iv.From), Online: iv.Online, Reason: iv.Reason}
		if iv.To != nil {
			t := gateway.FormatTime(*iv.To)
			it.To = &t
		}
		out = append(out, it)
	}
	writeJSON(w, http.StatusOK, struct {
		Device    string     `json:"device"`
		Intervals []interval `json:"intervals"`
	}{id, out})
}

// handleExport answers GET /api/export: every stored raw reading in the
// range, streamed as CSV (ts,device,label,value) or NDJSON.
func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) {
	if s.historyOff(w) {
		return
	}
	q := r.URL.Query()
	from, to, err := timeRange(r, time.Now(), time.Unix(0, 0).UTC())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	format := q.Get("format")
	if format == "" {
		format = "csv"
	}
	if format != "csv" && format != "ndjson" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("format: %q is not csv or ndjson", format))
		return
	}
	f := gateway.ExportFilter{From: from, To: to, Device: q.Get("device"), Label: q.Get("label")}
	name := "esp32gw-export"
	if f.Device != "" {
		name += "-" + f.Device
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	var write func(gateway.Record) error
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw := csv.NewWriter(bw)
		cw.Write([]string{"ts", "device", "label", "value"})
		write = func(rec gateway.Record) error {
			return cw.Write([]string{gateway.FormatTime(rec.TS), rec.Device, rec.Label, string(rec.Value)})
		}
		defer cw.Flush()
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
		write = func(rec gateway.Record) error {
			b, _ := json.Marshal(struct {
				TS     string          `json:"ts"`
				Device string          `json:"device"`
				Label  string          `json:"label"`
				Value  json.RawMessage `json:"value"`
			}{gateway.FormatTime(rec.TS), rec.Device, rec.Label, rec.Value})
			bw.Write(b)
			return bw.WriteByte('\n')
		}
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.%s"`, name, format))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	err = s.history.Export(r.Context(), f, write)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		// The status is sent; a cut stream is all the client can be told.
		s.log.Warn("export ended early", "err", err)
	}
}

// handleImport answers POST /api/devices/{id}/history: NDJSON lines of
// {"label":L,"value":V,"ts":T}, stored like a board's backfill (never
// broadcast). A bad line is rejected and reported by number; the rest are
// stored. Over MaxImportBytes: 413 and nothing is stored.
func (s *Server) handleImport(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !s.knownDevice(w, id) || s.historyOff(w) {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, gateway.MaxImportBytes))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("import body over %d MiB: nothing imported (split the file)", gateway.MaxImportBytes>>20))
			return
		}
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	now := time.Now()
	var (
		recs     []gateway.Record
		rejected int
		errs     = []string{}
	)
	reject := func(line int, msg string) {
		rejected++
		if len(errs) < maxImportErrors {
			errs = append(errs, fmt.Sprintf("line %d: %s", line, msg))
		}
	}
	for n, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		rec, err := importLine(id, line, now, s.valueBytes)
		if err != nil {
			reject(n+1, err.Error())
			continue
		}
		recs = append(recs, rec)
	}
	imported := len(recs)
	// Append in slices so the store's bounded queue is never handed one
	// import's worth at once.
	for len(recs) > 0 {
		k := min(len(recs), 1000)
		s.history.Append(recs[:k]...)
		recs = recs[k:]
	}
	writeJSON(w, http.StatusOK, struct {
		Imported int      `json:"imported"`
		Rejected int      `json:"rejected"`
		Errors   []string `json:"errors"`
	}{imported, rejected, errs})
}

// importLine checks one import line.
func importLine(device string, line []byte, now time.Time, valueBytes int) (gateway.Record, error) {
	var v struct {
		Label *string         `json:"label"`
		Value json.RawMessage `json:"value"`
		TS    json.RawMessage `json:"ts"`
	}
	if err := json.Unmarshal(line, &v); err != nil {
		return gateway.Record{}, fmt.Errorf("not a JSON object like {\"label\":\"temp\",\"value\":21.5,\"ts\":\"2026-01-02T10:00:00Z\"}: %s", jsonProblem(err))
	}
	if v.Label == nil {
		return gateway.Record{}, errors.New(`"label" is required`)
	}
	if len(v.Value) == 0 || string(v.Value) == "null" {
		return gateway.Record{}, errors.New(`"value" is required`)
	}
	if len(v.TS) == 0 {
		return gateway.Record{}, errors.New(`"ts" is required`)
	}
	var ts time.Time
	var tsText string
	if v.TS[0] == '"' && json.Unmarshal(v.TS, &tsText) == nil {
		t, err := time.Parse(time.RFC3339Nano, tsText)
		if err != nil {
			return gateway.Record{}, fmt.Errorf(`"ts" %q is not RFC 3339`, tsText)
		}
		ts = t
	} else {
		ms, err := strconv.ParseInt(string(v.TS), 10, 64)
		if err != nil || ms < 0 || ms > 253402300799999 {
			return gateway.Record{}, fmt.Errorf(`"ts" %s is not unix milliseconds or RFC 3339`, gateway.Truncate(string(v.TS), 40))
		}
		ts = time.UnixMilli(ms)
	}
	if ts.After(now.Add(gateway.MaxFutureSkew)) {
		return gateway.Record{}, fmt.Errorf(`"ts" %s is in the future`, gateway.FormatTime(ts))
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, v.Value); err != nil {
		return gateway.Record{}, errors.New(`"value" is not JSON`)
	}
	if valueBytes > 0 && compact.Len() > valueBytes {
		return gateway.Record{}, fmt.Errorf(`"value" is %d bytes, over the limit of %d`, compact.Len(), valueBytes)
	}
	rd := gateway.Reading{Label: *v.Label, Value: compact.Bytes()}
	if err := gateway.CheckReading(rd); err != nil {
		return gateway.Record{}, err
	}
	return gateway.Record{Device: device, Label: rd.Label, TS: ts.UTC(), Value: rd.Value}, nil
}
