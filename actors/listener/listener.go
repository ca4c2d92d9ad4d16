// Package listener is the actor that owns one network listener and the
// server behind it (an adapter's HTTP or gRPC server, health, the API).
// Started begins serving; Stopping drains in-flight requests within the
// grace period, then closes. One place to acquire, one to release.
package listener

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/grpc"
)

// Server is what a listener actor runs.
type Server interface {
	Serve(net.Listener) error
	// Shutdown stops accepting and waits for in-flight requests until ctx ends.
	Shutdown(ctx context.Context) error
}

// Actor owns ln and srv.
type Actor struct {
	name  string
	ln    net.Listener
	srv   Server
	grace time.Duration
	log   *slog.Logger
}

// New returns a producer for a listener actor. The node opens ln itself so
// that it knows the bound address (port 0 in tests) before the actor runs.
func New(name string, ln net.Listener, srv Server, grace time.Duration, log *slog.Logger) func() actor.Actor {
	return func() actor.Actor { return &Actor{name: name, ln: ln, srv: srv, grace: grace, log: log} }
}

// Receive handles lifecycle messages.
func (a *Actor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		a.log.Info("listening", "listener", a.name, "addr", a.ln.Addr().String())
		go func() {
			err := a.srv.Serve(a.ln)
			if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, net.ErrClosed) {
				a.log.Error("listener stopped serving", "listener", a.name, "err", err)
			}
		}()
	case *actor.Stopping:
		c, cancel := context.WithTimeout(context.Background(), a.grace)
		defer cancel()
		if err := a.srv.Shutdown(c); err != nil {
			a.log.Warn("listener did not drain in time", "listener", a.name, "err", err)
		}
	}
}

// GRPC adapts a *grpc.Server to Server: GracefulStop bounded by ctx.
type GRPC struct{ *grpc.Server }

// Shutdown drains in-flight RPCs, then forces the rest closed at the deadline.
func (g GRPC) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		g.Stop()
		return ctx.Err()
	}
}
