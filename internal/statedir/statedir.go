// Package statedir keeps what the gateway holds in state_dir across
// restarts (docs/contract-notes.md, "State"):
//   - token: the browser token generated on first start (mode 0600);
//   - viewer_token: the read-only token, made by esp32gw token -viewer (0600);
//   - sessions.json: login sessions (hashed ids; package web owns the content);
//   - seq: the newest sequence number and whether the last run ended
//     cleanly, written every SeqSaveEvery while running;
//   - history.db: the history database (adapters/history owns its content);
//   - history.json: what versions before the history database kept; it is
//     taken into the database once and renamed history.json.imported.
//
// After a crash the next run starts SeqCrashGap past the last saved seq, so a
// browser resuming with ?since= from before the crash is never handed new
// events under old numbers.
package statedir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/esp32gw/esp32gw/gateway"

	"github.com/esp32gw/esp32gw/internal/atomicfile"
)

const (
	// SeqSaveEvery is how often a running gateway writes its seq.
	SeqSaveEvery = 5 * time.Second
	// SeqCrashGap is how far past the last saved seq a run after a crash starts.
	SeqCrashGap = 1_000_000
)

// File names inside the state directory.
const (
	tokenFile       = "token"
	viewerTokenFile = "viewer_token" // esp32gw token -viewer
	sessionsFile    = "sessions.json"
	seqFile         = "seq"
	historyDB       = "history.db"
	legacyHistory   = "history.json" // before the history database: taken in once
)

// Dir is a gateway's state directory. Its zero value is not usable; see New.
type Dir struct {
	path string
	log  *slog.Logger
}

// New returns the state directory stateDir (from the config's state_dir),
// taken relative to the config file's directory unless absolute. Nothing is
// created until something is written.
func New(configPath, stateDir string, log *slog.Logger) Dir {
	if !filepath.IsAbs(stateDir) {
		stateDir = filepath.Join(filepath.Dir(configPath), stateDir)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return Dir{path: stateDir, log: log}
}

// Path is the directory's path.
func (d Dir) Path() string { return d.path }

// Token returns the browser token and where it came from: "config", the
// token file's path, or "" with auth none. With auth token and no token
// configured, the first start generates one and keeps it (mode 0600).
func (d Dir) Token(h gateway.HTTPConfig) (token, source string, err error) {
	if h.Auth == "none" {
		return "", "", nil
	}
	if h.Token != "" {
		return h.Token, "config", nil
	}
	path := filepath.Join(d.path, tokenFile)
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); validToken(t) {
			return t, path, nil
		}
		// Damaged (garbage, empty, several lines): keep it for the
		// operator to look at, and generate a new token.
		d.keepAside(path, "token file is damaged: a new token is generated")
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("read token: %w", err)
	}
	if token, err = newToken(); err != nil {
		return "", "", err
	}
	if err := d.writeToken(token); err != nil {
		return "", "", err
	}
	return token, path, nil
}

// SeqFloor is the seq the next run must start past: the last saved seq,
// plus SeqCrashGap when the last run did not end cleanly. 0 on a first start.
//
// A damaged seq file is kept aside (seq.corrupt-TIMESTAMP) rather than
// overwritten by the next save, and counts as a crash: the floor is
// SeqCrashGap.
func (d Dir) SeqFloor() uint64 {
	path := filepath.Join(d.path, seqFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	var n uint64
	if len(fields) == 2 {
		n, err = strconv.ParseUint(fields[0], 10, 63)
	}
	if len(fields) != 2 || err != nil || fields[1] != "clean" && fields[1] != "running" {
		d.keepAside(path, "seq file is damaged: starting past a crash gap")
		return SeqCrashGap
	}
	if fields[1] != "clean" {
		n += SeqCrashGap
	}
	return n
}

// HistoryDB is the path of the history database.
func (d Dir) HistoryDB() string { return filepath.Join(d.path, historyDB) }

// TakeLegacyHistory returns the label histories an older version kept in
// history.json (each label's last 600 points, written on clean shutdowns),
// for the history database to take in once, and renames the file to
// history.json.imported so it is not taken twice. A damaged file is kept
// aside the same way and yields nothing.
func (d Dir) TakeLegacyHistory() []gateway.Record {
	path := filepath.Join(d.path, legacyHistory)
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			d.log.Warn("history.json not imported", "err", err)
		}
		return nil
	}
	var saved struct {
		Devices map[string]map[string][]struct {
			Value json.RawMessage `json:"value"`
			TS    time.Time       `json:"ts"`
			Seq   uint64          `json:"seq"`
		} `json:"devices"`
	}
	var recs []gateway.Record
	if err := json.Unmarshal(b, &saved); err != nil {
		d.log.Warn("history.json is damaged: not imported", "err", err)
	} else {
		for dev, labels := range saved.Devices {
			for label, pts := range labels {
				for _, p := range pts {
					if len(p.Value) > 0 && json.Valid(p.Value) && !p.TS.IsZero() {
						recs = append(recs, gateway.Record{Device: dev, Label: label, TS: p.TS, Value: p.Value, Seq: p.Seq})
					}
				}
			}
		}
	}
	if err := os.Rename(path, path+".imported"); err != nil {
		d.log.Warn("history.json: cannot rename it after import", "err", err)
	}
	return recs
}

// MarkRunning records, before any reading is accepted, that a run has begun
// at seq: a run killed before Run's first save still leaves a "running" mark,
// so the next start adds SeqCrashGap and seq never goes back.
func (d Dir) MarkRunning(seq uint64) error {
	return d.writeSeq(seq, "running")
}

// Run saves hub's seq every SeqSaveEvery until ctx ends.
func (d Dir) Run(ctx context.Context, hub *gateway.Hub) {
	t := time.NewTicker(SeqSaveEvery)
	defer t.Stop()
	last := ^uint64(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if seq := hub.Seq(); seq != last {
				if err := d.writeSeq(seq, "running"); err != nil {
					d.log.Warn("save seq", "err", err)
				}
				last = seq
			}
		}
	}
}

// Save writes the final seq, marked clean; call it after the transports
// have stopped.
func (d Dir) Save(hub *gateway.Hub) {
	if err := d.writeSeq(hub.Seq(), "clean"); err != nil {
		d.log.Warn("save seq", "err", err)
	}
}

func (d Dir) writeSeq(seq uint64, how string) error {
	return writeFileAtomic(filepath.Join(d.path, seqFile), []byte(fmt.Sprintf("%d %s\n", seq, how)))
}

// writeFileAtomic replaces path so a crash or a power cut never leaves half
// a file: the data is written to a temporary file in the same directory and
// synced, renamed over path, and the directory synced so the rename itself
// is on disk. The file has mode 0600 (os.CreateTemp).
func writeFileAtomic(path string, data []byte) error { return atomicfile.Write(path, data) }

// keepAside renames a damaged state file to NAME.corrupt-TIMESTAMP, so the
// next write does not destroy what an operator may want to look at, and
// logs why.
func (d Dir) keepAside(path, why string) {
	aside := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000Z")
	if err := os.Rename(path, aside); err != nil {
		d.log.Error(why+"; it could not be kept aside", "file", path, "err", err)
		return
	}
	atomicfile.SyncDir(filepath.Dir(path))
	d.log.Warn(why+"; the damaged file is kept", "file", aside)
}

// validToken: one line of printable ASCII without spaces, as generated
// tokens and hand-set ones are; anything else is a damaged file.
func validToken(t string) bool {
	if t == "" || len(t) > 1024 {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] > '~' {
			return false
		}
	}
	return true
}
