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

// ListN collects up to limit entries of a Lister's listing (namespace keys
// starting with prefix, after after), for protocols that answer in pages
// (OCI tags/list and referrers). Callers that stream (S3 ListObjects) use
// Lister.List directly.
func ListN(ctx context.Context, l Lister, namespace, prefix, after string, limit int) ([]Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []Entry
	err := l.List(ctx, namespace, prefix, after, func(key string, meta messages.Meta) bool {
		out = append(out, Entry{Key: key, Meta: meta})
		return len(out) < limit
	})
	return out, err
}
