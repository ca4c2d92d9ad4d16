package bazel

import (
	"context"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/bazelbuild/remote-apis/build/bazel/semver"
)

// capabilitiesServer answers Bazel's first call. Bazel refuses to use a cache
// that does not list SHA-256 or whose API range misses its own version, and
// uploads action results only when update_enabled is set.
type capabilitiesServer struct {
	repb.UnimplementedCapabilitiesServer
	srv *Server
}

// API versions served: 2.0 is what Bazel 4 speaks; 2.1-2.3 add only fields a
// cache-only server may ignore (compressors, output paths, node properties).
var (
	lowAPIVersion  = &semver.SemVer{Major: 2, Minor: 0}
	highAPIVersion = &semver.SemVer{Major: 2, Minor: 3}
)

func (c *capabilitiesServer) GetCapabilities(_ context.Context, req *repb.GetCapabilitiesRequest) (*repb.ServerCapabilities, error) {
	defer c.srv.observe("capabilities", time.Now())
	if err := checkInstance(req.GetInstanceName()); err != nil {
		return nil, err
	}
	zstdOnly := []repb.Compressor_Value{repb.Compressor_ZSTD}
	return &repb.ServerCapabilities{
		CacheCapabilities: &repb.CacheCapabilities{
			DigestFunctions:               []repb.DigestFunction_Value{repb.DigestFunction_SHA256},
			ActionCacheUpdateCapabilities: &repb.ActionCacheUpdateCapabilities{UpdateEnabled: true},
			MaxBatchTotalSizeBytes:        c.srv.maxBatch,
			// Symlinks are stored as data in Directory protos; the cache never
			// follows them, so absolute targets are harmless here.
			SymlinkAbsolutePathStrategy:     repb.SymlinkAbsolutePathStrategy_ALLOWED,
			SupportedCompressors:            zstdOnly,
			SupportedBatchUpdateCompressors: zstdOnly,
		},
		DeprecatedApiVersion: lowAPIVersion,
		LowApiVersion:        lowAPIVersion,
		HighApiVersion:       highAPIVersion,
	}, nil
}
