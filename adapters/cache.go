// Package adapters holds what every protocol adapter shares: the Cache seam
// through which adapters reach the router, and the HTTP front that hosts the
// HTTP adapters on one listener.
package adapters

import (
	"context"
	"net/http"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
)

// Cache is what an adapter may ask of the node. The node's implementation
// sends messages to the router actor; adapters never touch tiers directly.
//
// Errors: Get and Stat turn tier failures into misses (Found=false, nil error)
// so a failing upstream never fails a build. Put returns tier.ErrFull at the
// hard size limit and tier.ErrInvalid for rejected content.
type Cache interface {
	Get(ctx context.Context, ref messages.Ref) (*messages.GetResult, error)
	Stat(ctx context.Context, ref messages.Ref) (*messages.StatResult, error)
	// Stage opens a staging file for an incoming body. expectHash may be ""
	// and expectSize -1 when the protocol does not declare them.
	Stage(expectHash string, expectSize int64) (*store.Staged, error)
	// Put commits a sealed staging file under ref; the cache owns the file
	// afterwards, whether Put succeeds or not.
	Put(ctx context.Context, ref messages.Ref, meta messages.Meta, blob *store.Staged) error
	Delete(ctx context.Context, ref messages.Ref) error
}

// Access is what a request wants to do, mapped to a JWT scope by the auth
// layer: cache:read, cache:write, admin.
type Access int

const (
	Read Access = iota
	Write
	Admin
)

// Guard wraps an HTTP handler with authentication and authorization for the
// given access. A nil Guard means open access (auth disabled).
type Guard func(access Access, h http.Handler) http.Handler

// Wrap applies g, or returns h unchanged when g is nil.
func (g Guard) Wrap(access Access, h http.Handler) http.Handler {
	if g == nil {
		return h
	}
	return g(access, h)
}

// Lister is the optional listing a Cache may offer besides its Cache
// methods: the keys of one namespace held by the local tier, in ascending
// order (S3's ListObjects). Upstream tiers are not listed: a key only an
// upstream holds is readable but not listed until it is read once.
type Lister interface {
	// List calls fn with every key of namespace starting with prefix and
	// sorting after after ("" = from the first), until fn returns false.
	List(ctx context.Context, namespace, prefix, after string, fn func(key string, meta messages.Meta) bool) error
}
