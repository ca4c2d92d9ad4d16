package adapters

import (
	"context"

	"github.com/tuist/fabrik-node/messages"
)

// Entry is one key of a namespace and what it resolves to.
type Entry struct {
	Key  string
	Meta messages.Meta
}

// Lister is what a Cache may offer besides Cache: the keys of a namespace,
// for protocols that enumerate (OCI tags/list and referrers). It lists the
// local tier only. Adapters type-assert their Cache to it; a Cache without
// it lists nothing.
type Lister interface {
	// List returns up to limit entries of namespace whose key starts with
	// prefix and sorts after after ("" = from the start), in byte order of
	// their keys.
	List(ctx context.Context, namespace, prefix, after string, limit int) ([]Entry, error)
}
