// Package fabrikgrpc serves the Fabrik protocol (proto/fabrik/v1) over the
// node's adapters.Cache: it is how a regional node answers its edges. It knows
// no build tool; it moves bytes between gRPC streams and the cache, verifying
// every Put before anything is stored.
package fabrikgrpc

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/metrics"
	fabrikv1 "github.com/tuist/fabrik-node/proto/fabrik/v1"
	"github.com/tuist/fabrik-node/tenant"
)

// StatsProvider is implemented by a Cache that can count what it holds.
// GetStats answers zeros for a Cache that does not implement it, so a node
// without stats still serves the rest of the protocol.
type StatsProvider interface {
	// CacheStats reports the artifacts and content bytes held locally.
	CacheStats(ctx context.Context) (objects, bytes int64, err error)
}

// Options tunes the service.
type Options struct {
	// Logger receives failures the client cannot explain to anyone (storage
	// errors); nil means slog.Default().
	Logger *slog.Logger
	// MaxArtifactSize refuses Puts declaring more bytes (0 = no limit), before
	// any byte is staged.
	MaxArtifactSize int64
	// Stats overrides the StatsProvider found on the cache.
	Stats StatsProvider
	// Metrics counts hits, misses and bytes served (may be nil).
	Metrics *metrics.Set
}

// Register adds the FabrikCache service to s. Authentication is not this
// package's job: the caller builds s with the auth package's interceptors
// (grpc.ChainUnaryInterceptor / ChainStreamInterceptor) and any other
// grpc.ServerOption it needs.
func Register(s *grpc.Server, cache adapters.Cache, opts Options) {
	fabrikv1.RegisterFabrikCacheServer(s, newService(cache, opts))
}

// NewServer builds a grpc.Server serving only the Fabrik protocol, with the
// caller's options (interceptors, credentials, limits) applied. Its codec is
// fabrikv1.Codec: chunks are copied once, not three times.
func NewServer(cache adapters.Cache, opts Options, serverOpts ...grpc.ServerOption) *grpc.Server {
	s := grpc.NewServer(append([]grpc.ServerOption{grpc.ForceServerCodecV2(fabrikv1.Codec)}, serverOpts...)...)
	Register(s, cache, opts)
	return s
}

// service implements fabrikv1.FabrikCacheServer. It holds no per-request
// state: every RPC is independent, so any number of edges can share it.
type service struct {
	fabrikv1.UnimplementedFabrikCacheServer
	cache adapters.Cache
	stats StatsProvider
	log   *slog.Logger
	opts  Options
}

func newService(cache adapters.Cache, opts Options) *service {
	s := &service{cache: cache, stats: opts.Stats, log: opts.Logger, opts: opts}
	if s.stats == nil {
		s.stats, _ = cache.(StatsProvider)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

func (s *service) Exists(ctx context.Context, req *fabrikv1.ExistsRequest) (*fabrikv1.ExistsResponse, error) {
	ref, err := refFromProto(req.GetRef())
	if err != nil {
		return nil, err
	}
	if ctx, err = authorize(ctx, ref); err != nil {
		return nil, err
	}
	res, err := s.cache.Stat(ctx, ref)
	if err != nil {
		return nil, s.status(ctx, "exists", ref.String(), err)
	}
	if !res.Found {
		return &fabrikv1.ExistsResponse{}, nil
	}
	return &fabrikv1.ExistsResponse{Found: true, Meta: metaToProto(res.Meta)}, nil
}

func (s *service) Delete(ctx context.Context, req *fabrikv1.DeleteRequest) (*fabrikv1.DeleteResponse, error) {
	ref, err := refFromProto(req.GetRef())
	if err != nil {
		return nil, err
	}
	if ctx, err = authorize(ctx, ref); err != nil {
		return nil, err
	}
	if err := s.cache.Delete(ctx, ref); err != nil {
		return nil, s.status(ctx, "delete", ref.String(), err)
	}
	return &fabrikv1.DeleteResponse{}, nil
}

func (s *service) GetStats(ctx context.Context, _ *fabrikv1.GetStatsRequest) (*fabrikv1.GetStatsResponse, error) {
	if s.stats == nil {
		return &fabrikv1.GetStatsResponse{}, nil
	}
	objects, bytes, err := s.stats.CacheStats(ctx)
	if err != nil {
		return nil, s.status(ctx, "stats", "", err)
	}
	return &fabrikv1.GetStatsResponse{TotalObjects: objects, TotalBytes: bytes}, nil
}

var _ fabrikv1.FabrikCacheServer = (*service)(nil)

// authorize checks that the caller's token may use ref's namespace as sent
// (tenant.Allowed: an edge's machine token only for the tenants it serves),
// and marks the context so the cache does not scope the namespace again.
// With auth off there is no principal and every namespace is allowed.
func authorize(ctx context.Context, ref messages.Ref) (context.Context, error) {
	if p, ok := auth.FromContext(ctx); ok && !tenant.Allowed(p, ref.Namespace) {
		return ctx, status.Errorf(codes.PermissionDenied, "this token may not use namespace %q", ref.Namespace)
	}
	return tenant.Explicit(ctx), nil
}
