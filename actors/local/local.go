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
	case *messages.Get:
		ctx.Respond(a.get(m))
	case *messages.Stat:
		meta, err := a.store.Stat(m.Ref)
		ctx.Respond(statResult(meta, err))
	case *messages.StatMany:
		res := &messages.StatManyResult{Results: make([]messages.StatResult, len(m.Refs))}
		for i, ref := range m.Refs {
			meta, err := a.store.Stat(ref)
			res.Results[i] = *statResult(meta, err)
		}
		ctx.Respond(res)
	case *Put:
		res := a.put(m)
		if ctx.Sender() != nil {
			ctx.Respond(res)
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

// put commits a staged blob.
func (a *Actor) put(m *Put) *PutResult {
	_, err := a.store.Commit(m.Ref, m.Meta, m.Blob)
	if err != nil && !errors.Is(err, tier.ErrFull) && !errors.Is(err, tier.ErrInvalid) {
		a.log.Error("local commit failed", "ref", m.Ref.String(), "err", err)
	}
	return &PutResult{Err: err}
}

// failureFor is the reply to msg when handling it panicked: the request's
// own result type, carrying err.
func failureFor(msg any, err error) any {
	switch msg.(type) {
	case *messages.Get:
		return &messages.GetResult{Tier: Name, Err: err}
	case *messages.Stat:
		return &messages.StatResult{Tier: Name, Err: err}
	case *messages.StatMany:
		return &messages.StatManyResult{Err: err}
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
