package adapters

import (
	"errors"
	"fmt"
	"io"

	"github.com/tuist/fabrik-node/store"
	"github.com/tuist/fabrik-node/tier"
)

// Chunked is an upload that arrives in several requests (the OCI
// distribution API's PATCH chunks): one staging file that every chunk
// appends to, hashed as it grows, so the content is never held in memory
// and is read exactly once. It is the resumable form of Receive; the
// outcomes are the same. A Chunked is not safe for concurrent use: the
// protocol serialises the chunks of one upload.
type Chunked struct {
	staged *store.Staged
	max    int64
}

// BeginChunked opens the staging file of a chunked upload of at most max
// bytes in total (0: no limit).
func BeginChunked(cache Cache, max int64) (*Chunked, error) {
	staged, err := cache.Stage("", -1)
	if err != nil {
		return nil, fmt.Errorf("stage upload: %w", err)
	}
	return &Chunked{staged: staged, max: max}, nil
}

// Size is the number of bytes received so far.
func (c *Chunked) Size() int64 { return c.staged.Written() }

// Append streams one chunk (length bytes, or -1 when undeclared) onto the
// upload. Bytes received before a failure stay: a client that resumes asks
// for the upload's size and continues from there. Outcome Stored means the
// chunk was appended; Size is the upload's total.
func (c *Chunked) Append(body io.Reader, length int64) Result {
	start := c.Size()
	if c.max > 0 && length >= 0 && start+length > c.max {
		return Result{Outcome: TooLarge, Size: start, Err: fmt.Errorf("upload of %d bytes exceeds the maximum of %d", start+length, c.max)}
	}
	limit := int64(-1)
	if length >= 0 {
		limit = length + 1 // one past: tells a body longer than declared
	}
	if c.max > 0 && (limit < 0 || start+limit > c.max+1) {
		limit = c.max + 1 - start
	}
	src := body
	if limit >= 0 {
		src = io.LimitReader(body, limit)
	}
	n, err := Copy(c.staged, src)
	total := start + n
	switch {
	case err != nil:
		if errors.Is(err, tier.ErrFull) || errors.Is(err, tier.ErrInvalid) {
			return classify(err, total)
		}
		return Result{Outcome: Truncated, Size: total, Err: fmt.Errorf("chunk incomplete after %d bytes: %w", n, err)}
	case c.max > 0 && total > c.max:
		return Result{Outcome: TooLarge, Size: total, Err: fmt.Errorf("upload exceeds the maximum of %d bytes", c.max)}
	case length >= 0 && n > length:
		return Result{Outcome: Invalid, Size: total, Err: fmt.Errorf("chunk longer than its declared %d bytes", length)}
	case length >= 0 && n < length:
		return Result{Outcome: Truncated, Size: total, Err: fmt.Errorf("chunk incomplete: received %d of %d bytes", n, length)}
	}
	return Result{Outcome: Stored, Size: total}
}

// Finish seals the upload and verifies it against hash (the SHA-256 the
// client declares). On any outcome but Stored the staging file is gone.
// The caller owns a returned blob: it must Commit it or Discard it.
func (c *Chunked) Finish(hash string) (*store.Staged, Result) {
	n := c.Size()
	if err := c.staged.Seal(); err != nil {
		return nil, classify(err, n)
	}
	if got := c.staged.Hash(); got != hash {
		c.staged.Discard()
		return nil, Result{Outcome: Invalid, Size: n, Hash: got,
			Err: fmt.Errorf("%w: content hash is %s, expected %s", tier.ErrInvalid, got, hash)}
	}
	return c.staged, Result{Outcome: Stored, Size: n, Hash: hash}
}

// Discard abandons the upload and removes its staging file.
func (c *Chunked) Discard() { c.staged.Discard() }
