package node

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"github.com/tuist/fabrik-node/actors/listener"
	"github.com/tuist/fabrik-node/adapters/fabrikgrpc"
	"github.com/tuist/fabrik-node/tier/fabrik"
)

// startFabrik serves the Fabrik protocol: always on a regional node, and on
// an edge when [fabrik] enabled = true (an office node other edges use).
func (n *Node) startFabrik(grace time.Duration) error {
	srv := fabrikgrpc.NewServer(n.cache, fabrikgrpc.Options{
		Logger:          n.log,
		MaxArtifactSize: int64(n.cfg.Cache.MaxArtifactSize),
		Stats:           n,
		Metrics:         n.metrics,
	}, append(n.grpcServerOptions("fabrik"),
		grpc.InitialWindowSize(fabrik.StreamWindow), grpc.InitialConnWindowSize(fabrik.ConnWindow))...)
	return n.serve("fabrik", n.cfg.Fabrik.Bind, listener.GRPC{Server: srv}, grace)
}

// CacheStats reports the local store's totals (GetStats over the Fabrik
// protocol).
func (n *Node) CacheStats(context.Context) (objects, bytes int64, err error) {
	bytes, objects = n.store.Usage()
	return objects, bytes, nil
}
