package daemon

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
)

// Alive reports whether the daemon that published s still runs. A pid that
// is gone (kill -9, reboot) makes the state stale. Where /proc exists, the
// process must also be this daemon (its command line names the ID), so a pid
// reused by another program after a crash is not taken for the daemon.
func (s *State) Alive() bool { return processAlive(s.PID, s.ID) }

func processAlive(pid int, id string) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		// No /proc (macOS) or the process just exited: trust kill(0) only
		// when there is no /proc at all.
		_, statErr := os.Stat("/proc/self")
		return statErr != nil
	}
	if isZombie(pid) {
		return false
	}
	return bytes.Contains(cmdline, []byte(id))
}

// isZombie reports a process that exited but was not reaped yet (a daemon
// started by a test process that has not waited for it).
func isZombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}
