// Package s3api is the S3-compatible API of an edge: what sccache's S3
// backend (and awscli, s3cmd, rclone, the AWS SDKs) talk to. Buckets are
// namespaces (s3/<bucket>) of the key index and object bodies are blobs in
// the CAS, so they dedupe with every other tool's artifacts and flow to the
// upstreams like them.
//
// The package is split by job: routing.go (path and virtual-host style,
// dispatch), auth.go (SigV4, verified with aws-sdk-go-v2's own signer),
// chunked.go (aws-chunked bodies), checksums.go (Content-MD5 and
// x-amz-checksum-*), objects.go, buckets.go, list.go, multipart.go, and
// errors.go (S3's XML errors).
package s3api

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/metrics"
)

// BuildSystem labels the S3 API's artifacts in stats.
const BuildSystem = "sccache"

// Options configure the adapter.
type Options struct {
	// MaxArtifactSize refuses larger objects (EntityTooLarge); 0 = no limit.
	MaxArtifactSize int64
	// AccessKeyID and SecretAccessKey, when set, make every SigV4 signature
	// verified against this key pair. Empty: any well-formed signature (and
	// an anonymous request) is accepted.
	AccessKeyID     string
	SecretAccessKey string
	// Authorize, when set (auth on), checks the JWT a client sends as its
	// session token (X-Amz-Security-Token) for the access a request needs,
	// and returns ctx carrying the token's principal: the cache scopes
	// every bucket and key to the principal's tenant from it.
	Authorize func(ctx context.Context, token string, access adapters.Access) (context.Context, error)
	// VirtualHostDomain: a Host of <bucket>.<domain> addresses <bucket>.
	VirtualHostDomain string
	// MultipartExpiry discards uploads neither completed nor aborted after
	// this long (default 24h).
	MultipartExpiry time.Duration
	// MaxClockSkew bounds the difference between a request's signing time
	// and the node's clock (default 15 minutes, as S3).
	MaxClockSkew time.Duration
	// Now is the clock (tests); default time.Now.
	Now     func() time.Time
	Metrics *metrics.Set
	Logger  *slog.Logger
}

// Adapter serves the S3 API over a Cache.
type Adapter struct {
	cache   adapters.Cache
	lister  adapters.Lister // nil when the cache cannot list
	opts    Options
	uploads *uploads
	// buckets remembers the buckets known to exist, so a PUT does not look
	// its bucket's marker up every time.
	buckets sync.Map
}

// New returns an S3 API adapter.
func New(cache adapters.Cache, opts Options) *Adapter {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MultipartExpiry <= 0 {
		opts.MultipartExpiry = 24 * time.Hour
	}
	if opts.MaxClockSkew <= 0 {
		opts.MaxClockSkew = 15 * time.Minute
	}
	a := &Adapter{cache: cache, opts: opts, uploads: newUploads()}
	a.lister, _ = cache.(adapters.Lister)
	return a
}

// Routes mounts the API at the root of its listener: S3 addresses buckets
// at the root of a host.
func (a *Adapter) Routes(mux *http.ServeMux) {
	mux.Handle("/", a)
}

// Close discards the multipart uploads in progress (their parts are staging
// files that nothing else would remove before the next start).
func (a *Adapter) Close() { a.uploads.discardAll() }
