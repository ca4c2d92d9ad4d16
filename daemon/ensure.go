package daemon

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// StartOptions say how to start a daemon for a config file.
type StartOptions struct {
	// Root is the state root (Root()).
	Root string
	// ConfigPath is the absolute path of the project's fabrik.toml.
	ConfigPath string
	// Exe is the fabrik-node binary to run as `daemon run`.
	Exe string
	// Env is the daemon's environment (os.Environ() in the CLI).
	Env []string
	// Timeout bounds the wait for the start lock and for the new daemon to
	// publish its ports (default 30 s).
	Timeout time.Duration
	// StopTimeout bounds the wait for a superseded daemon to drain and exit
	// (default 35 s: the default graceful shutdown timeout and a margin).
	StopTimeout time.Duration
}

// Started says what Ensure did.
type Started struct {
	State *State
	// New is true when this call started the daemon.
	New bool
	// Stale is the ID whose dead state was replaced, if any.
	Stale bool
	// Superseded lists daemons of the same config file, started from an
	// older content, that were stopped (they drain first).
	Superseded []string
}

// Ensure returns the running daemon for the config file, starting it when
// none runs. Two callers at once start one daemon: the start lock is held
// from the check to the new daemon's published state. State whose process
// is gone is removed and replaced. Daemons of the same file with an older
// content are stopped (after draining) before the new one starts, since they
// may share its cache directory.
func Ensure(o StartOptions) (*Started, error) {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 35 * time.Second
	}
	id, err := IDOfFile(o.ConfigPath)
	if err != nil {
		return nil, err
	}
	// Fast path, no lock: the common case of a shell entering a project
	// whose daemon already runs.
	if s, err := Read(o.Root, id); err == nil && s.Alive() && servesFor(s, o.ConfigPath) {
		return &Started{State: s}, nil
	}
	lock, err := Acquire(o.Root, id, o.Timeout)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	res := &Started{}
	s, err := Read(o.Root, id)
	switch {
	case err == nil && s.Alive() && servesFor(s, o.ConfigPath):
		// Another shell started it while we waited for the lock.
		res.State = s
		return res, nil
	case err == nil && s.Alive():
		// Started for another file with the same content, which has since
		// changed or gone: that daemon stops itself once idle, so replace
		// it now rather than hand out ports about to close.
		if err := Stop(o.Root, s, o.StopTimeout); err != nil {
			return nil, fmt.Errorf("replace daemon %s of %s: %w", s.ID, s.ConfigPath, err)
		}
	case err == nil:
		res.Stale = true
	}
	// Under the lock nobody else is starting this daemon, so whatever is in
	// its directory belongs to a dead one.
	if err := os.RemoveAll(Dir(o.Root, id)); err != nil {
		return nil, fmt.Errorf("remove stale daemon state: %w", err)
	}
	others, _ := List(o.Root)
	for _, other := range others {
		if other.ID == id || other.ConfigPath != o.ConfigPath {
			continue
		}
		if !other.Alive() {
			os.RemoveAll(other.Dir)
			continue
		}
		if err := Stop(o.Root, other, o.StopTimeout); err != nil {
			return nil, fmt.Errorf("stop daemon %s of the previous %s: %w", other.ID, o.ConfigPath, err)
		}
		res.Superseded = append(res.Superseded, other.ID)
	}
	res.State, err = spawn(o, id)
	if err != nil {
		return nil, err
	}
	res.New = true
	return res, nil
}

// servesFor reports whether a running daemon will keep serving configPath:
// it was started for that file, or for another file whose content is still
// the same (identical configs share one daemon). A daemon whose own file
// changed or disappeared stops itself once idle.
func servesFor(s *State, configPath string) bool {
	if s.ConfigPath == configPath {
		return true
	}
	id, err := IDOfFile(s.ConfigPath)
	return err == nil && id == s.ID
}

// LogPath is where a daemon started by Ensure writes its log. It sits beside
// the state directory so that it outlives the daemon for a post-mortem.
func LogPath(root, id string) string { return filepath.Join(root, id+".log") }

// spawn starts `fabrik-node daemon run` detached from the shell (its own
// session: closing the terminal or Ctrl-C at the prompt does not reach it)
// and waits for it to publish its state.
func spawn(o StartOptions, id string) (*State, error) {
	logf, err := os.OpenFile(LogPath(o.Root, id), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open daemon log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(o.Exe, "daemon", "run", "--config", o.ConfigPath, "--id", id)
	cmd.Dir = filepath.Dir(o.ConfigPath)
	cmd.Env = o.Env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(o.Timeout)
	for {
		if s, err := Read(o.Root, id); err == nil && s.PID == cmd.Process.Pid {
			return s, nil
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("daemon exited before serving (%v); log %s:\n%s", err, LogPath(o.Root, id), tail(LogPath(o.Root, id), 20))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return nil, fmt.Errorf("daemon did not publish its ports within %s; log %s:\n%s", o.Timeout, LogPath(o.Root, id), tail(LogPath(o.Root, id), 20))
		}
	}
}

// ErrStillRunning means a daemon outlived the stop timeout.
var ErrStillRunning = errors.New("daemon still running")

// Stop asks a daemon to stop (SIGTERM: it drains in-flight requests within
// its graceful timeout and removes its state) and waits until it is gone. A
// daemon that died without cleaning up has its state removed here.
func Stop(root string, s *State, timeout time.Duration) error {
	if s.Alive() {
		if err := syscall.Kill(s.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signal daemon %s (pid %d): %w", s.ID, s.PID, err)
		}
		deadline := time.Now().Add(timeout)
		for s.Alive() {
			if time.Now().After(deadline) {
				return fmt.Errorf("%w after %s: %s (pid %d)", ErrStillRunning, timeout, s.ID, s.PID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return Remove(root, s.ID, s.PID)
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
