// Package history is the gateway's on-disk history store: every accepted
// reading and every device status change, kept in one SQLite database
// (state_dir/history.db, pure-Go driver, WAL) within the configured
// retention and size limits.
//
// What it owns:
//   - the database file and its WAL, opened by Open and closed by Close;
//   - a bounded in-memory queue of readings not yet on disk (Append never
//     blocks on I/O; overflow drops the oldest readings and counts them);
//   - one writer goroutine, the only one that writes to the database: it
//     group-commits the queue every Options.CommitInterval as one compressed
//     batch row, compacts batches into per-label chunks and 1-minute and
//     1-hour rollups as data arrives, and enforces retention and MaxSize.
//
// Open starts the writer goroutine; Close flushes what is queued, stops it
// and waits for it. Nothing else runs in the background. Query, Recent,
// Export, Last, Labels, Availability and Backup read through a small pool of
// read-only connections and are safe for concurrent use with the writer.
//
// Layout on disk (see schema.go): batch rows (one per commit, deleted once
// compacted), chunk rows (per label, up to a few thousand readings each,
// delta-of-delta timestamps and scaled-integer or dictionary-coded values,
// Rice-coded bit streams; see encoding.go), rollup rows (per label, one blob
// per hour of minute rollups and per day of hour rollups; see rollup.go) and
// status rows.
package history
