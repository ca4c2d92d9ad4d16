package remote_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/remote"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// flakyTier is a tier whose behaviour the test switches: it stands for an
// upstream that fails, hangs or panics, which a real server cannot be made
// to do on demand.
type flakyTier struct {
	mode  atomic.Value // "ok", "fail", "panic", "miss"
	calls atomic.Int64
}

func (f *flakyTier) Name() string { return "flaky" }
func (f *flakyTier) Get(ctx context.Context, ref messages.Ref) (messages.Meta, io.ReadCloser, error) {
	f.calls.Add(1)
	switch f.mode.Load() {
	case "panic":
		panic("tier bug")
	case "fail":
		return messages.Meta{}, nil, errors.New("connection refused")
	case "miss":
		return messages.Meta{}, nil, tier.ErrNotFound
	}
	return messages.Meta{Size: 5}, io.NopCloser(strings.NewReader("hello")), nil
}
func (f *flakyTier) Stat(context.Context, messages.Ref) (messages.Meta, error) {
	return messages.Meta{}, tier.ErrNotFound
}
func (f *flakyTier) Put(context.Context, messages.Ref, messages.Meta, io.Reader) error { return nil }
func (f *flakyTier) Delete(context.Context, messages.Ref) error                        { return nil }

func start(t *testing.T, f *flakyTier, cooldown time.Duration) actors.Ref {
	sys := actors.NewSystem()
	ref, err := sys.Spawn("flaky", remote.New(f, remote.Options{FailureThreshold: 3, Cooldown: cooldown}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Stop(ref); sys.Shutdown() })
	return ref
}

func get(t *testing.T, ref actors.Ref) *messages.GetResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := ref.Ask(ctx, &messages.Get{Ref: messages.Ref{Namespace: "gradle", Key: "k"}})
	if err != nil {
		t.Fatalf("ask: %v", err)
	}
	r := res.(*messages.GetResult)
	if r.Body != nil {
		r.Body.Close()
	}
	return r
}

func TestPanickingTierIsAMissAndTheActorSurvives(t *testing.T) {
	f := &flakyTier{}
	f.mode.Store("panic")
	ref := start(t, f, time.Hour)
	if r := get(t, ref); r.Found {
		t.Fatal("a panicking tier produced a hit")
	}
	f.mode.Store("ok")
	if r := get(t, ref); !r.Found {
		t.Fatal("no hit after the tier recovered")
	}
}

func TestBreakerOpensAndCloses(t *testing.T) {
	f := &flakyTier{}
	f.mode.Store("fail")
	ref := start(t, f, 300*time.Millisecond)
	for range 3 {
		if r := get(t, ref); r.Found || r.Err == nil {
			t.Fatalf("failing tier: found=%v err=%v, want a miss carrying the error", r.Found, r.Err)
		}
	}
	// The breaker is open: the tier is not called, the answer is a miss.
	time.Sleep(50 * time.Millisecond) // let the third outcome reach the actor
	before := f.calls.Load()
	f.mode.Store("ok")
	if r := get(t, ref); r.Found {
		t.Fatal("open breaker still called the tier")
	}
	if f.calls.Load() != before {
		t.Fatal("open breaker let a request through")
	}
	time.Sleep(350 * time.Millisecond)
	if r := get(t, ref); !r.Found {
		t.Fatal("breaker did not close after the cooldown")
	}
}

func TestMissIsNotAFailure(t *testing.T) {
	f := &flakyTier{}
	f.mode.Store("miss")
	ref := start(t, f, time.Hour)
	for range 10 {
		if r := get(t, ref); r.Found || r.Err != nil {
			t.Fatalf("miss: found=%v err=%v", r.Found, r.Err)
		}
	}
	f.mode.Store("ok")
	if r := get(t, ref); !r.Found {
		t.Fatal("misses opened the breaker")
	}
}
