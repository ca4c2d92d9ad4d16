// Package local is the local tier actor: it serialises every mutation of
// the node's store (Badger index + blob files) and runs the TTL sweep.
// Reads are answered inline with the blob's path (an in-memory and Badger
// lookup, microseconds); the caller opens the file and streams it in its
// own goroutine (router.Cache does), never through this mailbox. It is not
// a tier.Tier: it answers the router's messages from the store directly.
package local

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
	"github.com/tuist/fabrik-node/tier"
)

// Name is the tier name of the local store in logs, metrics and GetResult.Tier.
const Name = "local"

// Put commits an artifact whose bytes the adapter already staged (hashed,
// verified and sealed by the store's Stager) under Ref. The local tier
// takes ownership of Blob: it is committed or discarded. The router
// forwards router.Cache's writes and its own write-backs as Put.
// Reply: *PutResult.
type Put struct {
	Ref  messages.Ref
	Meta messages.Meta
	Blob *store.Staged
	// Pin holds the committed blob against eviction from the moment it is
	// committed until an Unpin: the router sets it when the blob still has
	// to be queued for write-through, since under a small max_size the
	// next commit's eviction could otherwise take a blob acknowledged a
	// moment ago, before the upload pool pinned it (lost from every tier).
	Pin bool
}

// Unpin releases a Put's Pin (the router sends it once the upload pool
// holds its own pins). No reply.
type Unpin struct {
	Hash string
}

// PutResult answers Put. Err is nil once the artifact is durable in the
// local tier; write-through to upstreams happens after the reply.
type PutResult struct {
	Err error
}

// SetLimits changes the size bound and eviction policy at runtime (hot
// reload, admin API). Reply: *SetLimitsResult.
type SetLimits struct {
	MaxSize int64
	Policy  string
	TTL     time.Duration
}

// SetLimitsResult answers SetLimits; Err refuses an unknown policy.
type SetLimitsResult struct {
	Err error
}

// Evict asks for an eviction down to a target size (admin API).
// Reply: *EvictResult.
type Evict struct {
	TargetBytes int64
	Policy      string
}

// EvictResult answers Evict.
type EvictResult struct {
	Evicted int
	Freed   int64
	Err     error
}

// Clear removes every artifact (admin API). Reply: *ClearResult.
type Clear struct{}

// ClearResult answers Clear.
type ClearResult struct {
	Err error
}

// sweep is the actor's own timer tick for TTL expiry.
type sweep struct{}

// Actor is the local tier. State it owns: the store handle (opened by the
// node, closed by the node after the actor stopped) and the sweep timer.
type Actor struct {
	store    *store.Store
	ttl      time.Duration
	interval time.Duration
	log      *slog.Logger
	stop     chan struct{}
	// pending are Puts waiting for the next group commit; committing is
	// true while a batch is in flight (commitPending).
	pending    []pendingPut
	committing bool
}

// New returns a producer for the local tier actor. sweepEvery is how often
// expired artifacts are removed (0 disables the sweep).
func New(s *store.Store, ttl, sweepEvery time.Duration, log *slog.Logger) func() actor.Actor {
	if log == nil {
		log = slog.Default()
	}
	return func() actor.Actor {
		return &Actor{store: s, ttl: ttl, interval: sweepEvery, log: log}
	}
}

// Receive handles one message. A panic (a store bug, a corrupt index)
// answers the asker with a miss or an error at once, then propagates so the
// supervisor restarts the actor; without the answer the asker would wait
// for its timeout.
func (a *Actor) Receive(ctx actor.Context) {
	defer func() {
		if p := recover(); p != nil {
			a.log.Error("local tier panicked; restarting", "panic", p)
			if res := failureFor(ctx.Message(), fmt.Errorf("local tier panicked: %v", p)); res != nil && ctx.Sender() != nil {
				ctx.Respond(res)
			}
			panic(p)
		}
	}()
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.startSweep(ctx)
	case *actor.Stopping, *actor.Restarting:
		if a.stop != nil {
			close(a.stop)
			a.stop = nil
		}
		// Puts still waiting for a batch are refused now rather than left
		// to their askers' timeouts (a batch in flight answers itself).
		for _, p := range a.pending {
			p.put.Blob.Discard()
			if p.sender != nil {
				ctx.Send(p.sender, &PutResult{Err: fmt.Errorf("local tier: %w", actors.ErrStopped)})
			}
		}
		a.pending = nil
	case *messages.Get:
		ctx.Respond(a.get(m))
	case *messages.Stat:
		meta, err := a.store.Stat(m.Ref)
		ctx.Respond(statResult(meta, err))
	case *Put:
		a.pending = append(a.pending, pendingPut{put: m, sender: ctx.Sender()})
		if !a.committing {
			a.commitPending(ctx)
		}
	case *Unpin:
		a.store.Unpin(m.Hash)
	case *committed:
		a.committing = false
		a.answer(ctx, m.batch, m.results)
		if len(a.pending) > 0 {
			a.commitPending(ctx)
		}
	case *messages.Delete:
		_, statErr := a.store.Stat(m.Ref)
		err := a.store.Delete(m.Ref)
		ctx.Respond(&messages.DeleteResult{Found: statErr == nil, Err: err})
	case *SetLimits:
		a.store.SetMaxSize(m.MaxSize)
		err := a.store.SetPolicy(m.Policy)
		if m.TTL > 0 {
			a.ttl = m.TTL
		}
		ctx.Respond(&SetLimitsResult{Err: err})
	case *Evict:
		n, freed, err := a.store.EvictTo(m.TargetBytes, m.Policy)
		ctx.Respond(&EvictResult{Evicted: n, Freed: freed, Err: err})
	case *Clear:
		ctx.Respond(&ClearResult{Err: a.store.Clear()})
	case *sweep:
		if a.ttl > 0 {
			if n, err := a.store.ExpireTTL(time.Now()); err != nil {
				a.log.Warn("ttl sweep failed", "err", err)
			} else if n > 0 {
				a.log.Info("ttl sweep expired artifacts", "count", n)
			}
		}
	}
}

func (a *Actor) get(m *messages.Get) *messages.GetResult {
	meta, path, err := a.store.Locate(m.Ref)
	switch {
	case err == nil:
		return &messages.GetResult{Found: true, Meta: meta, Path: path, Tier: Name}
	case errors.Is(err, tier.ErrNotFound):
		return &messages.GetResult{Tier: Name}
	default:
		return &messages.GetResult{Tier: Name, Err: err}
	}
}

// maxBatch bounds one group commit: enough to share a Badger write among
// every upload a busy node has in flight, small enough that one batch
// stays one transaction.
const maxBatch = 256

// pendingPut is a Put waiting for the next group commit, with whom to answer.
type pendingPut struct {
	put    *Put
	sender *actor.PID
}

// committed is a group commit's outcome, sent by its goroutine to the actor.
type committed struct {
	batch   []pendingPut
	results []store.Committed
}

// commitPending commits the Puts that arrived since the last batch started,
// in one store.CommitMany, in a goroutine: the mailbox keeps taking Puts
// meanwhile, and they make up the next batch (group commit). One batch is
// in flight at a time, so commits stay in arrival order. Other mutations
// (delete, eviction, limits) run in the mailbox as before; the store
// orders them with a batch under its own write lock, and a Put is
// concurrent with them until its answer.
func (a *Actor) commitPending(ctx actor.Context) {
	batch := a.pending
	if len(batch) > maxBatch {
		batch, a.pending = batch[:maxBatch:maxBatch], batch[maxBatch:]
	} else {
		a.pending = nil
	}
	a.committing = true
	self, root, st := ctx.Self(), ctx.ActorSystem().Root, a.store
	go func() {
		items := make([]store.Pending, len(batch))
		for i, p := range batch {
			items[i] = store.Pending{Ref: p.put.Ref, Meta: p.put.Meta, Blob: p.put.Blob, Pin: p.put.Pin}
		}
		var results []store.Committed
		func() {
			defer func() {
				if p := recover(); p != nil {
					a.log.Error("local commit panicked", "panic", p)
					results = make([]store.Committed, len(batch))
					for i := range results {
						results[i].Err = fmt.Errorf("local tier panicked: %v", p)
					}
				}
			}()
			results = st.CommitMany(items)
		}()
		root.Send(self, &committed{batch: batch, results: results})
	}()
}

// answer replies to each Put of a batch.
func (a *Actor) answer(ctx actor.Context, batch []pendingPut, results []store.Committed) {
	for i, p := range batch {
		err := results[i].Err
		if err != nil && !errors.Is(err, tier.ErrFull) && !errors.Is(err, tier.ErrInvalid) {
			a.log.Error("local commit failed", "ref", p.put.Ref.String(), "err", err)
		}
		if p.sender != nil {
			ctx.Send(p.sender, &PutResult{Err: err})
		}
	}
}

// failureFor is the reply to msg when handling it panicked: the request's
// own result type, carrying err.
func failureFor(msg any, err error) any {
	switch msg.(type) {
	case *messages.Get:
		return &messages.GetResult{Tier: Name, Err: err}
	case *messages.Stat:
		return &messages.StatResult{Tier: Name, Err: err}
	case *Put:
		return &PutResult{Err: err}
	case *messages.Delete:
		return &messages.DeleteResult{Err: err}
	case *Evict:
		return &EvictResult{Err: err}
	case *SetLimits:
		return &SetLimitsResult{Err: err}
	case *Clear:
		return &ClearResult{Err: err}
	}
	return nil // not a request (the sweep tick): nobody waits for an answer
}

func statResult(meta messages.Meta, err error) *messages.StatResult {
	switch {
	case err == nil:
		return &messages.StatResult{Found: true, Meta: meta, Tier: Name}
	case errors.Is(err, tier.ErrNotFound):
		return &messages.StatResult{Tier: Name}
	default:
		return &messages.StatResult{Tier: Name, Err: err}
	}
}

// startSweep ticks into the mailbox so that expiry is serialised with every
// other mutation of the store.
func (a *Actor) startSweep(ctx actor.Context) {
	if a.interval <= 0 {
		return
	}
	a.stop = make(chan struct{})
	stop, self, root := a.stop, ctx.Self(), ctx.ActorSystem().Root
	go func() {
		t := time.NewTicker(a.interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				root.Send(self, &sweep{})
			}
		}
	}()
}
