package gha_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/internal/ghatest"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
	"github.com/tuist/fabrik-node/tier/gha"
)

func server(t *testing.T) *ghatest.Server {
	t.Helper()
	s, err := ghatest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var (
	mainRW    = ghatest.Scope{Scope: "refs/heads/main", Permission: ghatest.Read | ghatest.Write}
	mainRO    = ghatest.Scope{Scope: "refs/heads/main", Permission: ghatest.Read}
	featureRW = ghatest.Scope{Scope: "refs/heads/feature", Permission: ghatest.Read | ghatest.Write}
)

func newTier(t *testing.T, s *ghatest.Server, api string, scopes ...ghatest.Scope) *gha.Tier {
	t.Helper()
	tr, err := gha.New("gha", gha.Options{Env: gha.Env{API: api, URL: s.URL, Token: s.Token(time.Hour, scopes...)}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func artifact(n int) ([]byte, messages.Meta) {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	sum := sha256.Sum256(b)
	return b, messages.Meta{Hash: hex.EncodeToString(sum[:]), Size: int64(n), BuildSystem: "gradle", CreatedAt: time.Unix(1_700_000_000, 0)}
}

// fileBody is what the upload pool hands a tier: an open blob file.
func fileBody(t *testing.T, b []byte) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func mustGet(t *testing.T, tr *gha.Tier, ref messages.Ref, want []byte, wantMeta messages.Meta) {
	t.Helper()
	ctx := context.Background()
	meta, body, err := tr.Get(ctx, ref)
	if err != nil {
		t.Fatalf("Get %s: %v", ref, err)
	}
	got, err := io.ReadAll(body)
	body.Close()
	if err != nil {
		t.Fatalf("read %s: %v", ref, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get %s: %d bytes, want %d (content differs)", ref, len(got), len(want))
	}
	if meta.Hash != wantMeta.Hash || meta.Size != wantMeta.Size || meta.BuildSystem != wantMeta.BuildSystem {
		t.Fatalf("Get %s meta = %+v, want %+v", ref, meta, wantMeta)
	}
	st, err := tr.Stat(ctx, ref)
	if err != nil || st.Hash != wantMeta.Hash || st.Size != wantMeta.Size {
		t.Fatalf("Stat %s = %+v, %v", ref, st, err)
	}
}

func TestRoundTripBothAPIs(t *testing.T) {
	for _, api := range []string{gha.APIV2, gha.APILegacy} {
		t.Run(api, func(t *testing.T) {
			s := server(t)
			tr := newTier(t, s, api, mainRW)
			ctx := context.Background()
			for _, n := range []int{0, 1, 4096, 9<<20 + 17} {
				b, m := artifact(n)
				for _, ref := range []messages.Ref{{Namespace: messages.CAS, Key: m.Hash}, {Namespace: "gradle", Key: "k" + m.Hash[:8]}} {
					if err := tr.Put(ctx, ref, m, fileBody(t, b)); err != nil {
						t.Fatalf("Put %d bytes as %s: %v", n, ref, err)
					}
					mustGet(t, tr, ref, b, m)
				}
			}
			// A stream that is not a file is spooled, then stored the same.
			b, m := artifact(70_000)
			ref := messages.Ref{Namespace: "nx", Key: "stream"}
			if err := tr.Put(ctx, ref, m, bytes.NewBuffer(b)); err != nil {
				t.Fatal(err)
			}
			mustGet(t, tr, ref, b, m)
		})
	}
}

func TestMissIsNotFound(t *testing.T) {
	s := server(t)
	tr := newTier(t, s, gha.APIV2, mainRW)
	_, _, err := tr.Get(context.Background(), messages.Ref{Namespace: "gradle", Key: "absent"})
	if !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("Get absent: %v, want ErrNotFound", err)
	}
	if _, err := tr.Stat(context.Background(), messages.Ref{Namespace: "gradle", Key: "absent"}); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("Stat absent: %v, want ErrNotFound", err)
	}
}

// Entries are immutable: the second create of a key fails on the service,
// and the tier takes that as already stored.
func TestSecondPutIsAlreadyStored(t *testing.T) {
	s := server(t)
	a := newTier(t, s, gha.APIV2, mainRW)
	b := newTier(t, s, gha.APIV2, mainRW) // another job of the same branch
	data, m := artifact(1000)
	ref := messages.Ref{Namespace: "gradle", Key: "same"}
	if err := a.Put(context.Background(), ref, m, fileBody(t, data)); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(context.Background(), ref, m, fileBody(t, data)); err != nil {
		t.Fatalf("second Put: %v, want nil (already stored)", err)
	}
	if c := s.Counts(); c.CreateConflicts != 1 || c.Finalizes != 1 {
		t.Fatalf("counts %+v, want 1 conflict and 1 finalize", c)
	}
	mustGet(t, b, ref, data, m)
}

// A feature branch reads what main stored; main does not see the feature
// branch's entries; a read-only token (a fork's pull request) never writes.
func TestBranchScopes(t *testing.T) {
	s := server(t)
	ctx := context.Background()
	onMain := newTier(t, s, gha.APIV2, mainRW)
	onFeature := newTier(t, s, gha.APIV2, featureRW, mainRO)
	fromMain, mm := artifact(100)
	fromFeature, fm := artifact(200)
	refMain, refFeature := messages.Ref{Namespace: "gradle", Key: "m"}, messages.Ref{Namespace: "gradle", Key: "f"}
	if err := onMain.Put(ctx, refMain, mm, fileBody(t, fromMain)); err != nil {
		t.Fatal(err)
	}
	if err := onFeature.Put(ctx, refFeature, fm, fileBody(t, fromFeature)); err != nil {
		t.Fatal(err)
	}
	mustGet(t, onFeature, refMain, fromMain, mm)
	mustGet(t, onFeature, refFeature, fromFeature, fm)
	if _, _, err := onMain.Get(ctx, refFeature); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("main read the feature branch's entry: %v", err)
	}
	if got := s.Entries(); len(got["refs/heads/main"]) != 1 || len(got["refs/heads/feature"]) != 1 {
		t.Fatalf("entries by scope %v", got)
	}

	fork := newTier(t, s, gha.APIV2, mainRO)
	if fork.Writable() {
		t.Fatal("read-only token reported writable")
	}
	if err := fork.Put(ctx, messages.Ref{Namespace: "gradle", Key: "x"}, mm, fileBody(t, fromMain)); err == nil {
		t.Fatal("Put with a read-only token succeeded")
	}
	mustGet(t, fork, refMain, fromMain, mm)
}

// GitHub evicts least recently used entries past the repository cap; an
// evicted artifact is a miss.
func TestEvictedEntryIsMiss(t *testing.T) {
	s := server(t)
	s.Cap = 5000
	tr := newTier(t, s, gha.APIV2, mainRW)
	ctx := context.Background()
	var refs []messages.Ref
	for i := range 3 {
		b, m := artifact(2000 + i)
		ref := messages.Ref{Namespace: "gradle", Key: m.Hash[:12]}
		refs = append(refs, ref)
		if err := tr.Put(ctx, ref, m, fileBody(t, b)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := tr.Get(ctx, refs[0]); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("oldest entry after eviction: %v, want ErrNotFound", err)
	}
	if _, err := tr.Stat(ctx, refs[2]); err != nil {
		t.Fatalf("newest entry: %v", err)
	}
}

// A service that is down is an error (the router counts it and serves a
// miss), never a hang past the timeout.
func TestServiceDownIsError(t *testing.T) {
	s := server(t)
	tr := newTier(t, s, gha.APIV2, mainRW)
	s.Close()
	start := time.Now()
	_, _, err := tr.Get(context.Background(), messages.Ref{Namespace: "gradle", Key: "k"})
	if err == nil || errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("Get against a closed server: %v, want a failure", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
}

func TestDetect(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		vars map[string]string
		api  string
		ok   bool
	}{
		{map[string]string{}, "", false},
		{map[string]string{"ACTIONS_RESULTS_URL": "https://r/", "ACTIONS_CACHE_SERVICE_V2": "true"}, "", false},
		{map[string]string{"ACTIONS_RUNTIME_TOKEN": "t", "ACTIONS_RESULTS_URL": "https://r/", "ACTIONS_CACHE_SERVICE_V2": "true"}, gha.APIV2, true},
		{map[string]string{"ACTIONS_RUNTIME_TOKEN": "t", "ACTIONS_RESULTS_URL": "https://r/", "ACTIONS_CACHE_URL": "https://c/"}, gha.APILegacy, true},
		{map[string]string{"ACTIONS_RUNTIME_TOKEN": "t", "ACTIONS_RESULTS_URL": "https://r/"}, "", false},
	}
	for _, c := range cases {
		e, ok := gha.Detect(env(c.vars))
		if ok != c.ok || e.API != c.api {
			t.Errorf("Detect(%v) = %+v, %v; want %q, %v", c.vars, e, ok, c.api, c.ok)
		}
	}
}

// TestEntryCreateCost measures what one small artifact costs as its own
// entry (create + blob upload + finalize) against the local service, one at
// a time and with the upload pool's default concurrency. The figures are in
// ARCHITECTURE.md; the test fails only if entries go missing.
func TestEntryCreateCost(t *testing.T) {
	s := server(t)
	tr := newTier(t, s, gha.APIV2, mainRW)
	ctx := context.Background()
	const n = 200
	bodies := make([][]byte, n)
	metas := make([]messages.Meta, n)
	for i := range n {
		bodies[i], metas[i] = artifact(1024 + i)
	}
	put := func(i int) {
		ref := messages.Ref{Namespace: messages.CAS, Key: metas[i].Hash}
		if err := tr.Put(ctx, ref, metas[i], bytes.NewReader(bodies[i])); err != nil {
			t.Error(err)
		}
	}
	start := time.Now()
	for i := range n / 2 {
		put(i)
	}
	serial := time.Since(start) / (n / 2)
	start = time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				put(i)
			}
		})
	}
	for i := n / 2; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	parallel := time.Since(start) / (n / 2)
	c := s.Counts()
	t.Logf("one entry per 1 KiB artifact: %v each serially, %v each with 4 workers; %d creates, %d blob PUTs, %d finalizes", serial, parallel, c.Creates, c.BlobPuts, c.Finalizes)
	if c.Finalizes != n {
		t.Fatalf("%d entries finalized, want %d", c.Finalizes, n)
	}
}
