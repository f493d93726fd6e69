package main

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
)

// What the gateway keeps in state_dir besides the token:
//   - history.json: every label's recent values, written on a clean shutdown;
//   - seq: the newest sequence number and whether the last run ended cleanly,
//     written every seqSaveEvery while running.
//
// After a crash the next run starts seqCrashGap past the last saved seq, so a
// browser resuming with ?since= from before the crash is never handed new
// events under old numbers.
const (
	seqSaveEvery = 5 * time.Second
	seqCrashGap  = 1_000_000
)

type stateStore struct {
	dir string
	log *slog.Logger
}

// restore loads what the last run left, if anything.
func (s stateStore) restore(hub *gateway.Hub) {
	var floor uint64
	if b, err := os.ReadFile(filepath.Join(s.dir, "seq")); err == nil {
		fields := strings.Fields(string(b))
		if len(fields) == 2 {
			if n, err := strconv.ParseUint(fields[0], 10, 63); err == nil {
				floor = n
				if fields[1] != "clean" {
					floor += seqCrashGap
				}
			}
		}
	}
	var saved gateway.SavedState
	b, err := os.ReadFile(filepath.Join(s.dir, "history.json"))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		s.log.Warn("history not restored", "err", err)
	default:
		if err := json.Unmarshal(b, &saved); err != nil {
			s.log.Warn("history not restored: history.json is damaged; it will be rewritten on shutdown", "err", err)
			saved = gateway.SavedState{}
		}
	}
	hub.RestoreState(saved, floor)
}

// run saves the seq every seqSaveEvery until ctx ends.
func (s stateStore) run(ctx context.Context, hub *gateway.Hub) {
	t := time.NewTicker(seqSaveEvery)
	defer t.Stop()
	last := ^uint64(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if seq := hub.Seq(); seq != last {
				if err := s.writeSeq(seq, "running"); err != nil {
					s.log.Warn("save seq", "err", err)
				}
				last = seq
			}
		}
	}
}

// save writes history and the final seq; call it after transports stopped.
func (s stateStore) save(hub *gateway.Hub) {
	st := hub.SaveState()
	b, err := json.Marshal(st)
	if err == nil {
		err = writeFileAtomic(filepath.Join(s.dir, "history.json"), b)
	}
	if err != nil {
		s.log.Warn("history not saved", "err", err)
	}
	if err := s.writeSeq(st.Seq, "clean"); err != nil {
		s.log.Warn("save seq", "err", err)
	}
}

func (s stateStore) writeSeq(seq uint64, how string) error {
	return writeFileAtomic(filepath.Join(s.dir, "seq"), []byte(fmt.Sprintf("%d %s\n", seq, how)))
}

// writeFileAtomic replaces path so a crash never leaves half a file.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
