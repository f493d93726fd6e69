package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/esp32gw/esp32gw/adapters/history"
	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/configfile"
	"github.com/esp32gw/esp32gw/internal/statedir"
)

// restoreTimeout bounds reading the last values at start; the store answers
// from memory, so this is only a guard against a stuck disk.
const restoreTimeout = 10 * time.Second

// openHistory opens state_dir/history.db. The history must never stop the
// gateway: a corrupt file is moved aside by the store itself, and when not
// even a new database can be made (a read-only or missing state_dir) the
// gateway runs without history, live data only, and says so.
func openHistory(cfg gateway.HistoryConfig, state statedir.Dir, log *slog.Logger) *history.Store {
	if err := os.MkdirAll(state.Path(), 0o700); err != nil {
		log.Error("history is off: cannot create state_dir", "path", state.Path(), "err", err)
		return nil
	}
	s, err := history.Open(history.Options{
		Path:           state.HistoryDB(),
		Raw:            time.Duration(cfg.Raw),
		Minute:         time.Duration(cfg.Minute),
		Hour:           time.Duration(cfg.Hour),
		MaxSize:        int64(cfg.MaxSize),
		CommitInterval: time.Duration(cfg.CommitInterval),
		Logger:         log,
	})
	if err != nil {
		log.Error("history is off: the database cannot be opened; live data still flows", "path", state.HistoryDB(), "err", err)
		return nil
	}
	return s
}

// restore gives the hub what the last run left: each label's newest value
// and a seq floor, from the history database and the seq file. An older
// version's history.json is taken into the database first, once.
func (g *runningGateway) restore() {
	floor := g.state.SeqFloor()
	defer func() {
		// Before any board starts: a kill from here on is seen as a crash.
		if err := g.state.MarkRunning(g.hub.Seq()); err != nil {
			g.log.Warn("save seq", "err", err)
		}
	}()
	if g.history == nil {
		g.hub.RestoreLast(nil, floor)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), restoreTimeout)
	defer cancel()
	if legacy := g.state.TakeLegacyHistory(); len(legacy) > 0 {
		g.history.Append(legacy...)
		if err := g.history.Flush(ctx); err != nil {
			g.log.Warn("history.json: import into the database failed", "err", err)
		} else {
			g.log.Info("history.json imported into the history database", "readings", len(legacy))
		}
	}
	last, maxSeq, err := g.history.Last(ctx)
	if err != nil {
		g.log.Error("history: last values not restored", "err", err)
	}
	g.hub.RestoreLast(last, max(floor, maxSeq))
	g.recordCrashOutages(ctx, last)
}

// recordCrashOutages closes the availability of devices that the history
// still shows online: the last run ended without saying so (a power cut,
// kill -9). Each goes offline at the time of its newest stored reading, the
// last moment it was known to be up, so the outage shows in its timeline.
func (g *runningGateway) recordCrashOutages(ctx context.Context, last map[string]map[string]gateway.Record) {
	now := time.Now()
	for _, d := range g.cfg.Devices {
		ivs, err := g.history.Availability(ctx, d.ID, now.Add(-time.Second), now)
		if err != nil || len(ivs) == 0 || !ivs[len(ivs)-1].Online {
			continue
		}
		at := ivs[len(ivs)-1].From
		for _, r := range last[d.ID] {
			if r.TS.After(at) && r.TS.Before(now) {
				at = r.TS
			}
		}
		g.history.AppendStatus(d.ID, at, false, "gateway stopped unexpectedly")
	}
}

// backupHistory is `esp32gw backup FILE`: a consistent copy of the history
// database, safe while the gateway runs.
func backupHistory(ctx context.Context, c cli) error {
	if len(c.args) != 1 {
		return fmt.Errorf("backup needs the file to write: esp32gw backup [-config FILE] BACKUP.db")
	}
	cfg, err := configfile.Load(c.configPath)
	if err != nil {
		return err
	}
	src := statedir.New(c.configPath, cfg.StateDir, nil).HistoryDB()
	dst, err := filepath.Abs(c.args[0])
	if err != nil {
		return err
	}
	start := time.Now()
	if err := history.BackupFile(ctx, src, dst); err != nil {
		return err
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "backup of %s written to %s (%.1f MB in %.1f s)\n", src, dst, float64(fi.Size())/1e6, time.Since(start).Seconds())
	return nil
}
