package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports (the kernel's ABI fixes
// it), and reading it with sysconf would need cgo.
const clockTicks = 100

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
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("procstat: %w", err)
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("procstat: /proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return s, fmt.Errorf("procstat: /proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("procstat: /proc/%d/stat: bad utime/stime %q %q", pid, f[11], f[12])
	}
	s.cpu = time.Duration(ut+st) * time.Second / clockTicks

	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("procstat: %w", err)
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return s, fmt.Errorf("procstat: /proc/%d/status: VmRSS %q", pid, v)
			}
			s.rssKB = kb
			return s, nil
		}
	}
	return s, fmt.Errorf("procstat: /proc/%d/status: no VmRSS", pid)
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
