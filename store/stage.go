package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"syscall"

	"github.com/tuist/fabrik-node/tier"
)

// Stager creates staging blobs for the store. Adapters stream request bodies
// into a Staged blob in their own goroutine, so that hashing, disk writes and
// fsync never happen inside an actor's mailbox.
//
// A blob that fits in inlineMax bytes is staged in memory and committed into
// the index itself (see "Inline blobs" in the package doc): a file create and
// a rename per 4 KiB artifact were most of a small PUT's cost. Anything
// larger, or that grows past inlineMax, is staged in a file in dir.
type Stager struct {
	dir       string
	fsync     bool
	inlineMax int64
}

// NewStager returns a Stager writing into dir (created if missing). Blobs of
// up to inlineMax bytes stay in memory (0 or less: every blob gets a file).
func NewStager(dir string, fsync bool, inlineMax int64) (*Stager, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create staging dir: %w", err)
	}
	return &Stager{dir: dir, fsync: fsync, inlineMax: max(inlineMax, 0)}, nil
}

// Dir is the staging directory (tests count what an upload left behind).
func (s *Stager) Dir() string { return s.dir }

// New starts a staging blob. expectHash ("" when the protocol gives none)
// and expectSize (-1 when unknown) are verified by Seal. A blob declared to
// fit the inline bound, or of unknown size, starts in memory; one declared
// larger gets its file at once.
func (s *Stager) New(expectHash string, expectSize int64) (*Staged, error) {
	st := &Staged{stager: s, h: sha256.New(), expectHash: expectHash, expectSize: expectSize}
	if expectSize > s.inlineMax {
		if err := st.spill(); err != nil {
			return nil, err
		}
	} else if expectSize > 0 {
		// Memory follows the bytes received, not the length declared: a
		// client that declares 64 KiB and trickles one byte holds one
		// small buffer, whatever the number of such uploads.
		st.buf = make([]byte, 0, min(expectSize, initialStageBuf))
	}
	return st, nil
}

// initialStageBuf is the first buffer of an in-memory staging blob: most
// build outputs fit, larger ones grow it as their bytes arrive.
const initialStageBuf = 8 << 10

// Staged is a blob being received: every byte is hashed as it is written, so
// the content is read exactly once (unless Append leaves the hash to Seal). Sealed, it travels to the local tier in
// a local.Put. It lives in memory (buf) until it outgrows the inline bound,
// then in a staging file (f); a blob never moves back.
type Staged struct {
	stager     *Stager
	f          *os.File // nil while the blob is in memory
	buf        []byte
	h          hash.Hash
	n          int64
	expectHash string
	expectSize int64
	hash       string
	sealed     bool
	discarded  bool
	hashed     int64 // bytes fed to h: all but what Append left to Seal
}

// Write appends p, refusing to grow past the expected size so a lying client
// cannot fill the disk.
func (s *Staged) Write(p []byte) (int, error) { return s.write(p, true) }

// Append is Write without hashing, for a writer that must keep pace with
// its source (a write-back serving a client): the bytes it appends, and any
// written after them, are hashed by Seal, read back. A blob that is only
// written is read exactly once.
func (s *Staged) Append(p []byte) (int, error) { return s.write(p, false) }

func (s *Staged) write(p []byte, hash bool) (int, error) {
	if s.expectSize >= 0 && s.n+int64(len(p)) > s.expectSize {
		return 0, fmt.Errorf("%w: body longer than the declared %d bytes", tier.ErrInvalid, s.expectSize)
	}
	// Bytes are hashed in order: once Append left some to Seal, the rest
	// waits for Seal too.
	hash = hash && s.hashed == s.n
	if s.f == nil {
		if s.n+int64(len(p)) <= s.stager.inlineMax {
			s.buf = append(s.buf, p...)
			if hash {
				s.h.Write(p)
				s.hashed += int64(len(p))
			}
			s.n += int64(len(p))
			return len(p), nil
		}
		if err := s.spill(); err != nil {
			return 0, err
		}
	}
	n, err := s.f.Write(p)
	if hash {
		s.h.Write(p[:n])
		s.hashed += int64(n)
	}
	s.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("write staging file: %w", diskFull(err))
	}
	return n, nil
}

// Spill moves an in-memory blob, sealed or not, into a staging file: for
// blobs held across requests in numbers the client chooses (S3 multipart
// parts), which must not pile up in memory. A blob already in a file is
// left alone.
func (s *Staged) Spill() error {
	if s.f != nil || s.discarded {
		return nil
	}
	if err := s.spill(); err != nil {
		return err
	}
	if !s.sealed {
		return nil
	}
	if s.stager.fsync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("sync staging file: %w", diskFull(err))
		}
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("close staging file: %w", diskFull(err))
	}
	return nil
}

// spill moves the blob from memory into a new staging file.
func (s *Staged) spill() error {
	f, err := os.CreateTemp(s.stager.dir, "stage-*")
	if err != nil {
		return fmt.Errorf("create staging file: %w", diskFull(err))
	}
	if _, err := f.Write(s.buf); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("write staging file: %w", diskFull(err))
	}
	s.f, s.buf = f, nil
	return nil
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

// Seal verifies size and hash, makes a staging file durable and closes it.
// On error the blob is discarded: a rejected upload leaves nothing behind.
func (s *Staged) Seal() error {
	if err := s.hashRest(); err != nil {
		s.Discard()
		return err
	}
	sum := hex.EncodeToString(s.h.Sum(nil))
	switch {
	case s.expectSize >= 0 && s.n != s.expectSize:
		s.Discard()
		return fmt.Errorf("%w: received %d bytes, expected %d", tier.ErrInvalid, s.n, s.expectSize)
	case s.expectHash != "" && sum != s.expectHash:
		s.Discard()
		return fmt.Errorf("%w: content hash is %s, expected %s", tier.ErrInvalid, sum, s.expectHash)
	}
	if s.f != nil {
		if s.stager.fsync {
			if err := s.f.Sync(); err != nil {
				s.Discard()
				return fmt.Errorf("sync staging file: %w", diskFull(err))
			}
		}
		if err := s.f.Close(); err != nil {
			s.Discard()
			return fmt.Errorf("close staging file: %w", diskFull(err))
		}
	}
	s.hash, s.sealed = sum, true
	return nil
}

// hashRest hashes what Append left unhashed: the end of the buffer, or of
// the file, read back.
func (s *Staged) hashRest() error {
	if s.hashed == s.n {
		return nil
	}
	if s.f == nil {
		s.h.Write(s.buf[s.hashed:])
		s.hashed = s.n
		return nil
	}
	buf := make([]byte, min(s.n-s.hashed, 1<<20))
	if _, err := io.CopyBuffer(s.h, io.NewSectionReader(s.f, s.hashed, s.n-s.hashed), buf); err != nil {
		return fmt.Errorf("hash staging file: %w", err)
	}
	s.hashed = s.n
	return nil
}

// Inline reports whether the blob is held in memory (it will be committed
// into the index rather than as a file of its own).
func (s *Staged) Inline() bool { return s.f == nil }

// Open reads a sealed blob back from the start (S3 multipart concatenates
// its staged parts this way). The caller closes it.
func (s *Staged) Open() (io.ReadCloser, error) {
	if !s.sealed || s.discarded {
		return nil, errors.New("store: staged blob is not sealed")
	}
	if s.f == nil {
		return io.NopCloser(bytes.NewReader(s.buf)), nil
	}
	f, err := os.Open(s.f.Name())
	if err != nil {
		return nil, fmt.Errorf("open staged blob: %w", err)
	}
	return f, nil
}

// Path is the staging file's location, "" while the blob is in memory.
func (s *Staged) Path() string {
	if s.f == nil {
		return ""
	}
	return s.f.Name()
}

// Hash is the verified SHA-256 (valid after Seal).
func (s *Staged) Hash() string { return s.hash }

// Size is the number of bytes staged.
func (s *Staged) Size() int64 { return s.n }

// Discard drops the blob and removes its staging file. Safe to call more
// than once and after a commit moved the file away.
func (s *Staged) Discard() {
	if s.discarded {
		return
	}
	s.discarded = true
	s.buf = nil
	if s.f == nil {
		return
	}
	if !s.sealed {
		s.f.Close()
	}
	os.Remove(s.f.Name())
}
