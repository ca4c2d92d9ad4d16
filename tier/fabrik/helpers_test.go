package fabrik

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/adapters/fabrikgrpc"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
)

// regional is a real Fabrik server on loopback backed by a real cache.
type regional struct {
	addr  string
	cache adapters.Cache
	srv   *grpc.Server
}

func startRegional(t testing.TB, cache adapters.Cache, serverOpts ...grpc.ServerOption) *regional {
	t.Helper()
	if cache == nil {
		cache = cachetest.New(t)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := fabrikgrpc.NewServer(cache, fabrikgrpc.Options{}, serverOpts...)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return &regional{addr: lis.Addr().String(), cache: cache, srv: srv}
}

func newTier(t testing.TB, target string, opts Options) *Tier {
	t.Helper()
	tr, err := New("regional-test", target, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// content is a reproducible pseudo-random stream: large artifacts are
// generated twice (once to hash, once to send) instead of held in memory.
func content(seed uint64, size int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}), size)
}

func hashOf(t testing.TB, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// putContent stores content(seed, size) under ref through the tier.
func putContent(t testing.TB, tr *Tier, ref messages.Ref, seed uint64, size int64, attrs map[string]string) messages.Meta {
	t.Helper()
	meta := messages.Meta{Hash: hashOf(t, content(seed, size)), Size: size, BuildSystem: "test", Attrs: attrs}
	if ref.Namespace == messages.CAS && ref.Key == "" {
		ref.Key = meta.Hash
	}
	if err := tr.Put(context.Background(), ref, meta, content(seed, size)); err != nil {
		t.Fatalf("put %s: %v", ref, err)
	}
	return meta
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
