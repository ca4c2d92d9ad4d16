package node

import (
	"net/http"
	"strings"

	"google.golang.org/grpc"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/auth"
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
func (n *Node) apiGuard() adapters.Guard {
	req := n.cfg.Observability.APIAuthRequired
	if req != nil && !*req {
		return nil
	}
	return n.guard(nil)
}

// grpcServerOptions are the options every gRPC listener of the node shares:
// the auth interceptors, with reads and writes told apart by method name.
func (n *Node) grpcServerOptions() []grpc.ServerOption {
	if !n.authn.Enabled() {
		return nil
	}
	return n.authn.GRPCServerOptions(grpcScope)
}

// grpcScope classifies the RPCs of the Fabrik protocol and of REAPI.
func grpcScope(fullMethod string) auth.Scope {
	if strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") {
		return auth.Public
	}
	method := fullMethod[strings.LastIndex(fullMethod, "/")+1:]
	switch method {
	case "Put", "Delete", "BatchUpdateBlobs", "UpdateActionResult", "Write":
		return auth.Write
	}
	return auth.Read
}
