package bazel

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/tuist/fabrik-node/store"
)

const (
	// defaultUploadTTL is how long an interrupted upload waits for its client
	// to come back; Bazel retries within seconds.
	defaultUploadTTL = 10 * time.Minute
	// defaultMaxParkedUploads bounds how many interrupted uploads are kept;
	// each holds a staging file, not memory, but disk is finite too.
	defaultMaxParkedUploads = 1000
)

// upload is an uncompressed ByteStream write in progress. Its bytes live in
// the staging file; only this small struct is kept in memory.
type upload struct {
	staged *store.Staged
	// committed mirrors staged.Written() for QueryWriteStatus, which must not
	// touch the Staged while the writing stream owns it.
	committed atomic.Int64
	// busy is set while a Write stream owns the upload; guarded by the
	// table's mutex. lastUsed orders parked uploads for expiry.
	busy     bool
	lastUsed time.Time
}

// uploadTable keeps interrupted uploads by resource name so that a client
// that lost its stream can ask QueryWriteStatus and continue from the
// committed size. It owns the staging files of parked uploads.
type uploadTable struct {
	mu        sync.Mutex
	m         map[string]*upload
	ttl       time.Duration
	maxParked int
}

func newUploadTable(ttl time.Duration, maxParked int) *uploadTable {
	return &uploadTable{m: map[string]*upload{}, ttl: ttl, maxParked: maxParked}
}

// acquire returns the parked upload under name, marked busy, or creates one
// with stage. ok is false if another stream is writing that upload now.
func (t *uploadTable) acquire(name string, stage func() (*store.Staged, error)) (up *upload, ok bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked(time.Now())
	if up := t.m[name]; up != nil {
		if up.busy {
			return nil, false, nil
		}
		up.busy = true
		return up, true, nil
	}
	st, err := stage()
	if err != nil {
		return nil, true, err
	}
	up = &upload{staged: st, busy: true, lastUsed: time.Now()}
	t.m[name] = up
	return up, true, nil
}

// park releases an interrupted upload so a later stream can resume it.
func (t *uploadTable) park(name string, up *upload) {
	t.mu.Lock()
	defer t.mu.Unlock()
	up.busy, up.lastUsed = false, time.Now()
	t.expireLocked(up.lastUsed)
}

// remove forgets a finished or failed upload. The caller has sealed,
// committed or discarded its staging file.
func (t *uploadTable) remove(name string, up *upload) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[name] == up {
		delete(t.m, name)
	}
}

// committed reports the bytes received so far by the upload under name.
func (t *uploadTable) committed(name string) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	up := t.m[name]
	if up == nil {
		return 0, false
	}
	return up.committed.Load(), true
}

// expireLocked discards parked uploads older than the TTL and, past the
// limit, the oldest parked ones. Called on every acquire and park, so no
// goroutine is needed to keep the table bounded.
func (t *uploadTable) expireLocked(now time.Time) {
	parked := 0
	var oldest string
	for name, up := range t.m {
		if up.busy {
			continue
		}
		if now.Sub(up.lastUsed) > t.ttl {
			up.staged.Discard()
			delete(t.m, name)
			continue
		}
		parked++
		if oldest == "" || up.lastUsed.Before(t.m[oldest].lastUsed) {
			oldest = name
		}
	}
	if parked > t.maxParked && oldest != "" {
		t.m[oldest].staged.Discard()
		delete(t.m, oldest)
	}
}

// discardAll drops every parked upload; busy ones are left to their streams.
func (t *uploadTable) discardAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, up := range t.m {
		if !up.busy {
			up.staged.Discard()
			delete(t.m, name)
		}
	}
}
