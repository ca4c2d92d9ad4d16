package local_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/local"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
	"github.com/tuist/fabrik-node/tier"
)

func start(t *testing.T, ttl, sweep time.Duration, opts store.Options) (*store.Store, actors.Ref) {
	t.Helper()
	opts.Dir = filepath.Join(t.TempDir(), "cache")
	st, err := store.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	sys := actors.NewSystem()
	ref, err := sys.Spawn("local", local.New(st, ttl, sweep, slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Stop(ref); sys.Shutdown(); st.Close() })
	return st, ref
}

func ask[T any](t *testing.T, ref actors.Ref, msg any) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := actors.AskFor[T](ctx, ref, msg)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func staged(t *testing.T, st *store.Store, b []byte) *store.Staged {
	t.Helper()
	s, err := st.Stager().New("", int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	s.Write(b)
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	return s
}

var ref = messages.Ref{Namespace: "gradle", Key: "k"}

// Put, Get (a path, not an open file), Stat and Delete through the actor,
// each answered with its own result type. The artifact gets a file of its
// own (inline blobs have no path: TestInlineGetHasNoPath).
func TestPutGetStatDelete(t *testing.T) {
	st, l := start(t, 0, 0, store.Options{InlineMax: -1})
	b := []byte("artifact bytes")
	if r := ask[*local.PutResult](t, l, &local.Put{Ref: ref, Blob: staged(t, st, b)}); r.Err != nil {
		t.Fatal(r.Err)
	}
	g := ask[*messages.GetResult](t, l, &messages.Get{Ref: ref})
	if !g.Found || g.Tier != local.Name || g.Path == "" || g.Body != nil || g.Meta.Size != int64(len(b)) {
		t.Fatalf("Get = %+v, want a local hit with a path", g)
	}
	f, err := st.OpenLocated(g.Meta, g.Path)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 64)
	n, _ := f.Read(got)
	f.Close()
	if !bytes.Equal(got[:n], b) {
		t.Fatalf("file at the path holds %q", got[:n])
	}
	if s := ask[*messages.StatResult](t, l, &messages.Stat{Ref: ref}); !s.Found {
		t.Fatal("Stat misses a stored artifact")
	}
	if d := ask[*messages.DeleteResult](t, l, &messages.Delete{Ref: ref}); !d.Found || d.Err != nil {
		t.Fatalf("Delete = %+v", d)
	}
	if g := ask[*messages.GetResult](t, l, &messages.Get{Ref: ref}); g.Found || g.Err != nil {
		t.Fatalf("Get after Delete = %+v, want a clean miss", g)
	}
	if d := ask[*messages.DeleteResult](t, l, &messages.Delete{Ref: ref}); d.Found {
		t.Fatal("second Delete reports it found the artifact")
	}
}

// A small blob stored inline is located without a path; its body is read
// from the store's index by whoever serves it.
func TestInlineGetHasNoPath(t *testing.T) {
	st, l := start(t, 0, 0, store.Options{})
	b := []byte("artifact bytes")
	if r := ask[*local.PutResult](t, l, &local.Put{Ref: ref, Blob: staged(t, st, b)}); r.Err != nil {
		t.Fatal(r.Err)
	}
	g := ask[*messages.GetResult](t, l, &messages.Get{Ref: ref})
	if !g.Found || g.Path != "" || g.Body != nil {
		t.Fatalf("Get = %+v, want a hit without a path", g)
	}
	body, err := st.OpenBody(g.Meta, g.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if got, _ := io.ReadAll(body); !bytes.Equal(got, b) {
		t.Fatalf("inline body reads %q", got)
	}
}

// A full store refuses with ErrFull in the result.
func TestPutFullIsErrFull(t *testing.T) {
	st, l := start(t, 0, 0, store.Options{MaxSize: 10})
	r := ask[*local.PutResult](t, l, &local.Put{Ref: ref, Blob: staged(t, st, make([]byte, 11))})
	if !errors.Is(r.Err, tier.ErrFull) {
		t.Fatalf("oversized put: %v, want ErrFull", r.Err)
	}
}

// SetLimits, Evict and Clear answer with their results; a bad policy is
// refused in Err.
func TestLimitsEvictClear(t *testing.T) {
	st, l := start(t, 0, 0, store.Options{})
	for i, k := range []string{"a", "b", "c"} {
		r := messages.Ref{Namespace: "gradle", Key: k}
		if res := ask[*local.PutResult](t, l, &local.Put{Ref: r, Blob: staged(t, st, bytes.Repeat([]byte{byte(i)}, 100))}); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	if r := ask[*local.SetLimitsResult](t, l, &local.SetLimits{MaxSize: 1000, Policy: "fifo"}); r.Err == nil {
		t.Fatal("SetLimits accepted policy fifo")
	}
	if r := ask[*local.SetLimitsResult](t, l, &local.SetLimits{MaxSize: 1000, Policy: "lru"}); r.Err != nil || st.Policy() != "lru" || st.MaxSize() != 1000 {
		t.Fatalf("SetLimits: %v, policy %s, max %d", r.Err, st.Policy(), st.MaxSize())
	}
	if r := ask[*local.EvictResult](t, l, &local.Evict{TargetBytes: 100, Policy: "lru"}); r.Err != nil || r.Evicted != 2 || r.Freed != 200 {
		t.Fatalf("Evict = %+v, want 2 evicted, 200 bytes freed", r)
	}
	if r := ask[*local.ClearResult](t, l, &local.Clear{}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if b, o := st.Usage(); b != 0 || o != 0 {
		t.Fatalf("after Clear: %d bytes in %d objects", b, o)
	}
}

// The TTL sweep runs on the actor's own timer and expires old artifacts.
func TestTTLSweep(t *testing.T) {
	// The store's clock stamps the artifact two hours ago; the sweep
	// compares against the real time.
	twoHoursAgo := func() time.Time { return time.Now().Add(-2 * time.Hour) }
	st, l := start(t, time.Hour, 10*time.Millisecond, store.Options{DefaultTTL: time.Hour, Now: twoHoursAgo})
	if r := ask[*local.PutResult](t, l, &local.Put{Ref: ref, Blob: staged(t, st, []byte("old"))}); r.Err != nil {
		t.Fatal(r.Err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, o := st.Usage(); o == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the sweep never expired an artifact older than the TTL")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Puts that arrive together are committed in group commits, each answered
// with its own outcome: a refused one (a declared hash the content does not
// have) fails alone, and two Puts of one key keep the later content.
func TestConcurrentPutsAnswerEachAsker(t *testing.T) {
	st, l := start(t, 0, 0, store.Options{})
	const n = 64
	futures := make([]<-chan error, n)
	body := func(i int) []byte { return bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 500) }
	for i := range n {
		meta := messages.Meta{}
		if i == 7 {
			meta.Hash = "0000000000000000000000000000000000000000000000000000000000000000"
		}
		r := messages.Ref{Namespace: "gradle", Key: string(rune('a'+i%32)) + "-" + string(rune('a'+i/32))}
		if i == n-1 {
			r = messages.Ref{Namespace: "gradle", Key: "a-a"} // the same key as i == 0
		}
		done := make(chan error, 1)
		futures[i] = done
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := actors.AskFor[*local.PutResult](ctx, l, &local.Put{Ref: r, Meta: meta, Blob: staged(t, st, body(i))})
			if err == nil {
				err = res.Err
			}
			done <- err
		}()
		if i == 0 {
			// Let the first Put commit before the rest, so the repeat of
			// its key comes after it.
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			futures[0] = nil
		}
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		err := <-f
		if i == 7 {
			if !errors.Is(err, tier.ErrInvalid) {
				t.Errorf("put with a wrong declared hash: %v, want ErrInvalid", err)
			}
		} else if err != nil {
			t.Errorf("put %d: %v", i, err)
		}
	}
	_, r, err := st.Open(messages.Ref{Namespace: "gradle", Key: "a-a"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, _ := io.ReadAll(r); !bytes.Equal(got, body(n-1)) {
		t.Fatal("a key put twice does not hold the later content")
	}
	if _, objs := st.Usage(); objs != n-2 {
		t.Errorf("%d blobs stored, want %d (the refused one and the overwritten one gone)", objs, n-2)
	}
}
