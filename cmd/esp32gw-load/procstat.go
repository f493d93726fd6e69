package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/esp32gw/esp32gw/internal/gwproc"
)

// procSample is one reading of a process's CPU and memory from /proc.
type procSample struct {
	at    time.Time
	cpu   time.Duration // utime + stime, all threads
	rssKB int64         // VmRSS
}

// readProc reads pid's CPU time from /proc/PID/stat and its resident set
// from /proc/PID/status (Linux only).
func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	cpu, err := gwproc.CPUTime(pid)
	if err != nil {
		return s, fmt.Errorf("procstat: %w", err)
	}
	st, err := gwproc.ReadStatus(pid)
	if err != nil {
		return s, fmt.Errorf("procstat: %w", err)
	}
	s.cpu, s.rssKB = cpu, st.RSSKB
	return s, nil
}

// cpuPct is the CPU used between a and b as a percentage of one core.
func cpuPct(a, b procSample) float64 {
	wall := b.at.Sub(a.at)
	if wall <= 0 {
		return 0
	}
	return float64(b.cpu-a.cpu) / float64(wall) * 100
}

// loadAvg is the 1-minute load average, or "" when unknown.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
