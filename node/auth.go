package node

import (
	"time"

	"google.golang.org/grpc/keepalive"

	"errors"
	"fmt"
	"github.com/tuist/fabrik-node/limits"
	"net/http"
	"strings"

	"google.golang.org/grpc"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/config"
)

// scopeOf maps an adapter's access to the JWT scope it needs.
var scopeOf = [...]auth.Scope{adapters.Read: auth.Read, adapters.Write: auth.Write, adapters.Admin: auth.Admin}

// startAuth builds the one authenticator every protocol shares and the
// token source that presents this node's own token to its upstreams (never
// the build tool's token).
func (n *Node) startAuth() error {
	a, err := auth.New(n.cfg.Auth, n.log)
	if err != nil {
		return err
	}
	n.authn = a
	a.Observe(n.countRefusal)
	n.closers = append(n.closers, func() { a.Close() })
	n.upstreamCreds = a.Tokens().Credentials()
	return nil
}

// guard returns the adapters.Guard for a protocol; errorWriter shapes the
// 401/403 body the way that protocol's clients expect (nil: text/plain).
func (n *Node) guard(errorWriter auth.ErrorWriter) adapters.Guard {
	if !n.authn.Enabled() {
		return nil
	}
	opts := []auth.HTTPOption{auth.BasicChallenge()}
	if errorWriter != nil {
		opts = append(opts, auth.WithErrorWriter(errorWriter))
	}
	return func(acc adapters.Access, h http.Handler) http.Handler {
		return n.authn.Require(scopeOf[acc], h, opts...)
	}
}

// apiGuard protects /metrics and /api/v1: on by default whenever auth is,
// and api_auth_required can force it either way.
func (n *Node) apiGuard() (adapters.Guard, error) {
	obs := n.cfg.Observability
	if obs.APIAuthRequired != nil && !*obs.APIAuthRequired {
		return nil, nil
	}
	if obs.APIJWTPublicKeyFile == "" {
		return n.guard(nil), nil
	}
	// Tuist's API tokens may be signed by a key of their own.
	on := true
	a, err := auth.New(config.AuthConfig{
		PublicKeyFile: obs.APIJWTPublicKeyFile, Required: &on,
		KeyRefreshInterval: n.cfg.Auth.KeyRefreshInterval, Leeway: n.cfg.Auth.Leeway,
	}, n.log)
	if err != nil {
		return nil, fmt.Errorf("api_jwt_public_key_file: %w", err)
	}
	a.Observe(n.countRefusal)
	n.closers = append(n.closers, func() { a.Close() })
	return func(acc adapters.Access, h http.Handler) http.Handler {
		return a.Require(scopeOf[acc], h, auth.BasicChallenge())
	}, nil
}

// maxStreamsPerConn bounds the streams one gRPC connection may have open,
// so a single client cannot take the whole listener's request budget.
const maxStreamsPerConn = 1000

// grpcServerOptions are the options every gRPC listener of the node shares:
// the auth tap and interceptors (reads and writes told apart by method
// name), the listener's request bound, and a keepalive policy: the server
// pings idle connections so load balancers and NATs do not silently drop
// them, closes connections with no stream for 5 x idle_timeout (clients
// reconnect transparently), and tolerates client pings every 10 s or more
// (Bazel's --grpc_keepalive_time, edges' upstream connections).
func (n *Node) grpcServerOptions(listener string) []grpc.ServerOption {
	rt := n.cfg.Runtime
	opts := []grpc.ServerOption{
		grpc.MaxConcurrentStreams(maxStreamsPerConn),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: 5 * rt.IdleTimeout.D(),
			Time:              time.Minute,
			Timeout:           20 * time.Second,
		}),
	}
	opts = append(opts, limits.NewRequests(listener, rt.MaxConcurrentRequests, n.log).GRPCServerOptions()...)
	if !n.authn.Enabled() {
		return opts
	}
	return append(opts, n.authn.GRPCServerOptions(grpcScope)...)
}

// countRefusal counts refused requests in fabrik_auth_refused_total, so an
// operator sees a misconfigured edge (no or a stale machine token) or a
// probing client on the dashboard, not only in logs. Labels stay low
// cardinality: why, and the scope that was needed.
func (n *Node) countRefusal(need auth.Scope, _ auth.Principal, err error) {
	if err == nil {
		return
	}
	reason := "unauthenticated"
	if errors.Is(err, auth.ErrForbidden) {
		reason = "forbidden"
	}
	n.metrics.Counter(fmt.Sprintf(`fabrik_auth_refused_total{reason=%q,need=%q}`, reason, string(need))).Inc()
}

// grpcScope classifies the RPCs of the Fabrik protocol and of REAPI. Reads
// are listed and everything else needs cache:write, so a method added to a
// service later (REAPI's SpliceBlob stores a blob) fails closed instead of
// being open to read-only tokens.
func grpcScope(fullMethod string) auth.Scope {
	if strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") {
		return auth.Public
	}
	method := fullMethod[strings.LastIndex(fullMethod, "/")+1:]
	switch method {
	case "Exists", "Get", "GetStats", // Fabrik protocol
		"GetCapabilities", "FindMissingBlobs", "BatchReadBlobs", "GetTree", "SplitBlob", "GetChunkMapping", // REAPI CAS
		"GetActionResult",          // REAPI action cache
		"Read", "QueryWriteStatus": // ByteStream
		return auth.Read
	case "Delete": // Fabrik: removing what other edges rely on is an operator's act
		return auth.Admin
	}
	return auth.Write
}
