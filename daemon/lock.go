package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Lock is an exclusive lock on starting one daemon. It lives beside the
// state directory (<root>/<id>.lock), never inside it: the daemon removes
// its state directory when it stops, and a lock file deleted while held
// would let the next starter lock a new file and run a second daemon.
type Lock struct{ f *os.File }

// LockPath is the lock file of daemon id.
func LockPath(root, id string) string { return filepath.Join(root, id+".lock") }

// ErrLockTimeout means another process held the lock for the whole wait.
var ErrLockTimeout = errors.New("timed out waiting for the daemon start lock")

// Acquire takes the start lock of daemon id, waiting up to timeout. The
// kernel releases a flock when its holder dies, so a killed starter never
// leaves the lock stuck.
func Acquire(root, id string, timeout time.Duration) (*Lock, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create daemon state root %s: %w", root, err)
	}
	f, err := os.OpenFile(LockPath(root, id), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open daemon lock: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &Lock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w (%s)", ErrLockTimeout, f.Name())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Release gives the lock up.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = nil
}
