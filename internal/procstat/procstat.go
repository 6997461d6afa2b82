// Package procstat reads what Linux's /proc says of a process: its CPU time
// (/proc/<pid>/stat) and its resident memory and threads
// (/proc/<pid>/status). The measurement tools share it: roomlog-bench,
// testenv/scaling and testenv/idlemem.
//
// Concurrency: the functions keep no state and may be called from any
// goroutine.
package procstat

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime: 100 on every Linux the
// tools run on.
const clockTicks = 100

// CPUSeconds returns the CPU time pid has used, utime+stime, in seconds.
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s, err := parseStat(b)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return s, nil
}

// parseStat reads utime+stime, in seconds, from the text of /proc/<pid>/stat.
func parseStat(b []byte) (float64, error) {
	// The command name (field 2, in parentheses) may hold spaces and
	// parentheses; the fields resume after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, errors.New("too few fields")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("utime or stime is not a number")
	}
	return float64(ut+st) / clockTicks, nil
}

// Status is what /proc/<pid>/status says of a process's memory and threads.
type Status struct {
	RSS     int64 // VmRSS, bytes
	Threads int
}

// ReadStatus reads pid's VmRSS and Threads.
func ReadStatus(pid int) (Status, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Status{}, err
	}
	st, err := parseStatus(b)
	if err != nil {
		return st, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return st, nil
}

// parseStatus reads VmRSS and Threads from the text of /proc/<pid>/status.
func parseStatus(b []byte) (Status, error) {
	var st Status
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		switch k {
		case "VmRSS": // "VmRSS:	  123456 kB"
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return st, fmt.Errorf("VmRSS %q: %w", strings.TrimSpace(v), err)
			}
			st.RSS, found = kb*1024, true
		case "Threads":
			st.Threads, _ = strconv.Atoi(fields[0])
		}
	}
	if !found {
		return st, errors.New("no VmRSS")
	}
	return st, nil
}
