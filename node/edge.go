package node

import (
	"net/http"
	"slices"
	"time"

	"google.golang.org/grpc"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/adapters/gradle"
)

// startEdgeAdapters hosts the enabled HTTP adapters on the shared HTTP
// listener; each registers its own routes without knowing the others.
func (n *Node) startEdgeAdapters(guard adapters.Guard, grace time.Duration) error {
	bt := n.cfg.BuildTools
	enabled := func(name string) bool { return slices.Contains(bt.Enabled, name) }
	mux := http.NewServeMux()
	if enabled("gradle") {
		gradle.New(n.cache, gradle.Options{
			MaxArtifactSize: int64(n.cfg.Cache.MaxArtifactSize),
			Guard:           guard,
			Metrics:         n.metrics,
			Logger:          n.log,
		}).Routes(mux)
	}
	return n.serveHTTP("http", bt.HTTPBind, mux, grace)
}

// grpcServerOptions are the options every gRPC listener of the node shares
// (auth interceptors, message limits).
func (n *Node) grpcServerOptions() []grpc.ServerOption {
	return nil
}
