package history

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCrashHelper is the child of TestCrashKill9: it writes and flushes
// readings forever, reporting each flush, until it is killed.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv("HISTORY_CRASH_DIR")
	if dir == "" {
		t.Skip("helper for TestCrashKill9")
	}
	s, err := Open(Options{Path: filepath.Join(dir, "history.db"), CommitInterval: time.Hour})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	for n := 0; ; n++ {
		for i := 0; i < 100; i++ {
			k := n*100 + i
			s.Append(Reading{Device: "d", Label: "n", TS: t0.Add(time.Duration(k) * time.Second), Value: []byte(strconv.Itoa(k)), Seq: uint64(k + 1)})
		}
		if n%7 == 3 {
			s.onWriter(context.Background(), func(ctx context.Context) error { s.commit(ctx, true); return s.compact(ctx) })
		}
		if err := s.Flush(context.Background()); err != nil {
			fmt.Println("flush:", err)
			os.Exit(2)
		}
		fmt.Printf("flushed %d\n", (n+1)*100)
		// Unflushed readings in the queue when the kill comes.
		s.Append(Reading{Device: "d", Label: "pending", TS: t0, Value: []byte("1")})
	}
}

// TestCrashKill9 kills a process that is writing (SIGKILL, no Close) and
// checks the reopened database is intact and holds every flushed reading.
func TestCrashKill9(t *testing.T) {
	if os.Getenv("HISTORY_CRASH_DIR") != "" {
		t.Skip()
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "HISTORY_CRASH_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	flushed := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(line, "flushed "); ok {
			flushed, _ = strconv.Atoi(n)
			if flushed >= 3000 {
				break
			}
		} else if strings.HasPrefix(line, "open:") || strings.HasPrefix(line, "flush:") {
			t.Fatalf("helper: %s", line)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if flushed < 3000 {
		t.Fatalf("helper flushed only %d", flushed)
	}
	s, _ := openTest(t, Options{Path: filepath.Join(dir, "history.db")})
	var ok string
	if err := s.r.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check %q %v", ok, err)
	}
	seen := make(map[int]bool)
	err = s.Export(context.Background(), ExportFilter{From: t0, To: t0.Add(1000 * time.Hour), Device: "d", Label: "n"}, func(r Reading) error {
		k, _ := strconv.Atoi(string(r.Value))
		seen[k] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k < flushed; k++ {
		if !seen[k] {
			t.Fatalf("flushed reading %d missing after kill -9 (%d flushed, %d found)", k, flushed, len(seen))
		}
	}
	last, maxSeq, _ := s.Last(context.Background())
	if maxSeq < uint64(flushed) || last["d"]["n"].Seq < uint64(flushed) {
		t.Fatalf("seq after crash: max %d, last %+v; flushed %d", maxSeq, last["d"]["n"], flushed)
	}
}
