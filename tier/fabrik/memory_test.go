package fabrik

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"runtime"
	"testing"

	"github.com/tuist/fabrik-node/messages"
)

// TestLargeGetHasBoundedMemory streams a 64 MiB artifact from a real server
// to a real client in this process. Halfway through it forces a GC and checks
// the live heap: whatever either side buffers is live then, so a client or
// server that accumulated the artifact would show tens of MiB. It also checks
// that the heap the process reserves from the OS hardly grows. (Peak
// HeapInuse is not a useful bound: the store's Badger memtable keeps ~25 MiB
// live, and GC pacing lets garbage reach the size of the live heap.)
func TestLargeGetHasBoundedMemory(t *testing.T) {
	if testing.Short() {
		// -short is a developer's quick loop; make test never sets it.
		t.Skip("moves 128 MiB")
	}
	reg := startRegional(t, nil)
	tr := newTier(t, "grpc://"+reg.addr, Options{})
	ref := messages.Ref{Namespace: messages.CAS}
	size := int64(64 << 20)
	want := putContent(t, tr, ref, 64, size, nil)
	ref.Key = want.Hash

	runtime.GC()
	var before, mid, after runtime.MemStats
	runtime.ReadMemStats(&before)

	_, body, err := tr.Get(ctxT(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, body, size/2); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&mid)
	if _, err := io.Copy(h, body); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if got := hex.EncodeToString(h.Sum(nil)); got != want.Hash {
		t.Fatalf("content %s, want %s", got, want.Hash)
	}

	live := int64(mid.HeapAlloc) - int64(before.HeapAlloc)
	reserved := int64(after.HeapSys) - int64(before.HeapSys)
	t.Logf("64 MiB get: live heap at halfway %+.1f MiB, reserved heap %+.1f MiB, %.1f MiB allocated in %d allocations (both ends)",
		mib(live), mib(reserved), mib(int64(after.TotalAlloc-before.TotalAlloc)), after.Mallocs-before.Mallocs)
	if live > 8<<20 || reserved > 16<<20 {
		t.Fatalf("memory grows with the artifact: live %+.1f MiB, reserved %+.1f MiB", mib(live), mib(reserved))
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
