package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"syscall"

	"github.com/tuist/fabrik-node/tier"
)

// Stager creates staging files in the store's tmp directory. Adapters stream
// request bodies into a Staged file in their own goroutine, so that hashing,
// disk writes and fsync never happen inside an actor's mailbox.
type Stager struct {
	dir   string
	fsync bool
}

// NewStager returns a Stager writing into dir (created if missing).
func NewStager(dir string, fsync bool) (*Stager, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create staging dir: %w", err)
	}
	return &Stager{dir: dir, fsync: fsync}, nil
}

// Dir is the staging directory (tests count what an upload left behind).
func (s *Stager) Dir() string { return s.dir }

// New opens a staging file. expectHash ("" when the protocol gives none) and
// expectSize (-1 when unknown) are verified by Seal.
func (s *Stager) New(expectHash string, expectSize int64) (*Staged, error) {
	f, err := os.CreateTemp(s.dir, "stage-*")
	if err != nil {
		return nil, fmt.Errorf("create staging file: %w", diskFull(err))
	}
	return &Staged{f: f, h: sha256.New(), expectHash: expectHash, expectSize: expectSize, fsync: s.fsync}, nil
}

// Staged is a blob being received: every byte is hashed as it is written, so
// the content is read exactly once. Sealed, it travels to the local tier in
// a local.Put.
type Staged struct {
	f          *os.File
	h          hash.Hash
	n          int64
	expectHash string
	expectSize int64
	fsync      bool
	hash       string
	sealed     bool
	discarded  bool
}

// Write appends p, refusing to grow past the expected size so a lying client
// cannot fill the disk.
func (s *Staged) Write(p []byte) (int, error) {
	if s.expectSize >= 0 && s.n+int64(len(p)) > s.expectSize {
		return 0, fmt.Errorf("%w: body longer than the declared %d bytes", tier.ErrInvalid, s.expectSize)
	}
	n, err := s.f.Write(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("write staging file: %w", diskFull(err))
	}
	return n, nil
}

// diskFull marks a file system out of space (or quota) as tier.ErrFull, so
// that a full disk is refused like a full cache (507 / RESOURCE_EXHAUSTED)
// instead of looking like a broken upload or a server fault.
func diskFull(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", tier.ErrFull, err)
	}
	return err
}

// Written is the number of bytes received so far.
func (s *Staged) Written() int64 { return s.n }

// Seal verifies size and hash, makes the file durable and closes it. On error
// the file is removed: a rejected upload leaves nothing behind.
func (s *Staged) Seal() error {
	sum := hex.EncodeToString(s.h.Sum(nil))
	switch {
	case s.expectSize >= 0 && s.n != s.expectSize:
		s.Discard()
		return fmt.Errorf("%w: received %d bytes, expected %d", tier.ErrInvalid, s.n, s.expectSize)
	case s.expectHash != "" && sum != s.expectHash:
		s.Discard()
		return fmt.Errorf("%w: content hash is %s, expected %s", tier.ErrInvalid, sum, s.expectHash)
	}
	if s.fsync {
		if err := s.f.Sync(); err != nil {
			s.Discard()
			return fmt.Errorf("sync staging file: %w", diskFull(err))
		}
	}
	if err := s.f.Close(); err != nil {
		s.Discard()
		return fmt.Errorf("close staging file: %w", diskFull(err))
	}
	s.hash, s.sealed = sum, true
	return nil
}

// Path is the staging file's location.
func (s *Staged) Path() string { return s.f.Name() }

// Hash is the verified SHA-256 (valid after Seal).
func (s *Staged) Hash() string { return s.hash }

// Size is the number of bytes staged.
func (s *Staged) Size() int64 { return s.n }

// Discard removes the staging file. Safe to call more than once and after a
// commit moved the file away.
func (s *Staged) Discard() {
	if s.discarded {
		return
	}
	s.discarded = true
	if !s.sealed {
		s.f.Close()
	}
	os.Remove(s.f.Name())
}
