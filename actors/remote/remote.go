// Package remote is the actor that hosts one remote tier (an upstream Fabrik
// node, S3, a P2P peer). It owns the tier's circuit breaker and concurrency
// limit; the I/O itself runs in short-lived goroutines so one slow request
// never blocks the mailbox, and their results come back as messages.
package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// The breaker's and the in-flight bound's defaults (not config keys).
const (
	DefaultMaxInFlight      = 256
	DefaultFailureThreshold = 5
	DefaultCooldown         = 5 * time.Second
)

// Options configure a remote tier actor. Zero values take the defaults.
type Options struct {
	// Timeout bounds one request (the tier's own timeout may be shorter).
	// Default: config.DefaultUpstreamTimeout.
	Timeout time.Duration
	// MaxInFlight bounds concurrent requests to the tier; past it reads are
	// answered as misses at once (load shedding beats queueing for a cache).
	MaxInFlight int
	// FailureThreshold consecutive failures open the circuit for Cooldown.
	FailureThreshold int
	Cooldown         time.Duration
	// OnResult is told every outcome ("hit", "miss", "error", "open") for
	// metrics; may be nil.
	OnResult func(tierName, result string, took time.Duration)
	// OnBreaker is told when the circuit opens (until when) and when the
	// tier recovers (the zero time), for health reporting; may be nil.
	OnBreaker func(tierName string, openUntil time.Time)
	Logger    *slog.Logger
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = config.DefaultUpstreamTimeout
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.FailureThreshold <= 0 {
		o.FailureThreshold = DefaultFailureThreshold
	}
	if o.Cooldown <= 0 {
		o.Cooldown = DefaultCooldown
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// done reports the end of one request to the actor that started it.
type done struct {
	failed bool
	err    error
}

// Actor hosts one tier. State it owns: in-flight count and breaker state.
type Actor struct {
	tier     tier.Tier
	opts     Options
	inFlight int
	failures int
	openTill time.Time
	// loggedOpen keeps a dead upstream to one log line per outage.
	loggedOpen bool
}

// New returns a producer for the actor hosting t.
func New(t tier.Tier, opts Options) func() actor.Actor {
	opts.defaults()
	return func() actor.Actor { return &Actor{tier: t, opts: opts} }
}

// Receive handles one message.
func (a *Actor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *done:
		a.inFlight--
		a.record(m)
	case *messages.Get:
		if !a.admit(ctx) {
			ctx.Respond(&messages.GetResult{Tier: a.tier.Name()})
			return
		}
		a.run(ctx, func(c context.Context) (any, bool, error) { return a.get(c, m.Ref) })
	case *messages.Stat:
		if !a.admit(ctx) {
			ctx.Respond(&messages.StatResult{Tier: a.tier.Name()})
			return
		}
		a.run(ctx, func(c context.Context) (any, bool, error) {
			meta, err := a.tier.Stat(c, m.Ref)
			if errors.Is(err, tier.ErrNotFound) {
				return &messages.StatResult{Tier: a.tier.Name()}, false, nil
			}
			return &messages.StatResult{Found: err == nil, Meta: meta, Tier: a.tier.Name(), Err: err}, err == nil, err
		})
	case *messages.Delete:
		a.inFlight++
		a.run(ctx, func(c context.Context) (any, bool, error) {
			err := a.tier.Delete(c, m.Ref)
			return &messages.DeleteResult{Err: err}, false, err
		})
	}
}

// admit applies the breaker and the in-flight bound.
func (a *Actor) admit(ctx actor.Context) bool {
	if time.Now().Before(a.openTill) {
		a.report("open", 0)
		return false
	}
	if a.inFlight >= a.opts.MaxInFlight {
		a.report("shed", 0)
		return false
	}
	a.inFlight++
	return true
}

// run executes op off the mailbox and replies to the original sender
// directly; the actor only hears about the outcome.
func (a *Actor) run(ctx actor.Context, op func(context.Context) (any, bool, error)) {
	sender, self, root, msg := ctx.Sender(), ctx.Self(), ctx.ActorSystem().Root, ctx.Message()
	timeout := a.opts.Timeout
	go func() {
		start := time.Now()
		defer func() {
			// A tier that panics must cost one request, not the process: the
			// goroutine is outside the actor's supervision.
			if p := recover(); p != nil {
				a.opts.Logger.Error("tier panicked; answered as a miss", "tier", a.tier.Name(), "panic", p)
				if sender != nil {
					root.Send(sender, missFor(msg, a.tier.Name(), fmt.Errorf("%s panicked: %v", a.tier.Name(), p)))
				}
				root.Send(self, &done{failed: true, err: fmt.Errorf("panic: %v", p)})
			}
		}()
		// The timeout bounds the time to an answer (first byte for Get), not
		// a large transfer: a stalled body is the tier's idle timeout's job.
		c, cancel := context.WithCancel(context.Background())
		timer := time.AfterFunc(timeout, cancel)
		res, hit, err := op(c)
		timer.Stop()
		if r, ok := res.(*messages.GetResult); ok && r.Found {
			r.Body = tier.OnClose(r.Body, cancel)
		} else {
			cancel()
		}
		result := "miss"
		switch {
		case err != nil:
			result = "error"
		case hit:
			result = "hit"
		}
		a.report(result, time.Since(start))
		if sender != nil {
			root.Send(sender, res)
		} else if r, ok := res.(*messages.GetResult); ok && r.Body != nil {
			r.Body.Close()
		}
		root.Send(self, &done{failed: err != nil, err: err})
	}()
}

func (a *Actor) get(c context.Context, ref messages.Ref) (any, bool, error) {
	meta, body, err := a.tier.Get(c, ref)
	switch {
	case err == nil:
		return &messages.GetResult{Found: true, Meta: meta, Body: body, Tier: a.tier.Name()}, true, nil
	case errors.Is(err, tier.ErrNotFound):
		return &messages.GetResult{Tier: a.tier.Name()}, false, nil
	default:
		return &messages.GetResult{Tier: a.tier.Name(), Err: err}, false, err
	}
}

func (a *Actor) record(d *done) {
	if !d.failed {
		if a.loggedOpen {
			a.opts.Logger.Info("upstream recovered", "tier", a.tier.Name())
			if a.opts.OnBreaker != nil {
				a.opts.OnBreaker(a.tier.Name(), time.Time{})
			}
		}
		a.failures, a.loggedOpen = 0, false
		return
	}
	a.failures++
	if a.failures >= a.opts.FailureThreshold {
		a.openTill = time.Now().Add(a.opts.Cooldown)
		a.failures = 0
		if a.opts.OnBreaker != nil {
			a.opts.OnBreaker(a.tier.Name(), a.openTill)
		}
		if !a.loggedOpen {
			a.loggedOpen = true
			a.opts.Logger.Warn("upstream failing: circuit open, reads from it count as misses",
				"tier", a.tier.Name(), "cooldown", a.opts.Cooldown, "err", d.err)
		}
	}
}

func (a *Actor) report(result string, took time.Duration) {
	if a.opts.OnResult != nil {
		a.opts.OnResult(a.tier.Name(), result, took)
	}
}

// missFor is the answer to a request whose tier call panicked: a read is
// a miss (the router moves on), a delete has failed.
func missFor(msg any, tierName string, err error) any {
	switch msg.(type) {
	case *messages.Stat:
		return &messages.StatResult{Tier: tierName}
	case *messages.Delete:
		return &messages.DeleteResult{Err: err}
	}
	return &messages.GetResult{Tier: tierName}
}
