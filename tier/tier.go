// Package tier is the contract of a remote storage tier (an upstream Fabrik
// node, S3, later a P2P peer), and the three errors every layer shares. The
// router never calls a Tier: the node hosts each one in a remote actor
// (actors/remote: breaker, in-flight bound, metrics), which answers the
// router's messages with it, and the upload pool calls Put directly. The
// local tier is not a Tier: it is the store behind the local actor, which
// answers the same messages and returns the same errors.
package tier

import (
	"context"
	"errors"
	"io"

	"github.com/tuist/fabrik-node/messages"
)

// ErrNotFound is a miss. Every tier returns it (possibly wrapped) when it does
// not hold the artifact; any other error is a tier failure, which the router
// also treats as a miss for the client but counts and logs.
var ErrNotFound = errors.New("artifact not found")

// ErrFull means the tier refuses writes because it is at its hard size limit.
// Adapters turn it into HTTP 507 / gRPC RESOURCE_EXHAUSTED.
var ErrFull = errors.New("cache is full")

// ErrInvalid wraps rejected input: a wrong hash, a truncated body, a bad key.
var ErrInvalid = errors.New("invalid artifact")

// Tier is one storage layer. Implementations must be safe for concurrent use:
// remote tiers run many requests at once under their actor's concurrency limit.
type Tier interface {
	// Name identifies the tier in logs and metrics ("upstream-0").
	Name() string
	// Get opens an artifact; ErrNotFound (wrapped) for a miss, any other
	// error is a failure. The caller closes the reader. A remote tier may
	// fail mid-stream; the reader then returns an error and the router's
	// verification discards what was written back.
	Get(ctx context.Context, ref messages.Ref) (messages.Meta, io.ReadCloser, error)
	// Stat reports an artifact's metadata without reading it; ErrNotFound
	// for a miss.
	Stat(ctx context.Context, ref messages.Ref) (messages.Meta, error)
	// Put stores exactly meta.Size bytes whose SHA-256 is meta.Hash under ref.
	// A tier that cannot store (a proxy that is down) returns an error; the
	// upload pool retries it, the client never sees it.
	Put(ctx context.Context, ref messages.Ref, meta messages.Meta, body io.Reader) error
	// Delete removes ref (admin delete and clear, on upstreams that are
	// neither permanent nor read-only). Deleting a missing artifact is not
	// an error.
	Delete(ctx context.Context, ref messages.Ref) error
}

// OnClose returns body whose Close also runs release, after closing body:
// how a tier hands out a stream whose request context (or race) must end
// when the reader is done with it, not when the call returns.
func OnClose(body io.ReadCloser, release func()) io.ReadCloser {
	return &onClose{ReadCloser: body, release: release}
}

type onClose struct {
	io.ReadCloser
	release func()
}

func (c *onClose) Close() error {
	err := c.ReadCloser.Close()
	c.release()
	return err
}
