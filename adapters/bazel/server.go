// Package bazel is the Bazel remote cache adapter: the REAPI v2 Capabilities,
// ContentAddressableStorage and ActionCache services, google.bytestream's
// ByteStream for large blobs, and the gRPC health service, all served over
// adapters.Cache so that reads and writes go through the router and its
// upstream chain like every other adapter.
//
// Keys and instance names. The REAPI says the instance name namespaces keys.
// We apply that to the Action Cache only: an action result lives under
// namespace "bazel-ac" (instance "") or "bazel-ac/<instance>", key = the
// action digest's hash, so two instances never see each other's results.
// CAS blobs are shared across instances under messages.CAS: a blob's key is
// the SHA-256 of its content and every write is verified, so a blob written
// through one instance is exactly the blob any other instance would store, and
// sharing it only saves disk. An instance cannot read another's action results,
// and without those it has no way to learn which blobs the other produced.
package bazel

import (
	"log/slog"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/metrics"
)

// buildSystem labels artifacts and metrics written by this adapter.
const buildSystem = "bazel"

// DefaultMaxBatchBytes keeps a full batch, plus the protobuf framing around
// it, under gRPC's default 4 MiB receive limit.
const DefaultMaxBatchBytes = 4<<20 - 64<<10

// Options configure the adapter.
type Options struct {
	// MaxBatchBytes is the largest total blob size accepted or returned by one
	// BatchUpdateBlobs/BatchReadBlobs call, and advertised to clients as
	// max_batch_total_size_bytes. It must stay below the gRPC server's
	// MaxRecvMsgSize. 0 means DefaultMaxBatchBytes.
	MaxBatchBytes int64
	// MaxArtifactSize refuses blobs (and action results) larger than this on
	// every write path: BatchUpdateBlobs, ByteStream.Write (plain and
	// compressed, where it is checked on the declared size before any
	// byte is decompressed) and UpdateActionResult. 0 means no limit.
	MaxArtifactSize int64
	// Metrics, when set, receives hit/miss counts, bandwidth and request
	// durations labelled build_system="bazel".
	Metrics *metrics.Set
	// Logger receives one line per failed request. nil means slog.Default().
	Logger *slog.Logger
}

// Server holds the state shared by the four services: the cache, the
// in-progress ByteStream uploads and the health status.
type Server struct {
	cache    adapters.Cache
	maxBatch int64
	// maxArtifact is Options.MaxArtifactSize (0 = none).
	maxArtifact int64
	metrics     *metrics.Set
	log         *slog.Logger
	uploads     *uploadTable
	health      *health.Server
}

// Register adds the REAPI cache services, ByteStream and grpc.health.v1 to s.
// Call it before s.Serve; s should be created with ServerOptions. The returned Server's Shutdown marks the services
// NOT_SERVING and removes the staging files of unfinished uploads.
func Register(s *grpc.Server, cache adapters.Cache, opts Options) *Server {
	srv := &Server{
		cache:       cache,
		maxBatch:    opts.MaxBatchBytes,
		maxArtifact: opts.MaxArtifactSize,
		metrics:     opts.Metrics,
		log:         opts.Logger,
		uploads:     newUploadTable(defaultUploadTTL, defaultMaxParkedUploads),
		health:      health.NewServer(),
	}
	if srv.maxBatch <= 0 {
		srv.maxBatch = DefaultMaxBatchBytes
	}
	if srv.log == nil {
		srv.log = slog.Default()
	}
	srv.log = srv.log.With("adapter", buildSystem)

	repb.RegisterCapabilitiesServer(s, &capabilitiesServer{srv: srv})
	repb.RegisterContentAddressableStorageServer(s, &casServer{srv: srv})
	repb.RegisterActionCacheServer(s, &actionCacheServer{srv: srv})
	bytestream.RegisterByteStreamServer(s, &byteStreamServer{srv: srv})
	healthpb.RegisterHealthServer(s, srv.health)
	for _, name := range serviceNames {
		srv.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	return srv
}

// serviceNames are the names a health check may ask about ("" is the server
// as a whole).
var serviceNames = []string{
	"",
	repb.Capabilities_ServiceDesc.ServiceName,
	repb.ContentAddressableStorage_ServiceDesc.ServiceName,
	repb.ActionCache_ServiceDesc.ServiceName,
	"google.bytestream.ByteStream",
}

// Shutdown reports NOT_SERVING to health checks and discards parked uploads.
// Call it before grpc.Server.GracefulStop.
func (s *Server) Shutdown() {
	s.health.Shutdown()
	s.uploads.discardAll()
}

// observe records a request's duration; use as defer s.observe("op", time.Now()).
func (s *Server) observe(op string, start time.Time) {
	if s.metrics != nil {
		s.metrics.ObserveRequest(buildSystem, op, start)
	}
}

func (s *Server) hit() {
	if s.metrics != nil {
		s.metrics.Hit(buildSystem)
	}
}

func (s *Server) miss() {
	if s.metrics != nil {
		s.metrics.Miss(buildSystem)
	}
}

func (s *Server) uploaded(n int64) {
	if s.metrics != nil && n > 0 {
		s.metrics.UploadedBy(buildSystem, n)
	}
}

func (s *Server) downloaded(n int64) {
	if s.metrics != nil && n > 0 {
		s.metrics.DownloadedBy(buildSystem, n)
	}
}

// statusFor maps an internal error to the gRPC status a client should see:
// rejected content is the client's fault, a full disk is RESOURCE_EXHAUSTED
// (Bazel then stops uploading instead of failing the build), anything else
// is INTERNAL and logged.
func (s *Server) statusFor(op string, err error) error {
	if err == nil {
		return nil
	}
	if st, ok := adapters.GRPCStatus(err); ok {
		return st
	}
	s.log.Error("request failed", "op", op, "err", err)
	return status.Error(codes.Internal, err.Error())
}
