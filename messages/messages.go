// Package messages is the vocabulary the actors of a node speak: plain structs
// with no behaviour. Requests name an artifact by Ref; results carry metadata
// and, for reads, a handle to the bytes. Bytes never travel inside a message:
// a large artifact in a mailbox would be copied and held in memory.
//
// Reply convention, for every request between actors (here and in the
// actor packages' own messages, such as local.Evict): a request X is
// answered with exactly one *XResult (a pointer, never nil), and a failure
// travels in its Err field, never as a bare error, bool or other type. A
// result may say more (Found, Dropped), but Err is always there. Callers
// read replies with actors.AskFor[*XResult] (or actors.Reply inside an
// actor), which checks the type once. Each request's doc names its reply.
// Messages an actor sends itself (timers, finished work) and Tell-only
// notifications have no reply.
//
// Writes are not in this package: local.Put carries the store's sealed
// staging file (*store.Staged), a type this package cannot name (store
// imports messages), and a message field typed as an interface would need
// a type assertion to be committed.
package messages

import (
	"io"
	"time"
)

// CAS is the namespace of content-addressed blobs: the key is the SHA-256 of
// the content itself, so no key index entry is needed (Bazel CAS, Fabrik hashes).
const CAS = "cas"

// Ref names an artifact. Build tools address artifacts by keys that are not
// content hashes (Gradle cache keys, Nx and Turborepo task hashes, Bazel action
// digests); those live in a namespace and resolve through the key index to a
// blob. In the CAS namespace the key is the blob's own hash.
type Ref struct {
	// Namespace separates tools and tenants: "gradle", "nx", "turbo/<team>",
	// "bazel-ac/<instance>", or CAS.
	Namespace string
	// Key is the tool's key within the namespace (lower-case hex for CAS).
	Key string
}

// IsCAS reports whether the ref addresses a blob by its content hash.
func (r Ref) IsCAS() bool { return r.Namespace == CAS }

// String renders "namespace/key", the form used in logs and storage keys.
func (r Ref) String() string { return r.Namespace + "/" + r.Key }

// Meta describes an artifact: the blob it resolves to and what the cache
// knows about it.
type Meta struct {
	// Hash is the lower-case hex SHA-256 of the content.
	Hash string
	// Size is the content length in bytes.
	Size int64
	// BuildSystem labels the artifact for stats ("gradle", "bazel", ...).
	BuildSystem string
	// Attrs are tool-specific values stored with the key and returned on
	// reads (Turborepo's x-artifact-duration and x-artifact-tag, for example).
	Attrs map[string]string
	// CreatedAt, LastAccess and AccessCount are kept by the local tier.
	CreatedAt   time.Time
	LastAccess  time.Time
	AccessCount uint64
}

// Get asks for an artifact. Reply: *GetResult.
type Get struct {
	Ref Ref
	// LocalOnly limits the read to the local tier: what a P2P peer may
	// reach (it must never cause an upstream read on this machine).
	LocalOnly bool
	// LocalMissed says the sender already found no local entry for Ref
	// (router.Cache looks itself first): the router starts with the peers
	// and upstreams instead of asking the local tier again.
	LocalMissed bool
}

// GetResult answers Get. When Found, the bytes are either Body (a stream the
// receiver must close) or, for a local hit, located by Meta and Path (the
// blob's file; "" for a blob stored inline in the index), which the
// receiver opens itself with store.OpenBody: open(2) then runs in the
// receiver's goroutine, not in the local tier's mailbox (router.Cache does
// this for adapters).
type GetResult struct {
	Found bool
	Meta  Meta
	Body  io.ReadCloser
	Path  string
	// Tier names the tier that served the hit ("local", an upstream's name).
	Tier string
	// Err is a tier failure (not a miss). The router counts it and moves on
	// to the next tier; clients only ever see a miss.
	Err error
}

// Stat asks whether an artifact exists without opening it. Reply: *StatResult.
type Stat struct {
	Ref Ref
	// LocalOnly limits the check to the local tier (cheap existence checks
	// such as Bazel's FindMissingBlobs on a hot path may want this).
	LocalOnly bool
	// UpstreamOnly skips the local tier: the upstreams' view of a mutable
	// key (an OCI tag another edge may have moved).
	UpstreamOnly bool
}

// StatResult answers Stat.
type StatResult struct {
	Found bool
	Meta  Meta
	Tier  string
	Err   error
}

// Upstreams asks the router whether a read can reach any tier past the
// local one (an upstream that is not a write-only replica). A batch
// existence check (router.Cache.StatMany) answers from the local store in
// its caller's goroutine and asks this once, to know whether its misses
// are worth asking further: the router's tiers are fixed for its life.
// Reply: *UpstreamsResult.
type Upstreams struct{}

// UpstreamsResult answers Upstreams.
type UpstreamsResult struct {
	// Readable: at least one upstream serves reads.
	Readable bool
	Err      error
}

// Delete removes an artifact from the local tier and, when Upstreams is set
// (the admin API's delete and clear), from every upstream that is neither
// permanent nor read-only. Reply: *DeleteResult.
type Delete struct {
	Ref       Ref
	Upstreams bool
}

// DeleteResult answers Delete. Found says whether the local tier had the
// artifact; Err is the local failure, else the first upstream's.
type DeleteResult struct {
	Found bool
	Err   error
}

// Upload asks the upload pool to copy a locally stored artifact to its
// target upstreams. Reply: *UploadResult once the jobs are persisted, so an
// acknowledged write-through survives a restart.
type Upload struct {
	Ref     Ref
	Meta    Meta
	Targets []string
}

// UploadResult answers Upload.
type UploadResult struct {
	// Dropped lists targets whose queue was full: the overflow policy drops
	// the new job and counts it.
	Dropped []string
	Err     error
}
