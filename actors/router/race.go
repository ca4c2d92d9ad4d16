package router

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/messages"
)

// race runs after a local miss when P2P is on: the peers (one tier fronting
// every live peer) and the first upstream are asked at once, and the first
// hit wins. A peer's hit arrives in 1-5 ms where the regional takes 20-50:
// asking the peers first and the regional after a miss would add the peers'
// miss time to every regional hit, asking both costs one extra request.
// The loser's late hit is closed at once (which cancels its stream); a
// peer's failure or refusal is a miss like any tier's. When both miss, the
// read falls back to upstream 1 and on.
//
// A peer hit is written back locally like an upstream hit, served as
// index 0: writableAbove(0) is empty, so it is queued for no upstream
// (the peer's copy came from an upstream or a build on the LAN, and the
// existing policy only queues upstreams above the tier that served).
func (a *Actor) race(ctx actor.Context, m *messages.Get, start time.Time) {
	p := a.opts.Peers
	type entrant struct {
		ref     actors.Ref
		timeout time.Duration
		served  int
		name    string
	}
	entrants := []entrant{{p.Ref, p.Timeout, 0, p.Name}}
	// The first upstream that may be read (write-only replicas never are).
	first := a.readable(0)
	if first < len(a.opts.Upstreams) {
		u := a.opts.Upstreams[first]
		entrants = append(entrants, entrant{u.Ref, u.Timeout, first, u.Name})
	}
	done, left := false, len(entrants)
	for _, e := range entrants {
		fut := ctx.RequestFuture(e.ref.PID(), &messages.Get{Ref: m.Ref}, e.timeout)
		ctx.ReenterAfter(fut, func(res any, err error) {
			left--
			r, err := actors.Reply[*messages.GetResult](res, err)
			if err == nil {
				err = r.Err
			}
			hit := err == nil && r.Found
			if done {
				if hit && r.Body != nil {
					r.Body.Close() // the loser: cancel its stream
				}
				return
			}
			if hit {
				done = true
				r.Body = a.writeBack(ctx, m.Ref, r, e.served)
				ctx.Respond(r)
				return
			}
			if err != nil {
				a.opts.Logger.Debug("tier read failed, treated as miss", "tier", e.name, "ref", m.Ref.String(), "err", err)
			}
			if left == 0 {
				done = true
				a.read(ctx, m, first+1, start)
			}
		})
	}
}

// raceStat is race for existence checks (Bazel's FindMissingBlobs, HEADs):
// a blob a peer holds is not missing, since the read that follows will
// race the same peers.
func (a *Actor) raceStat(ctx actor.Context, m *messages.Stat) {
	entrants := []Tier{*a.opts.Peers}
	first := a.readable(0)
	if first < len(a.opts.Upstreams) {
		entrants = append(entrants, a.opts.Upstreams[first])
	}
	done, left := false, len(entrants)
	for _, e := range entrants {
		fut := ctx.RequestFuture(e.Ref.PID(), &messages.Stat{Ref: m.Ref}, e.Timeout)
		ctx.ReenterAfter(fut, func(res any, err error) {
			left--
			r, err := actors.Reply[*messages.StatResult](res, err)
			if done {
				return
			}
			if err == nil && r.Found {
				done = true
				ctx.Respond(r)
				return
			}
			if left == 0 {
				done = true
				a.stat(ctx, m, first+1)
			}
		})
	}
}
