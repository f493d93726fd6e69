package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	rtmetrics "runtime/metrics"
	"sort"

	"github.com/esp32gw/esp32gw/gateway"
)

// maxBodyBytes bounds an API request body, as browser messages are bounded.
const maxBodyBytes = 16 << 10

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// httpStatus is the HTTP status of each error code (DESIGN.md, HTTP API).
var httpStatus = map[gateway.Code]int{
	gateway.CodeBadCommand:    http.StatusBadRequest,
	gateway.CodeNotAllowed:    http.StatusForbidden,
	gateway.CodeUnknownDevice: http.StatusNotFound,
	gateway.CodeOffline:       http.StatusConflict,
	gateway.CodeRateLimited:   http.StatusTooManyRequests,
	gateway.CodeTimeout:       http.StatusGatewayTimeout,
	gateway.CodeShutdown:      http.StatusServiceUnavailable,
}

// statusFor maps an error from the core to its HTTP status.
func statusFor(err error) int {
	if st, ok := httpStatus[gateway.CodeOf(err)]; ok {
		return st
	}
	return http.StatusBadGateway
}

func (s *Server) handleDevices(w http.ResponseWriter, r *http.Request) {
	seq, devices := s.hub.Snapshot()
	writeJSON(w, http.StatusOK, struct {
		Gateway string                `json:"gateway"`
		Seq     uint64                `json:"seq"`
		Devices []gateway.DeviceState `json:"devices"`
	}{s.hub.GatewayID(), seq, devices})
}

func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) {
	st, err := s.hub.DeviceState(r.PathValue("id"))
	if err != nil {
		writeError(w, statusFor(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	label := r.URL.Query().Get("label")
	if r.URL.Query().Has("from") || r.URL.Query().Has("to") || r.URL.Query().Has("max_points") {
		if s.knownDevice(w, id) {
			s.rangedHistory(w, r, id, label)
		}
		return
	}
	s.recentHistory(w, r, id, label)
}

// commandBody is the POST body: {"label":"led","value":"toggle"}.
type commandBody struct {
	Label string          `json:"label"`
	Value json.RawMessage `json:"value"`
}

// readBody reads a small JSON request body (at most maxBodyBytes); on
// failure it has answered 413 or 400 and reports false.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", maxBodyBytes))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return nil, false
	}
	return body, true
}

func (s *Server) handleCommand(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var c commandBody
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&c); err != nil {
		writeError(w, http.StatusBadRequest, `body must be JSON like {"label":"led","value":"toggle"}: `+err.Error())
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "body must hold one JSON object")
		return
	}
	if len(c.Value) == 0 || string(c.Value) == "null" {
		writeError(w, http.StatusBadRequest, `"value" is required, e.g. {"label":"led","value":"toggle"}`)
		return
	}
	if _, ok := s.hub.Device(id); !ok {
		writeError(w, http.StatusNotFound, "unknown device "+id)
		return
	}
	if err := s.hub.Command(r.Context(), id, gateway.Command{Label: c.Label, Value: c.Value}); err != nil {
		writeError(w, statusFor(err), gateway.Describe(id, err))
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Type   string          `json:"type"`
		OK     bool            `json:"ok"`
		Device string          `json:"device"`
		Label  string          `json:"label,omitempty"`
		Value  json.RawMessage `json:"value"`
	}{"ack", true, id, c.Label, c.Value})
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	c := s.hub.Counters()
	seq, devices := s.hub.Snapshot()
	metric := func(name, typ, help string, v uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", name, help, name, typ, name, v)
	}
	metric("esp32gw_browsers_connected", "gauge", "Browser WebSocket connections open now.", uint64(s.browsers.Load()))
	metric("esp32gw_hub_subscribers", "gauge", "Live hub subscriptions: one per open /ws or compatibility socket, plus the gateway's own (the firmware update manager, the MQTT bridge when enabled).", uint64(s.hub.Subscribers()))
	metric("esp32gw_events_in_total", "counter", "Readings accepted from boards.", c.EventsIn.Load())
	metric("esp32gw_messages_out_total", "counter", "Frames written to browsers.", c.MessagesOut.Load())
	metric("esp32gw_slow_browsers_total", "counter", "Browsers disconnected because their queue overflowed.", c.SlowConsumers.Load())
	metric("esp32gw_malformed_total", "counter", "Frames or lines from boards that could not be used.", c.Malformed.Load())
	metric("esp32gw_dropped_readings_total", "counter", "Readings refused (bad label, too many labels).", c.DroppedReadings.Load())
	metric("esp32gw_backfilled_readings_total", "counter", "Readings older than their label's newest, stored in history only.", c.Backfilled.Load())
	metric("esp32gw_future_ts_total", "counter", "Readings whose ts was over 60 s ahead, stamped on arrival instead.", c.FutureTS.Load())
	metric("esp32gw_commands_total", "counter", "Commands written to boards.", c.Commands.Load())
	metric("esp32gw_command_errors_total", "counter", "Commands answered with an error.", c.CommandErrors.Load())
	metric("esp32gw_seq", "gauge", "Sequence number of the newest event.", seq)
	sort.Slice(devices, func(i, j int) bool { return devices[i].ID < devices[j].ID })
	perDevice := func(name, typ, help string, value func(d gateway.DeviceState) uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, d := range devices {
			fmt.Fprintf(w, "%s{device=%q,gateway=%q} %d\n", name, d.ID, d.Gateway, value(d))
		}
	}
	perDevice("esp32gw_device_online", "gauge", "1 while the device's link is up.", func(d gateway.DeviceState) uint64 {
		if d.Online {
			return 1
		}
		return 0
	})
	perDevice("esp32gw_device_events_total", "counter", "Readings accepted from the device.", func(d gateway.DeviceState) uint64 { return d.Events })
	perDevice("esp32gw_device_reconnects_total", "counter", "Times the device's link came back.", func(d gateway.DeviceState) uint64 { return uint64(d.Reconnects) })
	perDevice("esp32gw_device_malformed_total", "counter", "Unusable frames or lines from the device.", func(d gateway.DeviceState) uint64 { return d.Malformed })
	for _, m := range s.metrics {
		m.WriteMetrics(w)
	}
	metric("go_goroutines", "gauge", "Goroutines that currently exist.", uint64(runtime.NumGoroutine()))
	live := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(live)
	if live[0].Value.Kind() == rtmetrics.KindUint64 {
		metric("go_heap_live_bytes", "gauge", "Heap bytes marked live by the last garbage collection.", live[0].Value.Uint64())
	}
}
