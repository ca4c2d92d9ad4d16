package adapters

import (
	"context"

	"github.com/tuist/fabrik-node/messages"
)

// TierStat is what a Cache may offer for keys that change after they are
// written (OCI tags, which every build re-pushes): the local tier's view
// and the upstreams' view of a key, separately. A read through the router
// serves the local copy first, and an edge that once read a tag through its
// upstream would keep serving that copy after another edge moved the tag.
// Adapters type-assert their Cache to it.
type TierStat interface {
	StatLocal(ctx context.Context, ref messages.Ref) (*messages.StatResult, error)
	StatUpstream(ctx context.Context, ref messages.Ref) (*messages.StatResult, error)
}

// BatchStat is what a Cache may offer for existence checks of many refs at
// once (Bazel's FindMissingBlobs): one call instead of one per ref.
// sizes[i] is the size of what refs[i] names, or -1 when no tier has it;
// like Stat, a tier failure is a miss. Existence and size are all such a
// check needs, and a slice of sizes costs 8 bytes a ref where full results
// would cost well over a hundred. Adapters type-assert their Cache to it
// and fall back to Stat per ref.
type BatchStat interface {
	StatMany(ctx context.Context, refs []messages.Ref) (sizes []int64, err error)
}
