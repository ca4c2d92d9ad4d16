package uploadpool_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/uploadpool"
	"github.com/tuist/fabrik-node/internal/tiertest"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/metrics"
	"github.com/tuist/fabrik-node/store"
)

var quiet = slog.New(slog.DiscardHandler)

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the pool's cleanup, so it runs after the pool stopped.
	t.Cleanup(func() { st.Close() })
	return st
}

// pool is one running upload pool; stop ends it (also at cleanup).
type pool struct {
	sys     *actors.System
	ref     actors.Ref
	metrics *metrics.Set
	stopped bool
}

func startPool(t *testing.T, st *store.Store, opts uploadpool.Options, targets ...*tiertest.Fake) *pool {
	t.Helper()
	p := &pool{sys: actors.NewSystem(), metrics: metrics.New(func() float64 { return 0 }, func() float64 { return 0 })}
	for _, f := range targets {
		opts.Targets = append(opts.Targets, uploadpool.Target{Tier: f, Workers: 1, Timeout: time.Second})
	}
	opts.Store, opts.Metrics, opts.Logger = st, p.metrics, quiet
	if opts.BaseBackoff == 0 {
		opts.BaseBackoff, opts.MaxBackoff = time.Millisecond, 5*time.Millisecond
	}
	ref, err := p.sys.Spawn("uploads", uploadpool.New(opts))
	if err != nil {
		t.Fatal(err)
	}
	p.ref = ref
	t.Cleanup(p.stop)
	return p
}

func (p *pool) stop() {
	if !p.stopped {
		p.stopped = true
		p.sys.Stop(p.ref)
		p.sys.Shutdown()
	}
}

func (p *pool) upload(t *testing.T, ref messages.Ref, meta messages.Meta, targets ...string) *messages.UploadResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := actors.AskFor[*messages.UploadResult](ctx, p.ref, &messages.Upload{Ref: ref, Meta: meta, Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	return res
}

func (p *pool) counter(name, upstream string) uint64 {
	return p.metrics.Counter(fmt.Sprintf(`%s{upstream=%q}`, name, upstream)).Get()
}

// stored puts a blob in the store, as the router does before it queues.
func stored(t *testing.T, st *store.Store, key string) (messages.Ref, messages.Meta, []byte) {
	t.Helper()
	b := make([]byte, 1000)
	rand.Read(b)
	ref := messages.Ref{Namespace: "gradle", Key: key}
	meta, err := st.PutReader(ref, messages.Meta{}, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return ref, meta, b
}

func queued(t *testing.T, st *store.Store) []string {
	t.Helper()
	var out []string
	if err := st.Queue().Scan(func(e store.QueueEntry) error { out = append(out, fmt.Sprintf("%s/%d", e.Upstream, e.Seq)); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// At MaxQueue pending jobs for an upstream, new jobs for it are dropped,
// reported in the reply and counted; other upstreams are unaffected.
func TestQueueOverflowIsDroppedAndCounted(t *testing.T) {
	st := openStore(t, t.TempDir())
	stuck, free := tiertest.New("stuck", nil), tiertest.New("free", nil)
	release := make(chan struct{})
	stuck.OnPut = func(ctx context.Context, _ messages.Ref) error { <-release; return nil }
	p := startPool(t, st, uploadpool.Options{MaxQueue: 2}, stuck, free)
	t.Cleanup(func() { close(release) }) // before the pool stops: its worker is blocked

	var dropped []string
	for i := range 5 {
		ref, meta, _ := stored(t, st, fmt.Sprintf("k%d", i))
		dropped = append(dropped, p.upload(t, ref, meta, "stuck", "free").Dropped...)
		// The free upstream drains before the next job: its queue never fills.
		eventually(t, "the upload to the free upstream", func() bool { return p.counter("fabrik_upload_completed_total", "free") == uint64(i+1) })
	}
	if want := []string{"stuck", "stuck", "stuck"}; !slices.Equal(dropped, want) {
		t.Fatalf("dropped %v, want %v (2 jobs fit the stuck upstream's queue)", dropped, want)
	}
	if n := p.counter("fabrik_upload_dropped_total", "stuck"); n != 3 {
		t.Fatalf("fabrik_upload_dropped_total{stuck} = %d, want 3", n)
	}
	if n := p.counter("fabrik_upload_dropped_total", "free"); n != 0 {
		t.Fatalf("the free upstream dropped %d jobs", n)
	}
}

// A failing upload is retried with backoff up to MaxAttempts, then given
// up: counted as a failure and removed from the persisted queue.
func TestRetriesThenGivesUp(t *testing.T) {
	st := openStore(t, t.TempDir())
	down := tiertest.New("down", nil)
	down.OnPut = func(context.Context, messages.Ref) error { return errors.New("connection refused") }
	p := startPool(t, st, uploadpool.Options{MaxAttempts: 3}, down)
	ref, meta, _ := stored(t, st, "k")
	p.upload(t, ref, meta, "down")
	eventually(t, "the job to be given up", func() bool { return p.counter("fabrik_upload_failures_total", "down") == 1 })
	if n := down.Count("put"); n != 3 {
		t.Fatalf("%d attempts, want MaxAttempts = 3", n)
	}
	if n := p.counter("fabrik_upload_retries_total", "down"); n != 2 {
		t.Fatalf("%d retries counted, want 2", n)
	}
	eventually(t, "the given-up job to leave the queue", func() bool { return len(queued(t, st)) == 0 })
}

// An upstream that fails twice and then accepts gets the artifact.
func TestRetryThenSucceeds(t *testing.T) {
	st := openStore(t, t.TempDir())
	flaky := tiertest.New("flaky", nil)
	var calls atomic.Int32
	flaky.OnPut = func(context.Context, messages.Ref) error {
		if calls.Add(1) <= 2 {
			return errors.New("503")
		}
		return nil
	}
	p := startPool(t, st, uploadpool.Options{}, flaky)
	ref, meta, b := stored(t, st, "k")
	p.upload(t, ref, meta, "flaky")
	eventually(t, "the upload to complete", func() bool { return p.counter("fabrik_upload_completed_total", "flaky") == 1 })
	if got, ok := flaky.Has(ref); !ok || !bytes.Equal(got, b) {
		t.Fatal("the upstream does not hold the artifact after the retries")
	}
	if n := p.counter("fabrik_upload_failures_total", "flaky"); n != 0 {
		t.Fatalf("%d failures counted for an upload that succeeded", n)
	}
}

// Jobs persisted before a stop are resumed by the next pool on the same
// store, and leave the queue once uploaded.
func TestRestartResumesPersistedQueue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	st := openStore(t, dir)
	unreachable := tiertest.New("regional", nil)
	unreachable.OnPut = func(ctx context.Context, _ messages.Ref) error { return errors.New("unreachable") }
	p := startPool(t, st, uploadpool.Options{BaseBackoff: time.Hour, MaxBackoff: time.Hour}, unreachable)
	var refs []messages.Ref
	for i := range 3 {
		ref, meta, _ := stored(t, st, fmt.Sprintf("k%d", i))
		p.upload(t, ref, meta, "regional")
		refs = append(refs, ref)
	}
	p.stop()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, dir)
	if q := queued(t, st); len(q) != 3 {
		t.Fatalf("persisted queue after restart: %v, want 3 jobs", q)
	}
	back := tiertest.New("regional", nil)
	p = startPool(t, st, uploadpool.Options{}, back)
	eventually(t, "the resumed uploads", func() bool { return p.counter("fabrik_upload_completed_total", "regional") == 3 })
	for _, r := range refs {
		if _, ok := back.Has(r); !ok {
			t.Fatalf("%s not uploaded after the restart", r)
		}
	}
	eventually(t, "an empty queue", func() bool { return len(queued(t, st)) == 0 })
	// New jobs after a resume get fresh sequence numbers, not reused ones.
	ref, meta, _ := stored(t, st, "after")
	p.upload(t, ref, meta, "regional")
	eventually(t, "the new upload", func() bool { _, ok := back.Has(ref); return ok })
}

// A job whose blob was evicted before its upload is dropped, not retried.
func TestEvictedBlobIsDropped(t *testing.T) {
	st := openStore(t, t.TempDir())
	f := tiertest.New("regional", nil)
	p := startPool(t, st, uploadpool.Options{}, f)
	ref, meta, _ := stored(t, st, "k")
	if err := st.Delete(ref); err != nil {
		t.Fatal(err)
	}
	p.upload(t, ref, meta, "regional")
	eventually(t, "the job to be dropped", func() bool { return p.counter("fabrik_upload_failures_total", "regional") == 1 })
	if n := f.Count("put"); n != 0 {
		t.Fatalf("%d puts of an evicted blob", n)
	}
}

func (p *pool) flush(t *testing.T) *uploadpool.FlushResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := actors.AskFor[*uploadpool.FlushResult](ctx, p.ref, &uploadpool.Flush{})
	if err != nil {
		t.Fatalf("flush: %v", err)
	}
	return res
}

// Flush is answered once everything queued for a working upstream was
// delivered: what the node acknowledged leaves with it on a graceful stop.
func TestFlushDeliversTheQueue(t *testing.T) {
	st := openStore(t, t.TempDir())
	slow := tiertest.New("regional", nil)
	slow.OnPut = func(context.Context, messages.Ref) error { time.Sleep(20 * time.Millisecond); return nil }
	p := startPool(t, st, uploadpool.Options{}, slow) // one worker
	var refs []messages.Ref
	for i := range 10 {
		ref, meta, _ := stored(t, st, fmt.Sprintf("k%d", i))
		p.upload(t, ref, meta, "regional")
		refs = append(refs, ref)
	}
	if res := p.flush(t); res.Left != 0 {
		t.Fatalf("flush left %d jobs queued for a working upstream", res.Left)
	}
	for _, r := range refs {
		if _, ok := slow.Has(r); !ok {
			t.Fatalf("%s not delivered when the flush answered", r)
		}
	}
	if q := queued(t, st); len(q) != 0 {
		t.Fatalf("persisted queue after the flush: %v", q)
	}
	if res := p.flush(t); res.Left != 0 { // an idle pool answers at once
		t.Fatalf("second flush: %d left", res.Left)
	}
}

// A flush does not wait for an upstream that is failing, neither for jobs
// already backing off nor for one that fails during the flush: they stay
// queued and persisted, and the working upstream's jobs are delivered.
func TestFlushLeavesAFailingUpstreamsJobsQueued(t *testing.T) {
	st := openStore(t, t.TempDir())
	down, up := tiertest.New("down", nil), tiertest.New("up", nil)
	down.OnPut = func(context.Context, messages.Ref) error { return errors.New("connection refused") }
	p := startPool(t, st, uploadpool.Options{BaseBackoff: time.Hour, MaxBackoff: time.Hour}, down, up)
	ref, meta, _ := stored(t, st, "early")
	p.upload(t, ref, meta, "down")
	eventually(t, "the first failure", func() bool { return p.counter("fabrik_upload_retries_total", "down") == 1 })
	for i := range 3 {
		ref, meta, _ := stored(t, st, fmt.Sprintf("k%d", i))
		p.upload(t, ref, meta, "down", "up")
	}
	if res := p.flush(t); res.Left != 4 {
		t.Fatalf("flush left %d jobs, want the failing upstream's 4", res.Left)
	}
	if n := up.Count("put"); n != 3 {
		t.Fatalf("the working upstream got %d puts by the flush's answer, want 3", n)
	}
	if q := queued(t, st); len(q) != 4 {
		t.Fatalf("persisted queue after the flush: %v, want the failing upstream's 4 jobs", q)
	}
}

// Once an upstream accepts an upload again, the jobs backing off after its
// outage go at once, not each at its own next retry (here an hour away).
func TestSuccessWakesJobsBackingOff(t *testing.T) {
	st := openStore(t, t.TempDir())
	flaky := tiertest.New("flaky", nil)
	var down atomic.Bool
	down.Store(true)
	flaky.OnPut = func(context.Context, messages.Ref) error {
		if down.Load() {
			return errors.New("503")
		}
		return nil
	}
	p := startPool(t, st, uploadpool.Options{BaseBackoff: time.Hour, MaxBackoff: time.Hour}, flaky)
	var refs []messages.Ref
	for _, k := range []string{"a", "b", "c"} {
		ref, meta, _ := stored(t, st, k)
		p.upload(t, ref, meta, "flaky")
		refs = append(refs, ref)
	}
	eventually(t, "every job to fail once", func() bool { return p.counter("fabrik_upload_retries_total", "flaky") == 3 })
	down.Store(false)
	ref, meta, _ := stored(t, st, "d") // new traffic after the outage
	p.upload(t, ref, meta, "flaky")
	eventually(t, "the backed-off jobs to be delivered", func() bool { return p.counter("fabrik_upload_completed_total", "flaky") == 4 })
	for _, r := range refs {
		if _, ok := flaky.Has(r); !ok {
			t.Fatalf("%s not delivered", r)
		}
	}
}

// The end of an outage is noticed by the probes, without new traffic: jobs
// backing off for an hour are delivered within a few probe intervals of the
// upstream answering again.
func TestProbeWakesJobsAfterAnOutage(t *testing.T) {
	st := openStore(t, t.TempDir())
	flaky := tiertest.New("flaky", nil)
	var down atomic.Bool
	down.Store(true)
	unreachable := func(context.Context, messages.Ref) error {
		if down.Load() {
			return errors.New("connection refused")
		}
		return nil
	}
	flaky.OnPut, flaky.OnStat = unreachable, unreachable
	p := startPool(t, st, uploadpool.Options{BaseBackoff: time.Hour, MaxBackoff: time.Hour, ProbeInterval: 20 * time.Millisecond}, flaky)
	var refs []messages.Ref
	for _, k := range []string{"a", "b"} {
		ref, meta, _ := stored(t, st, k)
		p.upload(t, ref, meta, "flaky")
		refs = append(refs, ref)
	}
	eventually(t, "every job to fail once", func() bool { return p.counter("fabrik_upload_retries_total", "flaky") == 2 })
	eventually(t, "a probe to fail", func() bool { return flaky.Count("stat") >= 1 })
	down.Store(false)
	eventually(t, "the backed-off jobs to be delivered", func() bool { return p.counter("fabrik_upload_completed_total", "flaky") == 2 })
	for _, r := range refs {
		if _, ok := flaky.Has(r); !ok {
			t.Fatalf("%s not delivered", r)
		}
	}
	if got := queued(t, st); len(got) != 0 {
		t.Fatalf("queue not empty after delivery: %v", got)
	}
}

// An upstream that answers probes but refuses uploads is not woken by
// them: its jobs keep their backoff, and so their hour of attempts.
func TestProbeDoesNotWakeAnUpstreamThatRefusesUploads(t *testing.T) {
	st := openStore(t, t.TempDir())
	full := tiertest.New("full", nil)
	full.OnPut = func(context.Context, messages.Ref) error { return errors.New("507 insufficient storage") }
	p := startPool(t, st, uploadpool.Options{BaseBackoff: time.Hour, MaxBackoff: time.Hour, ProbeInterval: 10 * time.Millisecond}, full)
	ref, meta, _ := stored(t, st, "a")
	p.upload(t, ref, meta, "full")
	eventually(t, "the job to fail once", func() bool { return p.counter("fabrik_upload_retries_total", "full") == 1 })
	eventually(t, "several probes", func() bool { return full.Count("stat") >= 5 })
	if n := full.Count("put"); n != 1 {
		t.Fatalf("probes that reached the upstream retried the upload: %d puts, want 1", n)
	}
}
