package adapters

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
	"github.com/tuist/fabrik-node/tier"
)

// Outcome is what became of an upload, in terms every protocol can map to
// its own status codes. Receive, Commit and Store are the only places that
// decide an outcome; adapters only translate it (see StatusTable), so the
// same condition never gets two different answers on two protocols.
type Outcome int

const (
	// Stored: the artifact is durable in the local tier.
	Stored Outcome = iota
	// TooLarge: the body is (or declared itself) larger than the limit.
	TooLarge
	// Full: the cache is at its hard size limit, or the disk is full.
	Full
	// Truncated: the body ended before its declared length, or the client's
	// connection failed mid-upload.
	Truncated
	// Invalid: the content does not match what was declared (a wrong hash,
	// a body longer than its Content-Length, an extra digest that differs).
	Invalid
	// Unavailable: the node could not answer in time (the router or local
	// tier did not reply before the request's deadline, or is stopping).
	Unavailable
	// Internal: anything else; logged by the adapter with Err.
	Internal
)

var outcomeNames = [...]string{"stored", "too large", "full", "truncated", "invalid", "unavailable", "internal"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Upload describes one incoming body.
type Upload struct {
	// Body is the request body; Receive reads it to EOF (or to the limit).
	Body io.Reader
	// Length is the declared length, or -1 when the protocol declares none
	// (chunked HTTP bodies).
	Length int64
	// Hash is the SHA-256 the content must have, "" when the protocol gives
	// none (tool keys that are not content hashes).
	Hash string
	// Max is the largest body accepted; 0 means no limit.
	Max int64
	// Also, when set, sees every byte as it is staged: extra digests a
	// protocol verifies itself (S3's MD5 ETag and x-amz-checksum-*). The
	// adapter checks them between Receive and Commit.
	Also io.Writer
	// Held marks a blob kept across requests in numbers the client chooses
	// (S3 multipart parts): it is staged in a file even when it is small
	// enough to stay in memory.
	Held bool
}

// Result is an upload's outcome with what the adapter needs to answer.
type Result struct {
	Outcome Outcome
	// Size is the number of bytes received (stored, when Outcome is Stored).
	Size int64
	// Hash is the content's SHA-256 once the body was sealed.
	Hash string
	// Err explains every outcome but Stored; its text is safe to show a
	// client (it names sizes and hashes, never paths).
	Err error
}

// Receive streams up.Body into a sealed staging blob (in memory when small
// enough to be stored inline, else a file): hashed as it is written,
// bounded by the declared length and by up.Max, verified against up.Hash,
// made durable. On any outcome but Stored nothing is left on disk and the
// returned blob is nil. The caller owns a returned blob: it must
// Commit it or Discard it.
func Receive(cache Cache, up Upload) (*store.Staged, Result) {
	if up.Max > 0 && up.Length > up.Max {
		return nil, Result{Outcome: TooLarge, Err: fmt.Errorf("artifact of %d bytes exceeds the maximum of %d", up.Length, up.Max)}
	}
	staged, err := cache.Stage(up.Hash, up.Length)
	if err != nil {
		return nil, classify(fmt.Errorf("stage upload: %w", err), 0)
	}
	body := up.Body
	if up.Max > 0 && up.Length < 0 {
		// No declared size: stop one byte past the limit to tell "at the
		// limit" from "over it" without reading an unbounded body.
		body = io.LimitReader(body, up.Max+1)
	}
	var dst io.Writer = staged
	if up.Also != nil {
		dst = io.MultiWriter(staged, up.Also)
	}
	n, err := Copy(dst, body)
	switch {
	case err != nil:
		staged.Discard()
		if errors.Is(err, tier.ErrFull) || errors.Is(err, tier.ErrInvalid) {
			return nil, classify(err, n)
		}
		// Anything else came from reading the body: the client went away.
		return nil, Result{Outcome: Truncated, Size: n, Err: fmt.Errorf("upload incomplete after %d bytes: %w", n, err)}
	case up.Max > 0 && n > up.Max:
		staged.Discard()
		return nil, Result{Outcome: TooLarge, Size: n, Err: fmt.Errorf("artifact exceeds the maximum of %d bytes", up.Max)}
	case up.Length >= 0 && n < up.Length:
		staged.Discard()
		return nil, Result{Outcome: Truncated, Size: n, Err: fmt.Errorf("upload incomplete: received %d of %d bytes", n, up.Length)}
	}
	if err := staged.Seal(); err != nil {
		return nil, classify(err, n)
	}
	if up.Held {
		if err := staged.Spill(); err != nil {
			staged.Discard()
			return nil, classify(fmt.Errorf("stage upload: %w", err), n)
		}
	}
	return staged, Result{Outcome: Stored, Size: n, Hash: staged.Hash()}
}

// Commit stores a sealed blob under ref. The cache owns the blob afterwards,
// whatever the outcome.
func Commit(ctx context.Context, cache Cache, ref messages.Ref, meta messages.Meta, blob *store.Staged) Result {
	size, hash := blob.Size(), blob.Hash()
	if err := cache.Put(ctx, ref, meta, blob); err != nil {
		r := classify(fmt.Errorf("store %s: %w", ref, err), size)
		r.Hash = hash
		return r
	}
	return Result{Outcome: Stored, Size: size, Hash: hash}
}

// Store is Receive then Commit: the whole write path of an upload whose
// content needs no protocol-specific check before it is committed.
func Store(ctx context.Context, cache Cache, ref messages.Ref, meta messages.Meta, up Upload) Result {
	blob, res := Receive(cache, up)
	if res.Outcome != Stored {
		return res
	}
	return Commit(ctx, cache, ref, meta, blob)
}

// classify maps a storage error to its outcome.
func classify(err error, n int64) Result {
	r := Result{Size: n, Err: err}
	switch {
	case errors.Is(err, tier.ErrFull):
		r.Outcome = Full
	case errors.Is(err, tier.ErrInvalid):
		r.Outcome = Invalid
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.Is(err, actors.ErrStopped):
		r.Outcome = Unavailable
	default:
		r.Outcome = Internal
	}
	return r
}

// Answer is one protocol's reply to an outcome: a status code and a short
// message for the body (the adapter renders it in its protocol's format).
type Answer struct {
	Status  int
	Message string
}

// StatusTable maps every outcome to a protocol's answer. Each HTTP adapter
// declares one; a missing outcome is a programming error caught by the
// adapters' table tests.
type StatusTable map[Outcome]Answer

// For returns the answer to res. The message is the table's, followed by
// the result's own explanation when there is one.
func (t StatusTable) For(res Result) Answer {
	a, ok := t[res.Outcome]
	if !ok {
		a = Answer{Status: 500, Message: "unexpected upload outcome " + res.Outcome.String()}
	}
	if res.Err != nil && res.Outcome != Internal && res.Outcome != Unavailable {
		// Internal errors may name paths; they are logged, not shown.
		if a.Message == "" {
			a.Message = res.Err.Error()
		} else {
			a.Message += ": " + res.Err.Error()
		}
	}
	return a
}

// Outcomes lists every outcome, for tests that check a table is complete.
func Outcomes() []Outcome {
	return []Outcome{Stored, TooLarge, Full, Truncated, Invalid, Unavailable, Internal}
}
