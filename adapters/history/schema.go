package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

const schemaVersion = 1

// schema: see the package comment. Times are unix milliseconds.
//
//   - batch: one row per commit (the readings of one CommitInterval, per
//     label in the chunk encoding); few pages are touched per commit. Rows
//     are deleted when compacted.
//   - chunk: one label's readings over [t0,t1], n of them; last_seq is the
//     seq of the label's newest reading when this chunk holds it, else 0.
//   - rollup: one period of one tier of one label (see rollup.go).
//   - series: the (device, label) pairs; t1 is the newest compacted ts.
//   - status: device status changes (availability).
var schema = []string{
	`CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, device TEXT NOT NULL, label TEXT NOT NULL, t1 INTEGER, UNIQUE(device, label))`,
	`CREATE TABLE IF NOT EXISTS batch(id INTEGER PRIMARY KEY, max_seq INTEGER NOT NULL, data BLOB NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS chunk(id INTEGER PRIMARY KEY, series INTEGER NOT NULL, t0 INTEGER NOT NULL, t1 INTEGER NOT NULL, n INTEGER NOT NULL, last_seq INTEGER NOT NULL, data BLOB NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS chunk_series ON chunk(series, t0, t1, n)`,
	`CREATE INDEX IF NOT EXISTS chunk_t0 ON chunk(t0)`,
	`CREATE TABLE IF NOT EXISTS rollup(series INTEGER NOT NULL, tier INTEGER NOT NULL, t0 INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY(series, tier, t0)) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS status(id INTEGER PRIMARY KEY, device TEXT NOT NULL, ts INTEGER NOT NULL, online INTEGER NOT NULL, reason TEXT NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS status_device ON status(device, ts)`,
}

// Connection settings. synchronous=FULL makes every commit fsync the WAL, so
// a power cut loses only what was not yet committed (at most one
// CommitInterval) and never corrupts the file; NORMAL would be as safe for
// the file but could lose commits since the last checkpoint. The page cache
// is kept small (2 MiB per connection) so memory does not grow with the data.
const (
	cacheKiB       = 2048
	readerConns    = 2
	busyTimeoutMS  = 10_000
	journalLimitMB = 8
)

type connKind int

const (
	connWriter connKind = iota
	connReader
	connBackup // reads only, but VACUUM INTO needs a connection that may write (the copy)
)

func dsn(path string, kind connKind) string {
	d := path + "?_pragma=busy_timeout(" + fmt.Sprint(busyTimeoutMS) + ")" +
		"&_pragma=cache_size(-" + fmt.Sprint(cacheKiB) + ")" +
		"&_pragma=synchronous(FULL)&_pragma=temp_store(memory)"
	switch kind {
	case connWriter:
		return d + "&_pragma=journal_mode(WAL)&_pragma=journal_size_limit(" + fmt.Sprint(journalLimitMB<<20) + ")&_txlock=immediate"
	case connReader:
		return d + "&_pragma=query_only(1)"
	}
	return d
}

// openDBs opens the writer and reader pools and makes sure the schema is there
// and readable. Any error means the file is unusable.
func openDBs(ctx context.Context, path string) (w, r *sql.DB, err error) {
	w, err = sql.Open("sqlite", dsn(path, connWriter))
	if err != nil {
		return nil, nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	fail := func(e error) (*sql.DB, *sql.DB, error) {
		w.Close()
		if r != nil {
			r.Close()
		}
		return nil, nil, e
	}
	if err := w.PingContext(ctx); err != nil {
		return fail(err)
	}
	var version int64
	err = w.QueryRowContext(ctx, `SELECT value FROM meta WHERE key='schema'`).Scan(&version)
	switch {
	case err == nil:
		if version != schemaVersion {
			return fail(fmt.Errorf("schema version %d, want %d", version, schemaVersion))
		}
	case errors.Is(err, sql.ErrNoRows) || isNoTable(err):
		if err := createSchema(ctx, w); err != nil {
			return fail(err)
		}
	default:
		return fail(err)
	}
	// Touch every table so a damaged schema fails here, not later.
	for _, t := range []string{"series", "batch", "chunk", "rollup", "status"} {
		if _, err := w.ExecContext(ctx, `SELECT 1 FROM `+t+` LIMIT 1`); err != nil {
			return fail(fmt.Errorf("table %s: %w", t, err))
		}
	}
	r, err = sql.Open("sqlite", dsn(path, connReader))
	if err != nil {
		return fail(err)
	}
	r.SetMaxOpenConns(readerConns)
	r.SetMaxIdleConns(readerConns)
	if err := r.PingContext(ctx); err != nil {
		return fail(err)
	}
	return w, r, nil
}

func createSchema(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, s := range schema {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta(key, value) VALUES('schema', ?)`, schemaVersion); err != nil {
		return err
	}
	return tx.Commit()
}

func isNoTable(err error) bool {
	var se *sqlite.Error
	// "no such table" is a plain SQLITE_ERROR.
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_ERROR
}

// isDiskFull reports SQLITE_FULL (including max_page_count) and I/O errors
// caused by ENOSPC.
func isDiskFull(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL {
		return true
	}
	return errors.Is(err, syscall.ENOSPC)
}

// moveAside renames a damaged database (and its WAL) out of the way so a
// fresh one can be created; the old file is kept for the operator.
func moveAside(path string, now time.Time) (string, error) {
	dst := path + ".corrupt-" + now.UTC().Format("20060102T150405Z")
	if err := os.Rename(path, dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("move %s aside: %w", path, err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Rename(path+suffix, dst+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("move %s aside: %w", path+suffix, err)
		}
	}
	return dst, nil
}
