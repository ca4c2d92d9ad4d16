package fabrikgrpc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
	fabrikv1 "github.com/tuist/fabrik-node/proto/fabrik/v1"
)

// These tests speak the raw protocol, to send what a well-behaved client
// never would; tier/fabrik tests the client and server together.

func serve(t *testing.T, cache adapters.Cache, opts Options) fabrikv1.FabrikCacheClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(cache, opts)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return fabrikv1.NewFabrikCacheClient(conn)
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func header(ns, key, hash string, size int64) *fabrikv1.PutRequest {
	return &fabrikv1.PutRequest{Payload: &fabrikv1.PutRequest_Header{Header: &fabrikv1.PutHeader{
		Ref: &fabrikv1.Ref{Namespace: ns, Key: key}, Hash: hash, Size: size, BuildSystem: "test"}}}
}

func chunk(b []byte) *fabrikv1.PutRequest {
	return &fabrikv1.PutRequest{Payload: &fabrikv1.PutRequest_Chunk{Chunk: b}}
}

// put sends msgs on one stream and returns the final status.
func put(t *testing.T, c fabrikv1.FabrikCacheClient, msgs ...*fabrikv1.PutRequest) error {
	t.Helper()
	stream, err := c.Put(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			break // the server ended the stream; its status comes from CloseAndRecv
		}
	}
	_, err = stream.CloseAndRecv()
	return err
}

func assertCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("status %v (%v), want %v", got, err, want)
	}
}

func assertAbsent(t *testing.T, cache adapters.Cache, ns, key string) {
	t.Helper()
	res, err := cache.Stat(context.Background(), messages.Ref{Namespace: ns, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if res.Found {
		t.Fatalf("%s/%s was stored", ns, key)
	}
}

func TestPutStoresVerifiedContent(t *testing.T) {
	cache := cachetest.New(t)
	c := serve(t, cache, Options{})
	data := bytes.Repeat([]byte("fabrik"), 100_000)
	if err := put(t, c, header("gradle", "k1", sum(data), int64(len(data))), chunk(data[:300_000]), chunk(data[300_000:])); err != nil {
		t.Fatal(err)
	}
	res, err := cache.Get(context.Background(), messages.Ref{Namespace: "gradle", Key: "k1"})
	if err != nil || !res.Found {
		t.Fatalf("stored artifact not found: %v", err)
	}
	defer res.Body.Close()
	got, _ := io.ReadAll(res.Body)
	if !bytes.Equal(got, data) || res.Meta.BuildSystem != "test" {
		t.Fatalf("stored %d bytes (build system %q), sent %d", len(got), res.Meta.BuildSystem, len(data))
	}
}

func TestPutRejectsBadStreams(t *testing.T) {
	data := []byte("some artifact bytes")
	h, n := sum(data), int64(len(data))
	cases := []struct {
		name string
		msgs []*fabrikv1.PutRequest
		// why is a fragment of the status message, proving which check fired
		// (several bad streams would also fail the final size check).
		why string
	}{
		{"wrong hash", []*fabrikv1.PutRequest{header("gradle", "k", sum([]byte("other")), n), chunk(data)}, "content hash"},
		{"truncated", []*fabrikv1.PutRequest{header("gradle", "k", h, n), chunk(data[:5])}, "received 5 bytes"},
		{"longer than declared", []*fabrikv1.PutRequest{header("gradle", "k", h, n), chunk(data), chunk([]byte("x"))}, "longer than the declared"},
		{"no header", []*fabrikv1.PutRequest{chunk(data)}, "must be a header"},
		{"empty stream", nil, "stream is empty"},
		{"second header", []*fabrikv1.PutRequest{header("gradle", "k", h, n), header("gradle", "k", h, n), chunk(data)}, "second header"},
		{"upper-case hash", []*fabrikv1.PutRequest{header("gradle", "k", "AB"+h[2:], n), chunk(data)}, "lower-case hex"},
		{"negative size", []*fabrikv1.PutRequest{header("gradle", "k", h, -1), chunk(data)}, "negative size"},
		{"empty namespace", []*fabrikv1.PutRequest{header("", "k", h, n), chunk(data)}, "namespace is empty"},
		{"control char in key", []*fabrikv1.PutRequest{header("gradle", "k\n", h, n), chunk(data)}, "control character"},
		{"cas key is not the hash", []*fabrikv1.PutRequest{header(messages.CAS, sum([]byte("x")), h, n), chunk(data)}, "differs from the declared hash"},
		{"oversized chunk", []*fabrikv1.PutRequest{header("gradle", "k", h, 2<<20), chunk(make([]byte, fabrikv1.MaxChunkSize+1))}, "-byte limit"},
		{"over max artifact size", []*fabrikv1.PutRequest{header("gradle", "k", h, 1<<30), chunk(data)}, "artifact limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cache := cachetest.New(t)
			c := serve(t, cache, Options{MaxArtifactSize: 1 << 29})
			err := put(t, c, tc.msgs...)
			assertCode(t, err, codes.InvalidArgument)
			if !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("rejected for %q, want a message containing %q", err, tc.why)
			}
			assertAbsent(t, cache, "gradle", "k")
			assertAbsent(t, cache, messages.CAS, h)
		})
	}
}

func TestPutAbandonedByClientStoresNothing(t *testing.T) {
	cache := cachetest.New(t)
	c := serve(t, cache, Options{})
	data := make([]byte, 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := c.Put(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(header("gradle", "k", sum(data), int64(len(data)))); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(chunk(data[:1000])); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := stream.CloseAndRecv(); err == nil {
		t.Fatal("a cancelled Put succeeded")
	}
	assertAbsent(t, cache, "gradle", "k")
}

func TestMalformedRefs(t *testing.T) {
	c := serve(t, cachetest.New(t), Options{})
	ctx := context.Background()
	for _, ref := range []*fabrikv1.Ref{nil, {Namespace: "gradle"}, {Key: "k"}, {Namespace: messages.CAS, Key: "not-a-hash"}, {Namespace: "n", Key: string(make([]byte, 2000))}} {
		_, err := c.Exists(ctx, &fabrikv1.ExistsRequest{Ref: ref})
		assertCode(t, err, codes.InvalidArgument)
		_, err = c.Delete(ctx, &fabrikv1.DeleteRequest{Ref: ref})
		assertCode(t, err, codes.InvalidArgument)
		stream, err := c.Get(ctx, &fabrikv1.GetRequest{Ref: ref})
		if err == nil {
			_, err = stream.Recv()
		}
		assertCode(t, err, codes.InvalidArgument)
	}
}

func TestGetMissIsNotFound(t *testing.T) {
	c := serve(t, cachetest.New(t), Options{})
	stream, err := c.Get(context.Background(), &fabrikv1.GetRequest{Ref: &fabrikv1.Ref{Namespace: "nx", Key: "absent"}})
	if err == nil {
		_, err = stream.Recv()
	}
	assertCode(t, err, codes.NotFound)
}

// countingCache adds the optional StatsProvider to a real cache, the way the
// node's cache will.
type countingCache struct{ adapters.Cache }

func (countingCache) CacheStats(context.Context) (int64, int64, error) { return 3, 4096, nil }

type failingStats struct{ adapters.Cache }

func (failingStats) CacheStats(context.Context) (int64, int64, error) {
	return 0, 0, errors.New("index unreadable")
}

func TestGetStats(t *testing.T) {
	ctx := context.Background()
	res, err := serve(t, cachetest.New(t), Options{}).GetStats(ctx, &fabrikv1.GetStatsRequest{})
	if err != nil || res.TotalObjects != 0 || res.TotalBytes != 0 {
		t.Fatalf("without a provider: %v %v, want zeros", res, err)
	}
	res, err = serve(t, countingCache{cachetest.New(t)}, Options{}).GetStats(ctx, &fabrikv1.GetStatsRequest{})
	if err != nil || res.TotalObjects != 3 || res.TotalBytes != 4096 {
		t.Fatalf("with a provider: %v %v, want 3 objects, 4096 bytes", res, err)
	}
	_, err = serve(t, failingStats{cachetest.New(t)}, Options{}).GetStats(ctx, &fabrikv1.GetStatsRequest{})
	assertCode(t, err, codes.Internal)
}
