// Package measure holds what the benchmark programs share: latency
// summaries and the peak resident memory of a node process read from /proc.
package measure

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Summary describes a set of latencies.
type Summary struct {
	N              int
	Mean, P50, P99 time.Duration
	Max            time.Duration
}

// Summarize sorts d in place and returns its summary.
func Summarize(d []time.Duration) Summary {
	if len(d) == 0 {
		return Summary{}
	}
	slices.Sort(d)
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return Summary{N: len(d), Mean: sum / time.Duration(len(d)), P50: pct(d, 50), P99: pct(d, 99), Max: d[len(d)-1]}
}

// pct is the nearest-rank percentile of sorted d.
func pct(d []time.Duration, p int) time.Duration {
	i := (len(d)*p + 99) / 100
	return d[max(i-1, 0)]
}

// Ms formats a duration in milliseconds with enough digits for loopback.
func Ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms" }

// ResetPeak resets the process's peak RSS (VmHWM) so that the next reading
// covers only what follows (Linux >= 4.0; "5" to clear_refs). Without the
// permission the reading covers the process's whole life, which the caller
// is told.
func ResetPeak(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS of pid %d: %w", pid, err)
	}
	return nil
}

// PeakRSS returns VmHWM and VmRSS of pid in bytes.
func PeakRSS(pid int) (peak, current int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmHWM" && name != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse %s of pid %d: %w", name, pid, err)
		}
		if name == "VmHWM" {
			peak = kb << 10
		} else {
			current = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	return peak, current, nil
}

// Memory is a process's resident memory split by kind (from
// /proc/<pid>/status): Anon is heap, stacks and other private memory, where
// leaks show; File is mapped file pages (the binary, memory-mapped files
// such as Badger's value log), page cache the kernel reclaims under
// pressure.
type Memory struct {
	RSS, Anon, File int64
}

// ResidentMemory reads a process's Memory.
func ResidentMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	var m Memory
	for _, line := range strings.Split(string(b), "\n") {
		name, val, ok := strings.Cut(line, ":")
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &m.RSS
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		}
		if !ok || dst == nil {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("parse %s of pid %d: %w", name, pid, err)
		}
		*dst = kb << 10
	}
	return m, nil
}

// Pids parses "name=pid,name=pid" (or bare pids, named by themselves).
func Pids(s string) (map[string]int, []string, error) {
	m := map[string]int{}
	var order []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		name, p, ok := strings.Cut(part, "=")
		if !ok {
			p = name
		}
		pid, err := strconv.Atoi(p)
		if err != nil {
			return nil, nil, fmt.Errorf("pid %q: %w", part, err)
		}
		m[name] = pid
		order = append(order, name)
	}
	return m, order, nil
}

// MiB formats bytes as mebibytes.
func MiB(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + "MiB" }

// CPUTime is the user + system CPU time process pid has used so far
// (/proc/<pid>/stat, in clock ticks of 10 ms). Unlike wall times it hardly
// depends on how loaded the machine is, so runs of one scenario against
// different servers compare by CPU per request even when the load drifts.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields after its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// utime and stime are fields 14 and 15, here 11 and 12 (0-based from state).
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return time.Duration(u+st) * 10 * time.Millisecond, nil
}
