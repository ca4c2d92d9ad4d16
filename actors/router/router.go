// Package router is the router actor: one per node, it owns the ordered list
// of tiers and decides where every read and write goes.
//
//   - Reads fall back sequentially: local, then each upstream in array order;
//     the first hit wins. A hit from a lower tier streams to the client while
//     it is written back to the local tier, and is then queued for the
//     writable upstreams above the one that served it.
//   - Writes go to the local tier first; the client is answered once the
//     artifact is durable there and the write-through jobs are persisted in
//     the upload pool's queue.
//   - A tier failure is counted and treated as a miss: a cache never fails a
//     build.
//
// The router never blocks its mailbox on a tier: every tier call is a future
// continued with ReenterAfter, so thousands of reads can be in flight.
package router

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/local"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
)

// Tier is one entry of the router's ordered tier list.
type Tier struct {
	Name string
	Ref  actors.Ref
	// Timeout bounds the wait for this tier's answer before moving on.
	Timeout time.Duration
	// ReadOnly tiers are never written to; WriteThrough ones receive every
	// new artifact; Permanent ones are never deleted from. WriteOnly tiers
	// are never read: replicas in another region (config: read_only and
	// write_through both set, see config.UpstreamConfig.IsReplica).
	ReadOnly, WriteThrough, Permanent, WriteOnly bool
}

// Deletable reports whether a Delete with Upstreams reaches this tier. A
// replica is configured read_only: deletes stay in their own region.
func (t Tier) Deletable() bool { return !t.ReadOnly && !t.Permanent && !t.WriteOnly }

// readable skips write-only tiers from index i on (-1, local, is readable).
func (a *Actor) readable(i int) int {
	for i >= 0 && i < len(a.opts.Upstreams) && a.opts.Upstreams[i].WriteOnly {
		i++
	}
	return i
}

// Options wire the router to the rest of the node.
type Options struct {
	// Local is the local tier actor, always consulted first.
	Local actors.Ref
	// Stager creates staging files for write-backs of upstream hits.
	Stager *store.Stager
	// Upstreams in priority order.
	Upstreams []Tier
	// Uploads is the upload pool (unset when no upstream is writable).
	Uploads actors.Ref
	// Peers is the P2P tier (tier/p2p.Set in a remote actor), raced against
	// the first upstream on a local miss; unset without P2P.
	Peers  *Tier
	Logger *slog.Logger
}

// localTimeout bounds a local tier answer; the local tier answers in
// microseconds unless the disk is in trouble.
const localTimeout = 30 * time.Second

// writeBackDone reports that an upstream hit was fully received and
// verified into a staging file, ready for the local commit.
type writeBackDone struct {
	put    *local.Put
	served int // index of the upstream that served the hit
}

// Actor is the router. It owns no mutable state beyond its configuration:
// tiers own their storage and breakers, the upload pool owns its queue.
type Actor struct {
	opts Options
}

// New returns a producer for the router actor.
func New(opts Options) func() actor.Actor {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return func() actor.Actor { return &Actor{opts: opts} }
}

// Receive handles one message.
func (a *Actor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.Get:
		if m.LocalMissed {
			a.afterLocalMiss(ctx, m, time.Now())
			return
		}
		a.read(ctx, m, -1, time.Now())
	case *messages.Stat:
		first := -1
		if m.UpstreamOnly {
			first = 0
		}
		a.stat(ctx, m, first)
	case *messages.Upstreams:
		ctx.Respond(&messages.UpstreamsResult{Readable: a.readable(0) < len(a.opts.Upstreams)})
	case *local.Put:
		a.write(ctx, m)
	case *messages.Delete:
		a.delete(ctx, m)
	case *writeBackDone:
		a.commitWriteBack(ctx, m)
	}
}

// tierAt returns the ref and timeout of tier i, where -1 is the local tier.
func (a *Actor) tierAt(i int) (actors.Ref, time.Duration) {
	if i < 0 {
		return a.opts.Local, localTimeout
	}
	t := a.opts.Upstreams[i]
	return t.Ref, t.Timeout
}

// read asks tier i and continues with the next on a miss or failure.
func (a *Actor) read(ctx actor.Context, m *messages.Get, i int, start time.Time) {
	i = a.readable(i)
	if i >= len(a.opts.Upstreams) || (m.LocalOnly && i >= 0) {
		ctx.Respond(&messages.GetResult{})
		return
	}
	ref, timeout := a.tierAt(i)
	fut := ctx.RequestFuture(ref.PID(), m, timeout)
	ctx.ReenterAfter(fut, func(res any, err error) {
		r, err := actors.Reply[*messages.GetResult](res, err)
		if err == nil {
			err = r.Err
		}
		if err != nil || !r.Found {
			if err != nil {
				a.opts.Logger.Debug("tier read failed, treated as miss", "tier", a.tierName(i), "ref", m.Ref.String(), "err", err)
			}
			if i < 0 {
				a.afterLocalMiss(ctx, m, start)
				return
			}
			a.read(ctx, m, i+1, start)
			return
		}
		if i >= 0 {
			r.Body = a.writeBack(ctx, m.Ref, r, i)
		}
		ctx.Respond(r)
	})
}

// afterLocalMiss goes on from a local miss: the race of peers and first
// upstream when P2P is on, else the upstreams in order.
func (a *Actor) afterLocalMiss(ctx actor.Context, m *messages.Get, start time.Time) {
	if a.opts.Peers != nil && !m.LocalOnly {
		a.race(ctx, m, start)
		return
	}
	a.read(ctx, m, 0, start)
}

// stat is read's cheaper twin: existence only, no write-back.
func (a *Actor) stat(ctx actor.Context, m *messages.Stat, i int) {
	i = a.readable(i)
	if i >= len(a.opts.Upstreams) || (m.LocalOnly && i >= 0) {
		ctx.Respond(&messages.StatResult{})
		return
	}
	ref, timeout := a.tierAt(i)
	fut := ctx.RequestFuture(ref.PID(), m, timeout)
	ctx.ReenterAfter(fut, func(res any, err error) {
		r, err := actors.Reply[*messages.StatResult](res, err)
		if err != nil || !r.Found {
			if i < 0 && a.opts.Peers != nil && !m.LocalOnly {
				a.raceStat(ctx, m)
				return
			}
			a.stat(ctx, m, i+1)
			return
		}
		ctx.Respond(r)
	})
}

// write commits locally, then persists write-through jobs, then answers.
func (a *Actor) write(ctx actor.Context, m *local.Put) {
	targets := a.writableAbove(len(a.opts.Upstreams))
	m.Pin = a.queues(targets)
	fut := ctx.RequestFuture(a.opts.Local.PID(), m, localTimeout)
	ctx.ReenterAfter(fut, func(res any, err error) {
		r, err := actors.Reply[*local.PutResult](res, err)
		if err != nil {
			m.Blob.Discard()
			ctx.Respond(&local.PutResult{Err: fmt.Errorf("local tier: %w", err)})
			return
		}
		if r.Err != nil {
			ctx.Respond(r)
			return
		}
		meta := m.Meta
		meta.Hash, meta.Size = m.Blob.Hash(), m.Blob.Size()
		a.enqueue(ctx, m.Ref, meta, targets, func() {
			a.unpin(ctx, m)
			ctx.Respond(r)
		})
	})
}

// writableAbove lists the write-through upstreams with index below n.
func (a *Actor) writableAbove(n int) []string {
	var names []string
	for _, t := range a.opts.Upstreams[:n] {
		if !t.ReadOnly && t.WriteThrough {
			names = append(names, t.Name)
		}
	}
	return names
}

// queues reports whether a write to targets will be queued for upload:
// then its local commit pins the blob until the queue holds it (local.Put).
func (a *Actor) queues(targets []string) bool {
	return len(targets) > 0 && a.opts.Uploads.Valid()
}

// unpin releases the pin a Put with Pin took, once the upload pool holds
// its own (or gave up queueing).
func (a *Actor) unpin(ctx actor.Context, m *local.Put) {
	if m.Pin {
		ctx.Send(a.opts.Local.PID(), &local.Unpin{Hash: m.Blob.Hash()})
	}
}

// enqueue hands write-through jobs to the upload pool and calls then once
// they are persisted (or at once when there is nothing to upload).
func (a *Actor) enqueue(ctx actor.Context, ref messages.Ref, meta messages.Meta, targets []string, then func()) {
	if len(targets) == 0 || !a.opts.Uploads.Valid() {
		then()
		return
	}
	up := &messages.Upload{Ref: ref, Meta: meta, Targets: targets}
	fut := ctx.RequestFuture(a.opts.Uploads.PID(), up, localTimeout)
	ctx.ReenterAfter(fut, func(res any, err error) {
		q, err := actors.Reply[*messages.UploadResult](res, err)
		if err == nil {
			err = q.Err
		}
		if err != nil {
			// The artifact is safe locally; only its write-through is at
			// risk. Log it: the client must not fail for it.
			a.opts.Logger.Error("write-through not queued", "ref", ref.String(), "err", err)
		}
		then()
	})
}

// delete removes from the local tier and, when m.Upstreams is set, then
// from every upstream that is neither read-only nor permanent, one after
// the other, and answers once all have. Found says the local tier had the
// artifact; Err is the local failure, else the first upstream failure (an
// upstream that misses the artifact has not failed).
func (a *Actor) delete(ctx actor.Context, m *messages.Delete) {
	fut := ctx.RequestFuture(a.opts.Local.PID(), &messages.Delete{Ref: m.Ref}, localTimeout)
	ctx.ReenterAfter(fut, func(res any, err error) {
		r, err := actors.Reply[*messages.DeleteResult](res, err)
		if err != nil {
			r = &messages.DeleteResult{Err: fmt.Errorf("local tier: %w", err)}
		}
		if !m.Upstreams {
			ctx.Respond(r)
			return
		}
		a.deleteUpstream(ctx, m.Ref, 0, r)
	})
}

// deleteUpstream deletes ref from upstream i onwards, skipping those that
// must keep it, then answers with acc.
func (a *Actor) deleteUpstream(ctx actor.Context, ref messages.Ref, i int, acc *messages.DeleteResult) {
	for i < len(a.opts.Upstreams) && !a.opts.Upstreams[i].Deletable() {
		i++
	}
	if i == len(a.opts.Upstreams) {
		ctx.Respond(acc)
		return
	}
	t := a.opts.Upstreams[i]
	fut := ctx.RequestFuture(t.Ref.PID(), &messages.Delete{Ref: ref}, t.Timeout)
	ctx.ReenterAfter(fut, func(res any, err error) {
		r, err := actors.Reply[*messages.DeleteResult](res, err)
		if err == nil {
			err = r.Err
		}
		if err != nil && acc.Err == nil {
			acc.Err = fmt.Errorf("%s: %w", t.Name, err)
		}
		a.deleteUpstream(ctx, ref, i+1, acc)
	})
}

// tierName names tier i for logs (-1 is the local tier).
func (a *Actor) tierName(i int) string {
	if i < 0 {
		return local.Name
	}
	return a.opts.Upstreams[i].Name
}
