package backend

import (
	"context"
	"fmt"
	"io"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
)

// Local is a Backend over a node's adapters.Cache: the CLI's in-process
// node, and the edge's /recipes/v1/ adapter.
type Local struct {
	Cache  adapters.Cache
	Ledger *Ledger
	// Name describes the node for --verbose.
	Name string
}

func ref(space Space, key string) (messages.Ref, error) {
	ns, err := space.Namespace()
	if err != nil {
		return messages.Ref{}, err
	}
	if err := ValidKey(key); err != nil {
		return messages.Ref{}, err
	}
	return messages.Ref{Namespace: ns, Key: key}, nil
}

func (l *Local) Get(ctx context.Context, space Space, key string) (io.ReadCloser, int64, bool, error) {
	r, err := ref(space, key)
	if err != nil {
		return nil, 0, false, err
	}
	res, err := l.Cache.Get(ctx, r)
	if err != nil {
		return nil, 0, false, err
	}
	if !res.Found {
		return nil, 0, false, nil
	}
	return res.Body, res.Meta.Size, true, nil
}

func (l *Local) Has(ctx context.Context, space Space, key string) (int64, bool, error) {
	r, err := ref(space, key)
	if err != nil {
		return 0, false, err
	}
	res, err := l.Cache.Stat(ctx, r)
	if err != nil || !res.Found {
		return 0, false, err
	}
	return res.Meta.Size, true, nil
}

// Put goes through the adapters' one write path (stage, hash, seal,
// commit), like every upload the node receives.
func (l *Local) Put(ctx context.Context, space Space, key string, body io.Reader, size int64) error {
	r, err := ref(space, key)
	if err != nil {
		return err
	}
	res := adapters.Store(ctx, l.Cache, r, messages.Meta{BuildSystem: "recipes"}, adapters.Upload{Body: body, Length: size})
	if res.Outcome != adapters.Stored {
		return fmt.Errorf("store %s: %s: %w", r, res.Outcome, res.Err)
	}
	return nil
}

func (l *Local) Delete(ctx context.Context, space Space, key string) error {
	r, err := ref(space, key)
	if err != nil {
		return err
	}
	return l.Cache.Delete(ctx, r)
}

func (l *Local) Record(_ context.Context, ev Event) error { return l.Ledger.Append(ev) }

func (l *Local) Events(context.Context) ([]Event, error) { return l.Ledger.Events() }

func (l *Local) Describe() string { return l.Name }
