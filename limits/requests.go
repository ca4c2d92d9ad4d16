package limits

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Requests bounds the requests in flight on one listener.
type Requests struct {
	name     string
	max      int64
	inFlight atomic.Int64
	log      *Once
}

// NewRequests returns a bound of max requests (max <= 0: no limit) for the
// listener called name.
func NewRequests(name string, max int, log *slog.Logger) *Requests {
	return &Requests{name: name, max: int64(max), log: NewOnce(log, 0)}
}

func (r *Requests) enter() bool {
	if r == nil || r.max <= 0 {
		return true
	}
	if r.inFlight.Add(1) > r.max {
		r.inFlight.Add(-1)
		r.log.Warn(r.name, "request refused: too many requests in flight (runtime.max_concurrent_requests)", "listener", r.name, "max", r.max)
		return false
	}
	return true
}

func (r *Requests) leave() {
	if r != nil && r.max > 0 {
		r.inFlight.Add(-1)
	}
}

// InFlight is the number of requests being served now.
func (r *Requests) InFlight() int64 { return r.inFlight.Load() }

// Wrap answers 503 with Retry-After past the bound; clients (Gradle, turbo,
// the AWS SDKs, docker clients) retry it.
func (r *Requests) Wrap(h http.Handler) http.Handler {
	if r == nil || r.max <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !r.enter() {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "server busy: too many requests in flight", http.StatusServiceUnavailable)
			return
		}
		defer r.leave()
		h.ServeHTTP(w, req)
	})
}

// busy is the gRPC answer past the bound: UNAVAILABLE is what gRPC
// clients (Bazel included) retry with backoff.
var busy = status.Error(codes.Unavailable, "server busy: too many requests in flight")

// GRPCServerOptions bound unary and streaming calls.
func (r *Requests) GRPCServerOptions() []grpc.ServerOption {
	if r == nil || r.max <= 0 {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if !r.enter() {
				return nil, busy
			}
			defer r.leave()
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if !r.enter() {
				return busy
			}
			defer r.leave()
			return h(srv, ss)
		}),
	}
}
