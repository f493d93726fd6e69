package history

import (
	"fmt"
	"io"
)

// WriteMetrics adds the store's figures to /metrics in the Prometheus text
// format (the web layer calls it; see web.MetricsWriter).
func (s *Store) WriteMetrics(w io.Writer) {
	st := s.Stats()
	metric := func(name, typ, help string, v any) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, help, name, typ, name, v)
	}
	paused := 0
	if st.Paused {
		paused = 1
	}
	metric("esp32gw_history_readings_stored_total", "counter", "Readings committed to the history database.", st.Stored)
	metric("esp32gw_history_readings_dropped_total", "counter", "Readings the history could not keep (its queue was full while writes failed).", st.Dropped)
	metric("esp32gw_history_retention_deleted_total", "counter", "Rows deleted by retention and max_size.", st.RetentionDeleted)
	metric("esp32gw_history_write_errors_total", "counter", "Failed history writes (a full disk, I/O errors).", st.WriteErrors)
	metric("esp32gw_history_commit_seconds", "gauge", "Duration of the last commit.", st.CommitLatency.Seconds())
	metric("esp32gw_history_size_bytes", "gauge", "Live size of the history database.", st.SizeBytes)
	metric("esp32gw_history_paused", "gauge", "1 while history writes are paused (disk full or write errors).", paused)
}
