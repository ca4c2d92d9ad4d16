// Package uploadpool is the upload worker pool actor: it copies artifacts
// from the local store to write-through upstreams in the background.
//
// Policies (decisions, not accidents):
//   - Persistence: a job is written to the store's queue (store.Queue) before the router
//     answers the client, and removed only after the upstream acknowledged
//     it, so a restart resumes every pending upload.
//   - Concurrency: Workers uploads per upstream at a time.
//   - Retries: exponential backoff from 1s to 5min, up to MaxAttempts (20, about an hour); then
//     the job is dropped, logged and counted (fabrik_upload_failures_total).
//     An upload that succeeds wakes the upstream's jobs still backing off,
//     so a queue built up during an outage drains as soon as one gets through.
//   - Probes: while jobs back off, the upstream is probed every ProbeInterval
//     (5s) with a Stat of one of them. A probe that fails marks the upstream
//     down; the first that reaches it after that (an answer, found or not)
//     wakes its jobs, so the end of an outage is noticed within seconds even
//     when no new upload comes to show it. An upstream that answers probes
//     but refuses uploads (full, forbidden) is never woken this way: its
//     jobs keep their backoff and their hour of attempts.
//   - Overflow: at MaxQueue (10,000) pending jobs for an upstream, new jobs for it are
//     dropped and counted (fabrik_upload_dropped_total). A dead upstream
//     cannot grow the queue without bound.
//   - A job whose blob was evicted locally before upload is dropped: there is
//     nothing left to send.
//   - Graceful stop: Flush is answered once nothing is in flight or waiting
//     for a worker, except on upstreams that failed an upload meanwhile (they
//     are down: their jobs wait, persisted, for the next start). A node asks
//     it after its listeners closed, so what it acknowledged reaches the
//     upstreams before it goes, not when (if ever) it starts again.
package uploadpool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/metrics"
	"github.com/tuist/fabrik-node/store"
	"github.com/tuist/fabrik-node/tier"
)

// Target is one writable upstream.
type Target struct {
	Tier    tier.Tier
	Workers int
	Timeout time.Duration
}

// The pool's policy defaults. None is a config key: they are decisions,
// written here once and read by New.
const (
	// DefaultMaxQueue bounds the pending jobs of one upstream.
	DefaultMaxQueue = 10000
	// DefaultMaxAttempts is how many times a job is tried before it is
	// given up: 20 attempts span about an hour of backoff (1+2+...+256 s,
	// then 300 s each), so a regional or S3 outage of up to an hour loses
	// no write-through.
	DefaultMaxAttempts = 20
	// DefaultBaseBackoff is the first retry delay; each retry doubles it.
	DefaultBaseBackoff = time.Second
	// DefaultMaxBackoff caps the retry delay.
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultProbeInterval is how often an upstream with jobs backing off
	// is probed: one Stat, far cheaper than an upload, at most this long
	// between an outage's end and the queue draining.
	DefaultProbeInterval = 5 * time.Second
)

// Options configure the pool. Zero values take the defaults above.
type Options struct {
	Store       *store.Store
	Targets     []Target
	MaxQueue    int
	MaxAttempts int
	// BaseBackoff and MaxBackoff bound the retry delays (tests shorten them).
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// ProbeInterval spaces the probes of an upstream with jobs backing off.
	ProbeInterval time.Duration
	Metrics       *metrics.Set
	Logger        *slog.Logger
}

type job struct {
	seq      uint64
	Ref      messages.Ref  `json:"ref"`
	Meta     messages.Meta `json:"meta"`
	attempts int
}

type target struct {
	Target
	name    string
	pending []*job
	active  int
	depth   atomic.Int64
	// failedInFlush: an upload to it failed since the flush began, so a
	// flush no longer waits for it.
	failedInFlush bool
	// waiting holds the retry timers of jobs backing off after a failure.
	// An upload that succeeds shows the upstream is back, and wakes them
	// all: after an outage, the queue drains at once rather than each job
	// at its own next backoff, up to MaxBackoff later.
	waiting map[*job]*time.Timer
	// probe is the timer of the probe scheduled or in flight (nil: none).
	// sawDown: a probe failed since the jobs were last woken, so the next
	// that succeeds means the upstream came back.
	probe   *time.Timer
	sawDown bool
}

// probed is a probe's answer: err is the Stat's error (nil or a miss when
// the upstream answered).
type probed struct {
	t   *target
	err error
}

// Flush asks the pool to deliver what it holds before a graceful stop. It
// is answered with a FlushResult once no upload is in flight or waiting for
// a worker, except on upstreams that failed an upload since the flush
// began. Jobs backing off after an earlier failure are not waited for.
// Uploads go on as usual while it waits, and after it answers.
type Flush struct{}

// FlushResult answers Flush: Left jobs are still queued (and persisted).
type FlushResult struct{ Left int }

type jobDone struct {
	t   *target
	j   *job
	err error
}

type retry struct {
	t *target
	j *job
}

// Actor is the pool. State it owns: the per-upstream queues and counters;
// Badger holds the persisted copy.
type Actor struct {
	opts    Options
	targets map[string]*target
	seq     uint64
	// flushers are the askers of a Flush not answered yet.
	flushers []*actor.PID
}

// New returns a producer for the pool actor.
func New(opts Options) func() actor.Actor {
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = DefaultMaxQueue
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.BaseBackoff <= 0 {
		opts.BaseBackoff = DefaultBaseBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = DefaultProbeInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return func() actor.Actor { return &Actor{opts: opts} }
}

// Receive handles one message.
func (a *Actor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.start(ctx)
	case *messages.Upload:
		ctx.Respond(a.enqueue(ctx, m))
	case *jobDone:
		a.finish(ctx, m)
	case *retry:
		delete(m.t.waiting, m.j)
		m.t.pending = append(m.t.pending, m.j)
		a.dispatch(ctx, m.t)
	case *probed:
		a.probed(ctx, m)
	case *actor.Stopping:
		// A probe due after the stop would Stat an upstream nobody waits on.
		for _, t := range a.targets {
			if t.probe != nil {
				t.probe.Stop()
			}
		}
	case *Flush:
		if len(a.flushers) == 0 {
			for _, t := range a.targets {
				t.failedInFlush = false
			}
		}
		a.flushers = append(a.flushers, ctx.Sender())
		a.settle(ctx)
	}
}

// settle answers the pending Flush requests once every upstream is idle
// or failed an upload since the flush began.
func (a *Actor) settle(ctx actor.Context) {
	if len(a.flushers) == 0 {
		return
	}
	left := 0
	for _, t := range a.targets {
		if !t.failedInFlush && (t.active > 0 || len(t.pending) > 0) {
			return
		}
		left += int(t.depth.Load())
	}
	for _, pid := range a.flushers {
		ctx.Send(pid, &FlushResult{Left: left})
	}
	a.flushers = nil
}

func (a *Actor) start(ctx actor.Context) {
	a.targets = map[string]*target{}
	for _, t := range a.opts.Targets {
		if t.Workers <= 0 {
			t.Workers = config.DefaultUploadWorkers
		}
		tg := &target{Target: t, name: t.Tier.Name()}
		a.targets[tg.name] = tg
		if a.opts.Metrics != nil {
			a.opts.Metrics.Gauge(fmt.Sprintf(`fabrik_upload_queue_depth{upstream=%q}`, tg.name), func() float64 { return float64(tg.depth.Load()) })
			// Registered at zero so dashboards plot them before the first event.
			for _, name := range []string{"fabrik_upload_completed_total", "fabrik_upload_failures_total", "fabrik_upload_dropped_total", "fabrik_upload_retries_total"} {
				a.opts.Metrics.Counter(fmt.Sprintf(`%s{upstream=%q}`, name, tg.name))
			}
		}
	}
	resumed, err := a.load()
	if err != nil {
		a.opts.Logger.Error("loading persisted upload queue failed", "err", err)
	}
	if resumed > 0 {
		a.opts.Logger.Info("resuming pending uploads", "jobs", resumed)
	}
	for _, t := range a.targets {
		a.dispatch(ctx, t)
	}
}

// load reads persisted jobs back into the queues (restart recovery).
func (a *Actor) load() (int, error) {
	n := 0
	err := a.opts.Store.Queue().Scan(func(e store.QueueEntry) error {
		a.seq = max(a.seq, e.Seq)
		t := a.targets[e.Upstream]
		if t == nil {
			return nil // an upstream removed from the config; its jobs stay inert
		}
		j := &job{seq: e.Seq}
		if err := json.Unmarshal(e.Value, j); err != nil {
			return fmt.Errorf("decode upload job %s/%d: %w", e.Upstream, e.Seq, err)
		}
		a.opts.Store.Pin(j.Meta.Hash)
		t.pending = append(t.pending, j)
		t.depth.Add(1)
		n++
		return nil
	})
	return n, err
}

func (a *Actor) enqueue(ctx actor.Context, m *messages.Upload) *messages.UploadResult {
	res := &messages.UploadResult{}
	var jobs []*job
	var targets []*target
	var entries []store.QueueEntry
	for _, name := range m.Targets {
		t := a.targets[name]
		if t == nil {
			continue
		}
		if int(t.depth.Load()) >= a.opts.MaxQueue {
			res.Dropped = append(res.Dropped, name)
			continue
		}
		a.seq++
		j := &job{seq: a.seq, Ref: m.Ref, Meta: m.Meta}
		v, err := json.Marshal(j)
		if err != nil {
			res.Err = fmt.Errorf("encode upload job: %w", err)
			return res
		}
		entries = append(entries, store.QueueEntry{Upstream: name, Seq: j.seq, Value: v})
		jobs, targets = append(jobs, j), append(targets, t)
	}
	if len(entries) > 0 {
		if err := a.opts.Store.Queue().Append(entries...); err != nil {
			res.Err = err
			return res
		}
	}
	for _, name := range res.Dropped {
		a.count("fabrik_upload_dropped_total", name)
		a.opts.Logger.Warn("upload queue full: write-through dropped", "upstream", name, "ref", m.Ref.String())
	}
	for i, j := range jobs {
		t := targets[i]
		a.opts.Store.Pin(j.Meta.Hash) // until forget: never evicted before it is uploaded
		t.pending = append(t.pending, j)
		t.depth.Add(1)
		a.dispatch(ctx, t)
	}
	return res
}

// dispatch starts uploads while the target has idle workers.
func (a *Actor) dispatch(ctx actor.Context, t *target) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	for t.active < t.Workers && len(t.pending) > 0 {
		j := t.pending[0]
		t.pending = t.pending[1:]
		t.active++
		go func() {
			root.Send(self, &jobDone{t: t, j: j, err: a.upload(t, j)})
		}()
	}
}

// upload streams the blob from the local store to the upstream. It runs in
// a worker goroutine and touches no actor state.
func (a *Actor) upload(t *target, j *job) error {
	meta, body, err := a.opts.Store.OpenBlob(j.Meta.Hash)
	if err != nil {
		return fmt.Errorf("%w: local blob: %w", errGone, err)
	}
	defer body.Close()
	// A slow link must not fail a large upload: allow 1 MiB/s on top of the
	// upstream's request timeout.
	timeout := t.Timeout + time.Duration(meta.Size/(1<<20))*time.Second
	if t.Timeout <= 0 {
		timeout += 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m := j.Meta
	m.Size, m.Hash = meta.Size, meta.Hash
	return t.Tier.Put(ctx, j.Ref, m, body)
}

var errGone = errors.New("blob no longer stored locally")

func (a *Actor) finish(ctx actor.Context, d *jobDone) {
	t := d.t
	t.active--
	switch {
	case d.err == nil:
		a.forget(t, d.j)
		a.count("fabrik_upload_completed_total", t.name)
		a.wake(t)
	case errors.Is(d.err, errGone):
		a.forget(t, d.j)
		a.count("fabrik_upload_failures_total", t.name)
		a.opts.Logger.Warn("upload dropped: blob evicted before upload", "upstream", t.name, "ref", d.j.Ref.String())
	default:
		d.j.attempts++
		if d.j.attempts >= a.opts.MaxAttempts {
			a.forget(t, d.j)
			a.count("fabrik_upload_failures_total", t.name)
			a.opts.Logger.Error("upload failed permanently", "upstream", t.name, "ref", d.j.Ref.String(), "attempts", d.j.attempts, "err", d.err)
			break
		}
		a.count("fabrik_upload_retries_total", t.name)
		if len(a.flushers) > 0 {
			t.failedInFlush = true
		}
		delay := backoff(a.opts.BaseBackoff, a.opts.MaxBackoff, d.j.attempts)
		self, root, j := ctx.Self(), ctx.ActorSystem().Root, d.j
		if t.waiting == nil {
			t.waiting = map[*job]*time.Timer{}
		}
		t.waiting[j] = time.AfterFunc(delay, func() { root.Send(self, &retry{t: t, j: j}) })
		a.probe(ctx, t)
	}
	a.dispatch(ctx, t)
	a.settle(ctx)
}

// wake moves t's jobs that back off after a failure to its pending queue
// now (their upstream just accepted an upload). A timer that already fired
// has its retry message on the way, which queues that job instead.
func (a *Actor) wake(t *target) {
	t.sawDown = false
	for j, timer := range t.waiting {
		if timer.Stop() {
			t.pending = append(t.pending, j)
		}
		delete(t.waiting, j)
	}
}

// probe schedules the next probe of t, unless one is pending or no job
// backs off. The Stat runs in its own goroutine and touches no actor state.
func (a *Actor) probe(ctx actor.Context, t *target) {
	if t.probe != nil || len(t.waiting) == 0 {
		return
	}
	var ref messages.Ref
	for j := range t.waiting {
		ref = j.Ref
		break
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	t.probe = time.AfterFunc(a.opts.ProbeInterval, func() {
		pctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := t.Tier.Stat(pctx, ref)
		root.Send(self, &probed{t: t, err: err})
	})
}

// probed wakes t's jobs when a probe reaches it after one that did not, and
// keeps probing while jobs back off.
func (a *Actor) probed(ctx actor.Context, m *probed) {
	t := m.t
	t.probe = nil
	if len(t.waiting) == 0 {
		t.sawDown = false
		return
	}
	switch up := m.err == nil || errors.Is(m.err, tier.ErrNotFound); {
	case !up:
		t.sawDown = true
	case t.sawDown:
		t.sawDown = false
		a.opts.Logger.Info("upstream reachable again: retrying its queued uploads now", "upstream", t.name, "jobs", len(t.waiting))
		a.wake(t)
		a.dispatch(ctx, t)
	}
	a.probe(ctx, t)
}

// forget removes a finished job from Badger and from the depth gauge.
func (a *Actor) forget(t *target, j *job) {
	t.depth.Add(-1)
	a.opts.Store.Unpin(j.Meta.Hash)
	if err := a.opts.Store.Queue().Remove(t.name, j.seq); err != nil {
		a.opts.Logger.Warn("removing finished upload job failed", "err", err)
	}
}

func (a *Actor) count(name, upstream string) {
	if a.opts.Metrics != nil {
		a.opts.Metrics.Counter(fmt.Sprintf(`%s{upstream=%q}`, name, upstream)).Inc()
	}
}

func backoff(base, ceiling time.Duration, attempt int) time.Duration {
	d := base << min(attempt-1, 16)
	return min(d, ceiling)
}
