package bazel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/metrics"
)

// env is a real gRPC server on 127.0.0.1 with the adapter registered over a
// real on-disk cache, and the generated clients connected to it.
type env struct {
	cache   adapters.Cache
	srv     *Server
	metrics *metrics.Set
	caps    repb.CapabilitiesClient
	cas     repb.ContentAddressableStorageClient
	ac      repb.ActionCacheClient
	bs      bytestream.ByteStreamClient
	health  healthpb.HealthClient
}

func newEnv(t testing.TB, opts Options) *env {
	t.Helper()
	return newEnvWith(t, cachetest.New(t), opts)
}

func newEnvWith(t testing.TB, cache adapters.Cache, opts Options) *env {
	t.Helper()
	e := &env{cache: cache, metrics: metrics.New(nil, nil)}
	if opts.Metrics == nil {
		opts.Metrics = e.metrics
	}
	gs := grpc.NewServer(ServerOptions()...)
	e.srv = Register(gs, e.cache, opts)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		e.srv.Shutdown()
		gs.Stop()
	})
	e.caps = repb.NewCapabilitiesClient(conn)
	e.cas = repb.NewContentAddressableStorageClient(conn)
	e.ac = repb.NewActionCacheClient(conn)
	e.bs = bytestream.NewByteStreamClient(conn)
	e.health = healthpb.NewHealthClient(conn)
	return e
}

func digestOf(b []byte) *repb.Digest {
	sum := sha256.Sum256(b)
	return &repb.Digest{Hash: hex.EncodeToString(sum[:]), SizeBytes: int64(len(b))}
}

// pattern returns n deterministic, poorly compressible bytes seeded by seed.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// put uploads blobs with BatchUpdateBlobs and fails the test on any error.
func (e *env) put(t testing.TB, blobs ...[]byte) []*repb.Digest {
	t.Helper()
	req := &repb.BatchUpdateBlobsRequest{}
	var ds []*repb.Digest
	for _, b := range blobs {
		d := digestOf(b)
		ds = append(ds, d)
		req.Requests = append(req.Requests, &repb.BatchUpdateBlobsRequest_Request{Digest: d, Data: b})
	}
	resp, err := e.cas.BatchUpdateBlobs(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Responses {
		if r.Status.GetCode() != 0 {
			t.Fatalf("upload %s: %v", r.Digest.Hash, r.Status)
		}
	}
	return ds
}

// stored reports whether the cache holds the CAS blob, asking the cache
// directly rather than the adapter under test.
func (e *env) stored(t testing.TB, d *repb.Digest) bool {
	t.Helper()
	res, err := e.cache.Stat(context.Background(), messages.Ref{Namespace: messages.CAS, Key: d.Hash})
	if err != nil {
		t.Fatal(err)
	}
	return res.Found
}

// read fetches a blob with ByteStream.Read.
func (e *env) read(ctx context.Context, name string, off, limit int64) ([]byte, error) {
	stream, err := e.bs.Read(ctx, &bytestream.ReadRequest{ResourceName: name, ReadOffset: off, ReadLimit: limit})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return buf.Bytes(), nil
		}
		if err != nil {
			return buf.Bytes(), err
		}
		buf.Write(resp.Data)
	}
}

func wantCode(t testing.TB, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got %v (%v), want %v", got, err, want)
	}
	if want != codes.OK && status.Convert(err).Message() == "" {
		t.Fatalf("%v without a message", want)
	}
}

func TestCapabilities(t *testing.T) {
	e := newEnv(t, Options{MaxBatchBytes: 1 << 20})
	caps, err := e.caps.GetCapabilities(context.Background(), &repb.GetCapabilitiesRequest{InstanceName: "ci/linux"})
	if err != nil {
		t.Fatal(err)
	}
	cc := caps.GetCacheCapabilities()
	if len(cc.DigestFunctions) != 1 || cc.DigestFunctions[0] != repb.DigestFunction_SHA256 {
		t.Errorf("digest functions %v", cc.DigestFunctions)
	}
	if !cc.GetActionCacheUpdateCapabilities().GetUpdateEnabled() {
		t.Error("action cache updates not enabled")
	}
	if cc.MaxBatchTotalSizeBytes != 1<<20 {
		t.Errorf("max batch %d", cc.MaxBatchTotalSizeBytes)
	}
	if cc.SymlinkAbsolutePathStrategy != repb.SymlinkAbsolutePathStrategy_ALLOWED {
		t.Errorf("symlink strategy %v", cc.SymlinkAbsolutePathStrategy)
	}
	for _, cs := range [][]repb.Compressor_Value{cc.SupportedCompressors, cc.SupportedBatchUpdateCompressors} {
		if len(cs) != 1 || cs[0] != repb.Compressor_ZSTD {
			t.Errorf("compressors %v", cs)
		}
	}
	if caps.LowApiVersion.GetMajor() != 2 || caps.LowApiVersion.GetMinor() != 0 || caps.HighApiVersion.GetMinor() != 3 {
		t.Errorf("api versions %v..%v", caps.LowApiVersion, caps.HighApiVersion)
	}
	if caps.ExecutionCapabilities != nil {
		t.Error("a cache-only server must not announce execution")
	}

	_, err = e.caps.GetCapabilities(context.Background(), &repb.GetCapabilitiesRequest{InstanceName: "a/blobs/b"})
	wantCode(t, err, codes.InvalidArgument)
}

func TestHealth(t *testing.T) {
	e := newEnv(t, Options{})
	for _, svc := range serviceNames {
		resp, err := e.health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("%q: %v", svc, err)
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%q: %v", svc, resp.Status)
		}
	}
	e.srv.Shutdown()
	resp, err := e.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("after Shutdown: %v", resp.Status)
	}
}
