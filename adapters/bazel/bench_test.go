package bazel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/internal/cachetest"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/genproto/googleapis/bytestream"
)

// The benchmarks run client and server in one process over 127.0.0.1, so
// ns/op and allocs/op include the client's side of each call. Record results
// with: go test ./adapters/bazel -run '^$' -bench . -benchtime 20x

const bigBlob = 64 << 20

// perRef hides the cache's adapters.BatchStat, so FindMissingBlobs takes
// the path of one Stat per digest: the benchmarks compare both in one run.
type perRef struct{ adapters.Cache }

// BenchmarkFindMissingBlobs: half the digests present, 8 concurrent callers
// (as the load scenario), batched (one StatMany) and per digest (one Stat
// each, 16 at a time).
func BenchmarkFindMissingBlobs(b *testing.B) {
	for _, n := range []int{100, 1000} {
		for _, path := range []string{"batched", "per-digest"} {
			b.Run(fmt.Sprintf("%d/%s", n, path), func(b *testing.B) {
				cache := cachetest.New(b)
				if path == "per-digest" {
					cache = perRef{cache}
				}
				e := newEnvWith(b, cache, Options{})
				ds := make([]*repb.Digest, n)
				var present [][]byte
				for i := range ds {
					blob := []byte(fmt.Sprintf("blob %d", i))
					ds[i] = digestOf(blob)
					if i%2 == 0 {
						present = append(present, blob)
					}
				}
				e.put(b, present...)
				req := &repb.FindMissingBlobsRequest{BlobDigests: ds}
				b.ReportAllocs()
				b.SetParallelism(4) // 8 callers on 2 cores
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						resp, err := e.cas.FindMissingBlobs(context.Background(), req)
						if err != nil || len(resp.MissingBlobDigests) != n/2 {
							b.Errorf("%d missing, %v", len(resp.GetMissingBlobDigests()), err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
			})
		}
	}
}

func BenchmarkBatchReadBlobs100x4KiB(b *testing.B) {
	e := newEnv(b, Options{})
	blobs := make([][]byte, 100)
	for i := range blobs {
		blobs[i] = pattern(4<<10, byte(i))
	}
	req := &repb.BatchReadBlobsRequest{Digests: e.put(b, blobs...)}
	b.SetBytes(100 * 4 << 10)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := e.cas.BatchReadBlobs(context.Background(), req)
		if err != nil || len(resp.Responses) != 100 || resp.Responses[99].Status.GetCode() != 0 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

func BenchmarkByteStreamWrite64MiB(b *testing.B) {
	e := newEnv(b, Options{})
	data := pattern(bigBlob, 11)
	d := digestOf(data)
	b.SetBytes(bigBlob)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		resp, err := e.write(context.Background(), uploadName(d, fmt.Sprint(i)), data, 0, 1<<20, true)
		if err != nil || resp.CommittedSize != bigBlob {
			b.Fatal(err)
		}
		b.StopTimer()
		// Remove it so the next write is not answered as already present.
		if err := e.cache.Delete(context.Background(), digest{hash: d.Hash, size: d.SizeBytes}.casRef()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func BenchmarkByteStreamRead64MiB(b *testing.B) {
	benchRead(b, "blobs")
}

func BenchmarkByteStreamReadZstd64MiB(b *testing.B) {
	benchRead(b, "compressed-blobs/zstd")
}

func benchRead(b *testing.B, kind string) {
	e := newEnv(b, Options{})
	data := pattern(bigBlob, 12)
	d := digestOf(data)
	if _, err := e.write(context.Background(), uploadName(d, "r"), data, 0, 1<<20, true); err != nil {
		b.Fatal(err)
	}
	data = nil
	name := fmt.Sprintf("%s/%s/%d", kind, d.Hash, d.SizeBytes)
	b.SetBytes(bigBlob)
	b.ReportAllocs()
	for b.Loop() {
		n, err := drain(e.bs, name)
		if err != nil || (kind == "blobs" && n != bigBlob) {
			b.Fatal(n, err)
		}
	}
}

// drain reads a blob and throws the bytes away, returning how many came.
func drain(bs bytestream.ByteStreamClient, name string) (int64, error) {
	stream, err := bs.Read(context.Background(), &bytestream.ReadRequest{ResourceName: name})
	if err != nil {
		return 0, err
	}
	var n int64
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n += int64(len(resp.Data))
	}
}

// TestByteStreamMemoryBounded moves a 64 MiB blob through Write and Read with
// a client that never holds it either, and checks the process heap never
// grows by anything near the blob's size. The GC runs at GOGC=10 meanwhile,
// so the peak measures what is live, not garbage awaiting the next cycle.
func TestByteStreamMemoryBounded(t *testing.T) {
	if testing.Short() {
		// -short is a developer's quick loop; make test never sets it.
		t.Skip("moves 128 MiB through loopback")
	}
	e := newEnv(t, Options{})
	chunk := pattern(1<<20, 13)
	h := sha256.New()
	for range bigBlob / len(chunk) {
		h.Write(chunk)
	}
	d := &repb.Digest{Hash: hex.EncodeToString(h.Sum(nil)), SizeBytes: bigBlob}

	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()

	stream, err := e.bs.Write(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < bigBlob; off += int64(len(chunk)) {
		req := &bytestream.WriteRequest{WriteOffset: off, Data: chunk, FinishWrite: off+int64(len(chunk)) == bigBlob}
		if off == 0 {
			req.ResourceName = uploadName(d, "mem")
		}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"blobs", "compressed-blobs/zstd"} {
		if _, err := drain(e.bs, fmt.Sprintf("%s/%s/%d", kind, d.Hash, d.SizeBytes)); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	growth := int64(peak.Load()) - int64(base.HeapAlloc)
	t.Logf("heap growth during 64 MiB write + 2 reads: %.1f MiB", float64(growth)/(1<<20))
	if growth > 32<<20 {
		t.Errorf("heap grew by %d MiB moving a 64 MiB blob: something holds it whole", growth>>20)
	}
}
