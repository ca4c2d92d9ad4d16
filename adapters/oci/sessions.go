package oci

import (
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tuist/fabrik-node/adapters"
)

// session is one blob upload in progress: the chunks received so far, in a
// staging file of the shared write path (adapters.Chunked), never in memory.
type session struct {
	id, repo string
	// mu serialises the requests of one upload; a request that finds done
	// set lost a race with the upload's end and answers as if it never
	// existed.
	mu   sync.Mutex
	up   *adapters.Chunked
	done bool
	// touched is the last request's time, read by the sweep under
	// sessions.mu (written under both locks).
	touched time.Time
}

// sessions holds the open uploads. They live in memory only: a restart
// drops them (and the store deletes their staging files when it opens), and
// clients start their upload again.
type sessions struct {
	mu   sync.Mutex
	m    map[string]*session
	max  int
	idle time.Duration
	now  func() time.Time
}

var errTooManyUploads = errors.New("too many uploads in progress")

func newSessions(max int, idle time.Duration) *sessions {
	return &sessions{m: map[string]*session{}, max: max, idle: idle, now: time.Now}
}

// open registers a new upload of repo. Sessions idle past the timeout are
// dropped first, so abandoned uploads do not hold files or slots forever.
func (s *sessions) open(repo string, up *adapters.Chunked) (*session, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, old := range s.m {
		if now.Sub(old.touched) > s.idle && old.mu.TryLock() {
			old.done = true
			old.up.Discard()
			old.mu.Unlock()
			delete(s.m, id)
		}
	}
	if len(s.m) >= s.max {
		return nil, errTooManyUploads
	}
	sess := &session{id: uuid.NewString(), repo: repo, up: up, touched: now}
	s.m[sess.id] = sess
	return sess, nil
}

// lock finds repo's upload id and locks it; nil when there is none.
func (s *sessions) lock(repo, id string) *session {
	s.mu.Lock()
	sess := s.m[id]
	s.mu.Unlock()
	if sess == nil || sess.repo != repo {
		return nil
	}
	sess.mu.Lock()
	if sess.done {
		sess.mu.Unlock()
		return nil
	}
	s.mu.Lock()
	sess.touched = s.now()
	s.mu.Unlock()
	return sess
}

// end forgets a locked session; its staging file belongs to the caller
// (committed or discarded).
func (s *sessions) end(sess *session) {
	sess.done = true
	s.mu.Lock()
	delete(s.m, sess.id)
	s.mu.Unlock()
}

// closeAll discards every upload.
func (s *sessions) closeAll() {
	s.mu.Lock()
	all := s.m
	s.m = map[string]*session{}
	s.mu.Unlock()
	for _, sess := range all {
		sess.mu.Lock()
		if !sess.done {
			sess.done = true
			sess.up.Discard()
		}
		sess.mu.Unlock()
	}
}
