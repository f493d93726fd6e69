package gwproc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ProcStatus is what /proc/PID/status says of a process's memory and
// threads (Linux only).
type ProcStatus struct {
	RSSKB   int64 // VmRSS: resident set, kB
	HWMKB   int64 // VmHWM: peak resident set, kB
	Threads int64 // Threads
}

// ReadStatus reads /proc/PID/status. It fails when the file cannot be read
// (an *fs.PathError: no /proc, or no such process), when it lacks VmRSS,
// VmHWM or Threads (a zombie has no Vm lines), or when one of them is not a
// number.
func ReadStatus(pid int) (ProcStatus, error) {
	var s ProcStatus
	name := fmt.Sprintf("/proc/%d/status", pid)
	b, err := os.ReadFile(name)
	if err != nil {
		return s, err
	}
	fields := map[string]*int64{"VmRSS": &s.RSSKB, "VmHWM": &s.HWMKB, "Threads": &s.Threads}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		p := fields[k]
		if !ok || p == nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return s, fmt.Errorf("%s: %s %q: %w", name, k, v, err)
		}
		*p = n
		delete(fields, k)
	}
	for k := range fields {
		return s, fmt.Errorf("%s: no %s", name, k)
	}
	return s, nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports (the kernel's ABI fixes
// it), and reading it with sysconf would need cgo.
const clockTicks = 100

// CPUTime reads pid's CPU time (utime + stime, all threads) from
// /proc/PID/stat (Linux only).
func CPUTime(pid int) (time.Duration, error) {
	name := fmt.Sprintf("/proc/%d/stat", pid)
	stat, err := os.ReadFile(name)
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no ')'", name)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: %d fields", name, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: bad utime/stime %q %q", name, f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}
