package s3

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tuist/fabrik-node/internal/minio"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// writeRandomFile streams size pseudo-random bytes to a file, hashing them
// on the way, without holding them in memory.
func writeRandomFile(t *testing.T, size int64) (string, messages.Meta) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "artifact")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	src := io.LimitReader(rand.NewChaCha8([32]byte{42}), size)
	if _, err := io.Copy(io.MultiWriter(f, h), src); err != nil {
		t.Fatal(err)
	}
	return path, messages.Meta{Hash: hex.EncodeToString(h.Sum(nil)), Size: size}
}

// peakHeap samples HeapInuse until stop is called and returns the peak above
// the level at the start.
func peakHeap() (stop func() uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
				peak.Store(ms.HeapInuse - base)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// A 100 MiB artifact goes up in parts and comes back as a stream; neither
// direction holds more than a part in memory.
func TestLargeArtifactBoundedMemory(t *testing.T) {
	const size = 100 << 20
	const limit = 40 << 20 // a 16 MiB part buffer plus the SDK's working set
	srv := minio.Start(t)
	srv.CreateBucket(t, "cache")
	tr := newTier(t, srv, "cache", "tenant/", 30*time.Second)
	ctx := context.Background()
	path, meta := writeRandomFile(t, size)
	ref := messages.Ref{Namespace: "gradle", Key: "big"}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stop := peakHeap()
	start := time.Now()
	err = tr.Put(ctx, ref, meta, f)
	putTime := time.Since(start)
	putPeak := stop()
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	t.Logf("put 100 MiB: %s, heap peak +%d MiB", putTime.Round(time.Millisecond), putPeak>>20)
	if putPeak > limit {
		t.Fatalf("put held %d MiB of heap, limit %d MiB", putPeak>>20, limit>>20)
	}

	stop = peakHeap()
	start = time.Now()
	got, body, err := tr.Get(ctx, ref)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, body)
	body.Close()
	getPeak := stop()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	t.Logf("get 100 MiB: %s, heap peak +%d MiB", time.Since(start).Round(time.Millisecond), getPeak>>20)
	if n != size || got.Size != size || hex.EncodeToString(h.Sum(nil)) != meta.Hash {
		t.Fatalf("read back %d bytes (meta %d), hash mismatch or short", n, got.Size)
	}
	if getPeak > limit {
		t.Fatalf("get held %d MiB of heap, limit %d MiB", getPeak>>20, limit>>20)
	}

	// A multipart upload whose content does not match the declared hash is
	// aborted: no blob, no entry.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	lie := meta
	lie.Hash = "00" + meta.Hash[2:]
	wrong := messages.Ref{Namespace: "gradle", Key: "lie"}
	if err := tr.Put(ctx, wrong, lie, f); !errors.Is(err, tier.ErrInvalid) {
		t.Fatalf("multipart put with wrong hash: %v, want ErrInvalid", err)
	}
	if _, err := tr.Stat(ctx, wrong); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("stat after rejected multipart put: %v, want ErrNotFound", err)
	}
	if n := countObjects(t, srv, "cache", "tenant/cas/00/"); n != 0 {
		t.Fatalf("%d blobs under the lying hash", n)
	}
	ups, err := srv.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("cache")})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left open, want them aborted", len(ups.Uploads))
	}
}
