// Package actors is the node's seam over the actor library: a System that
// spawns actors and a Ref with Tell, Ask and AskFor. Code outside actors/
// (node, adapters, ops) talks to actors through this file only and never
// imports protoactor-go. The actor implementations under actors/ do use the
// library directly (actor.Context, RequestFuture, ReenterAfter, Ref.PID):
// replacing protoactor-go means rewriting those packages, not their callers.
//
// Replies follow one convention (see package messages): every request is
// answered with one pointer type, *XResult, whose Err field carries a
// failure. AskFor and Reply check that type once, so callers never assert
// on a reply themselves.
package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// DefaultAskTimeout bounds an Ask whose context has no deadline. Tiers bound
// their own work with their configured timeouts well below this.
const DefaultAskTimeout = 5 * time.Minute

// ErrStopped is returned by Ask when the target actor is gone.
var ErrStopped = errors.New("actor stopped")

// System owns the actor runtime of one node.
type System struct {
	sys *actor.ActorSystem
}

// NewSystem starts an actor runtime. protoactor's own logging is routed to a
// discarded logger: its default is noisy and the node logs what matters.
func NewSystem() *System {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := actor.Configure(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	return &System{sys: actor.NewActorSystemWithConfig(cfg)}
}

// Ref addresses an actor.
type Ref struct {
	pid *actor.PID
	sys *System
}

// PID exposes the library address to actor code that sends from inside a
// Receive (context methods need it). Only packages under actors/ use it.
func (r Ref) PID() *actor.PID { return r.pid }

// Valid reports whether the ref points at a spawned actor.
func (r Ref) Valid() bool { return r.pid != nil }

// Tell sends msg without waiting.
func (r Ref) Tell(msg any) { r.sys.sys.Root.Send(r.pid, msg) }

// Ask sends msg and waits for the reply, bounded by ctx's deadline (or
// DefaultAskTimeout).
func (r Ref) Ask(ctx context.Context, msg any) (any, error) {
	timeout := DefaultAskTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, context.DeadlineExceeded
		}
	}
	f := r.sys.sys.Root.RequestFuture(r.pid, msg, timeout)
	res, err := f.Result()
	if err != nil {
		if errors.Is(err, actor.ErrTimeout) {
			return nil, fmt.Errorf("ask %T: %w", msg, context.DeadlineExceeded)
		}
		return nil, fmt.Errorf("ask %T: %w", msg, err)
	}
	if _, dead := res.(*actor.DeadLetterResponse); dead {
		return nil, fmt.Errorf("ask %T: %w", msg, ErrStopped)
	}
	return res, nil
}

// AskFor is Ask with the reply's type checked: T is the request's *XResult.
// A reply of any other type is an error naming both types (a programming
// error between two actors, reported rather than panicking a caller).
func AskFor[T any](ctx context.Context, r Ref, msg any) (T, error) {
	return Reply[T](r.Ask(ctx, msg))
}

// Reply checks a reply that arrived some other way (a future continued with
// ReenterAfter inside an actor): err is the future's error, passed through;
// a nil or mistyped reply is an error.
func Reply[T any](res any, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	t, ok := res.(T)
	if !ok {
		return zero, fmt.Errorf("%w: got %T, want %T", ErrBadReply, res, zero)
	}
	return t, nil
}

// ErrBadReply means an actor answered with a type its request does not
// name: two actors disagree about the vocabulary in messages/.
var ErrBadReply = errors.New("unexpected reply type")

// Spawn starts an actor under the root with the given name. Its supervisor
// restarts it when it panics (the library's default one-for-one strategy),
// so a crashing tier comes back with its Started handler re-run.
func (s *System) Spawn(name string, producer func() actor.Actor) (Ref, error) {
	props := actor.PropsFromProducer(producer, actor.WithSupervisor(restartStrategy))
	pid, err := s.sys.Root.SpawnNamed(props, name)
	if err != nil {
		return Ref{}, fmt.Errorf("spawn %s: %w", name, err)
	}
	return Ref{pid: pid, sys: s}, nil
}

// restartStrategy restarts a failing actor up to 10 times a minute; past that
// it stays stopped and Asks to it fail fast (the router treats that as a miss).
var restartStrategy = actor.NewOneForOneStrategy(10, time.Minute, actor.DefaultDecider)

// RefOf wraps a library PID (from inside actor code) as a Ref.
func (s *System) RefOf(pid *actor.PID) Ref { return Ref{pid: pid, sys: s} }

// Send delivers msg to pid from outside any actor (a worker goroutine
// replying on behalf of an actor).
func (s *System) Send(pid *actor.PID, msg any) { s.sys.Root.Send(pid, msg) }

// Stop stops an actor and waits until its Stopping handler ran. Shutting the
// library system down does not stop actors, so the node stops each itself.
func (s *System) Stop(r Ref) {
	if r.pid == nil {
		return
	}
	_ = s.sys.Root.StopFuture(r.pid).Wait()
}

// Shutdown releases the runtime after all actors were stopped.
func (s *System) Shutdown() { s.sys.Shutdown() }
