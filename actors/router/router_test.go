package router_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/local"
	"github.com/tuist/fabrik-node/actors/remote"
	"github.com/tuist/fabrik-node/actors/router"
	"github.com/tuist/fabrik-node/actors/uploadpool"
	"github.com/tuist/fabrik-node/internal/tiertest"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
	"github.com/tuist/fabrik-node/tier"
)

// up describes one upstream of the router under test.
type up struct {
	readOnly, noWriteThrough, permanent bool
	// writeOnly: a replica, never read (router.Tier.WriteOnly).
	writeOnly bool
	// timeout is the router's wait for this tier (default 2s).
	timeout time.Duration
}

// env is a router over a real store and local tier actor, with fake
// upstreams hosted by the real remote actor and a real upload pool.
type env struct {
	store *store.Store
	cache *router.Cache
	ups   []*tiertest.Fake
	log   *tiertest.Log
}

var quiet = slog.New(slog.DiscardHandler)

func newEnv(t *testing.T, specs ...up) *env {
	t.Helper()
	st, err := store.Open(store.Options{Dir: filepath.Join(t.TempDir(), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	sys := actors.NewSystem()
	var refs []actors.Ref
	e := &env{store: st, log: &tiertest.Log{}}
	lt, err := sys.Spawn("local", local.New(st, 0, 0, quiet))
	if err != nil {
		t.Fatal(err)
	}
	var tiers []router.Tier
	var targets []uploadpool.Target
	for i, s := range specs {
		f := tiertest.New("upstream-"+string(rune('0'+i)), e.log)
		e.ups = append(e.ups, f)
		timeout := s.timeout
		if timeout == 0 {
			timeout = 2 * time.Second
		}
		ref, err := sys.Spawn(f.Name(), remote.New(f, remote.Options{Timeout: 10 * time.Second, Logger: quiet}))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
		rt := router.Tier{Name: f.Name(), Ref: ref, Timeout: timeout,
			ReadOnly: s.readOnly, WriteThrough: !s.noWriteThrough, Permanent: s.permanent, WriteOnly: s.writeOnly}
		tiers = append(tiers, rt)
		if !rt.ReadOnly && rt.WriteThrough {
			targets = append(targets, uploadpool.Target{Tier: f, Workers: 2, Timeout: time.Second})
		}
	}
	var pool actors.Ref
	if len(targets) > 0 {
		if pool, err = sys.Spawn("uploads", uploadpool.New(uploadpool.Options{Store: st, Targets: targets, BaseBackoff: 10 * time.Millisecond, Logger: quiet})); err != nil {
			t.Fatal(err)
		}
	}
	rt, err := sys.Spawn("router", router.New(router.Options{Local: lt, Stager: st.Stager(), Upstreams: tiers, Uploads: pool, Logger: quiet}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sys.Stop(rt)
		sys.Stop(pool)
		for _, r := range refs {
			sys.Stop(r)
		}
		sys.Stop(lt)
		sys.Shutdown()
		st.Close()
	})
	e.cache = router.NewCache(rt, st)
	return e
}

func ref(k string) messages.Ref { return messages.Ref{Namespace: "gradle", Key: k} }

func body(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func (e *env) put(t *testing.T, r messages.Ref, b []byte) {
	t.Helper()
	st, err := e.cache.Stage("", int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := st.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := e.cache.Put(context.Background(), r, messages.Meta{}, st); err != nil {
		t.Fatal(err)
	}
}

// get reads ref through the cache: the tier that served it and the bytes
// ("" and nil for a miss).
func (e *env) get(t *testing.T, r messages.Ref) (string, []byte) {
	t.Helper()
	res, err := e.cache.Get(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Found {
		return "", nil
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.Tier, b
}

func (e *env) local(r messages.Ref) bool {
	_, err := e.store.Stat(r)
	return err == nil
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// Reads try local, then each upstream in array order, and stop at the first
// hit; the hit is written back, so the next read is local.
func TestReadFallbackOrder(t *testing.T) {
	e := newEnv(t, up{}, up{}, up{})
	b := body(t, 3000)
	e.ups[1].Seed(ref("k"), b)
	e.ups[2].Seed(ref("k"), b)

	served, got := e.get(t, ref("k"))
	if served != "upstream-1" || !bytes.Equal(got, b) {
		t.Fatalf("served by %q (%d bytes), want upstream-1 with the seeded bytes", served, len(got))
	}
	if want := []string{"upstream-0 get gradle/k", "upstream-1 get gradle/k"}; !slices.Equal(e.log.Lines(), want) {
		t.Fatalf("tiers asked %v, want %v (upstream-2 must not be asked after a hit)", e.log.Lines(), want)
	}
	eventually(t, "write-back to the local tier", func() bool { return e.local(ref("k")) })
	if served, got := e.get(t, ref("k")); served != local.Name || !bytes.Equal(got, b) {
		t.Fatalf("second read served by %q, want the local tier", served)
	}
	if served, _ := e.get(t, ref("missing")); served != "" {
		t.Fatalf("a key no tier has was served by %q", served)
	}
}

// A hit from a lower tier is queued for the writable upstreams above it,
// and only those.
func TestWriteBackQueuesUpstreamsAbove(t *testing.T) {
	e := newEnv(t, up{}, up{readOnly: true}, up{}, up{})
	b := body(t, 2000)
	e.ups[2].Seed(ref("k"), b)
	if served, _ := e.get(t, ref("k")); served != "upstream-2" {
		t.Fatalf("served by %q, want upstream-2", served)
	}
	eventually(t, "upload to upstream-0", func() bool { _, ok := e.ups[0].Has(ref("k")); return ok })
	if n := e.ups[1].Count("put") + e.ups[2].Count("put") + e.ups[3].Count("put"); n != 0 {
		t.Fatalf("%d puts to the read-only, serving or lower upstreams, want 0", n)
	}
}

// An upstream body that does not match its declared hash reaches the
// client (it was already streaming) but is never stored locally.
func TestWriteBackVerifiesContent(t *testing.T) {
	e := newEnv(t, up{})
	good, bad := body(t, 4096), body(t, 4096)
	e.ups[0].SeedAs(ref("corrupt"), messages.Meta{Hash: tiertest.Hash(good), Size: int64(len(bad))}, bad)
	e.ups[0].Seed(ref("sound"), good)

	if served, _ := e.get(t, ref("corrupt")); served != "upstream-0" {
		t.Fatalf("corrupt body served by %q", served)
	}
	if served, _ := e.get(t, ref("sound")); served != "upstream-0" {
		t.Fatalf("sound body served by %q", served)
	}
	eventually(t, "write-back of the sound body", func() bool { return e.local(ref("sound")) })
	time.Sleep(50 * time.Millisecond) // both seals ran in the same way; give the corrupt one as long
	if e.local(ref("corrupt")) {
		t.Fatal("a body whose hash does not match was written back")
	}
	if _, objects := e.store.Usage(); objects != 1 {
		t.Fatalf("store holds %d blobs, want 1", objects)
	}
}

// An upstream slower than its timeout, or one that panics, is a miss: the
// read moves on to the next tier in time.
func TestSlowOrPanickingTierIsAMiss(t *testing.T) {
	e := newEnv(t, up{timeout: 150 * time.Millisecond}, up{}, up{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	e.ups[0].OnGet = func(ctx context.Context, _ messages.Ref) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return ctx.Err()
	}
	e.ups[1].OnGet = func(context.Context, messages.Ref) error { panic("tier bug") }
	b := body(t, 100)
	e.ups[2].Seed(ref("k"), b)

	start := time.Now()
	served, got := e.get(t, ref("k"))
	if served != "upstream-2" || !bytes.Equal(got, b) {
		t.Fatalf("served by %q, want upstream-2 past a slow and a panicking tier", served)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("read took %v: the slow tier's 150ms timeout did not apply", took)
	}
	// The panicking tier's actor survives: it keeps answering.
	e.ups[1].OnGet = nil
	e.ups[1].Seed(ref("k2"), b)
	if served, _ := e.get(t, ref("k2")); served != "upstream-1" {
		t.Fatalf("after a panic upstream-1 does not serve (got %q)", served)
	}
}

// A write is answered once stored locally, and fans out to every
// write-through upstream, never to a read-only one or one without
// write-through.
func TestWriteThroughFanOut(t *testing.T) {
	e := newEnv(t, up{}, up{readOnly: true}, up{noWriteThrough: true}, up{})
	b := body(t, 5000)
	e.put(t, ref("k"), b)
	if !e.local(ref("k")) {
		t.Fatal("Put returned before the artifact was stored locally")
	}
	for _, i := range []int{0, 3} {
		eventually(t, e.ups[i].Name()+" receives the write", func() bool {
			got, ok := e.ups[i].Has(ref("k"))
			return ok && bytes.Equal(got, b)
		})
	}
	if n := e.ups[1].Count("put") + e.ups[2].Count("put"); n != 0 {
		t.Fatalf("%d puts to the read-only or non-write-through upstreams", n)
	}
}

// Delete with Upstreams reaches the upstreams that are neither permanent
// nor read-only; a plain Delete stays local.
func TestDeleteSparesPermanentAndReadOnly(t *testing.T) {
	e := newEnv(t, up{}, up{permanent: true}, up{readOnly: true})
	b := body(t, 10)
	for _, k := range []string{"a", "b"} {
		e.put(t, ref(k), b)
		for _, f := range e.ups {
			f.Seed(ref(k), b)
		}
	}
	if err := e.cache.Delete(context.Background(), ref("a")); err != nil {
		t.Fatal(err)
	}
	if e.local(ref("a")) || e.ups[0].Count("delete") != 0 {
		t.Fatalf("plain delete: local still has it %v, upstream deletes %d", e.local(ref("a")), e.ups[0].Count("delete"))
	}
	found, err := e.cache.DeleteEverywhere(context.Background(), ref("b"))
	if err != nil || !found {
		t.Fatalf("DeleteEverywhere: found %v, %v", found, err)
	}
	if _, ok := e.ups[0].Has(ref("b")); ok || e.local(ref("b")) {
		t.Fatal("DeleteEverywhere left the artifact locally or on the non-permanent upstream")
	}
	for _, i := range []int{1, 2} {
		if _, ok := e.ups[i].Has(ref("b")); !ok || e.ups[i].Count("delete") != 0 {
			t.Fatalf("%s (permanent or read-only) was deleted from", e.ups[i].Name())
		}
	}
	// An upstream that fails the delete makes the delete fail, naming it.
	e.put(t, ref("c"), b)
	e.ups[0].OnDelete = func(context.Context, messages.Ref) error { return errors.New("regional down") }
	if _, err := e.cache.DeleteEverywhere(context.Background(), ref("c")); err == nil || !strings.Contains(err.Error(), "upstream-0") {
		t.Fatalf("delete with a failing upstream: %v, want an error naming upstream-0", err)
	}
}

// Stat falls back like Get but writes nothing back.
func TestStatFallsBackWithoutWriteBack(t *testing.T) {
	e := newEnv(t, up{}, up{})
	e.ups[1].Seed(ref("k"), body(t, 10))
	res, err := e.cache.Stat(context.Background(), ref("k"))
	if err != nil || !res.Found || res.Tier != "upstream-1" {
		t.Fatalf("Stat = %+v, %v; want found on upstream-1", res, err)
	}
	if _, err := e.store.Stat(ref("k")); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("a Stat wrote back: %v", err)
	}
}

// A write-through artifact is pinned from its commit until it is uploaded
// (the commit's own pin, then the upload pool's), and no pin outlives the
// upload: afterwards eviction may take it like any other blob.
func TestWriteThroughPinsAreReleased(t *testing.T) {
	e := newEnv(t, up{})
	b := body(t, 5000)
	e.put(t, ref("k"), b)
	eventually(t, "the upstream receives the write", func() bool {
		_, ok := e.ups[0].Has(ref("k"))
		return ok
	})
	eventually(t, "the uploaded blob becomes evictable", func() bool {
		if _, _, err := e.store.EvictTo(0, ""); err != nil {
			t.Fatal(err)
		}
		return !e.local(ref("k"))
	})
}
