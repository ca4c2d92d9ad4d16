package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/adapter"
	"github.com/tuist/fabrik-node/actors/listener"
	"github.com/tuist/fabrik-node/adapters/bazel"
	"github.com/tuist/fabrik-node/adapters/gradle"
	"github.com/tuist/fabrik-node/adapters/httpfront"
	"github.com/tuist/fabrik-node/adapters/nx"
	"github.com/tuist/fabrik-node/adapters/turbo"
	"github.com/tuist/fabrik-node/config"
)

// startEdgeAdapters gives each enabled HTTP adapter an actor that mounts
// its routes on the shared HTTP front (or on a front of its own when
// [build_tools.<tool>] sets a port), then starts the listeners, and serves
// Bazel's REAPI on the gRPC listener.
func (n *Node) startEdgeAdapters(grace time.Duration) error {
	bt := n.cfg.BuildTools
	maxSize := int64(n.cfg.Cache.MaxArtifactSize)
	httpAdapters := []struct {
		name string
		tool config.ToolConfig
		make func() httpfront.Routes
	}{
		{"gradle", bt.Gradle, func() httpfront.Routes {
			return gradle.New(n.cache, gradle.Options{MaxArtifactSize: maxSize, Guard: n.guard(nil), Metrics: n.metrics, Logger: n.log})
		}},
		{"nx", bt.Nx, func() httpfront.Routes {
			return nx.New(n.cache, nx.Options{MaxArtifactSize: maxSize, Guard: n.guard(authErrorWriter(nx.WriteAuthError)), Metrics: n.metrics, Logger: n.log})
		}},
		{"turborepo", bt.Turborepo, func() httpfront.Routes {
			return turbo.New(n.cache, turbo.Options{MaxArtifactSize: maxSize, Guard: n.guard(authErrorWriter(turbo.WriteAuthError)), Metrics: n.metrics, Logger: n.log})
		}},
	}
	shared := httpfront.New()
	sharedUsed := false
	for _, a := range httpAdapters {
		if !slices.Contains(bt.Enabled, a.name) {
			continue
		}
		front, listenerName, addr := shared, "http", bt.HTTPBind
		if a.tool.Port != 0 {
			front, listenerName, addr = httpfront.New(), a.name, toolAddr(a.tool)
		} else {
			sharedUsed = true
		}
		if err := n.mountAdapter(a.name, a.make(), front); err != nil {
			return err
		}
		if front != shared {
			if err := n.serveHTTP(listenerName, addr, front, grace); err != nil {
				return err
			}
		}
	}
	if sharedUsed {
		if err := n.serveHTTP("http", bt.HTTPBind, shared, grace); err != nil {
			return err
		}
	}
	if slices.Contains(bt.Enabled, "bazel") {
		addr := bt.GRPCBind
		if bt.Bazel.Port != 0 {
			addr = toolAddr(bt.Bazel)
		}
		return n.startBazel(addr, grace)
	}
	return nil
}

// mountAdapter spawns the adapter's actor and waits until its routes are
// mounted, so no listener serves before its adapters are in place.
func (n *Node) mountAdapter(name string, routes httpfront.Routes, front *httpfront.Front) error {
	ref, err := n.sys.Spawn("adapter-"+name, adapter.New(name, routes, front))
	if err != nil {
		return err
	}
	// Adapters stop right after the listeners have drained, before the router.
	n.adapterRefs = append(n.adapterRefs, ref)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if res, err := actors.AskFor[*adapter.MountedResult](ctx, ref, &adapter.Mounted{}); err != nil || !res.Mounted {
		return fmt.Errorf("adapter %s did not mount: %v", name, err)
	}
	return nil
}

// toolAddr is the address of an adapter with its own port.
func toolAddr(t config.ToolConfig) string {
	bind := t.Bind
	if bind == "" {
		bind = "127.0.0.1"
	}
	return net.JoinHostPort(bind, strconv.Itoa(t.Port))
}

// startBazel serves REAPI on addr. The message limit leaves room above the
// batch limit the adapter advertises, so a full batch always fits.
func (n *Node) startBazel(addr string, grace time.Duration) error {
	opts := append([]grpc.ServerOption{grpc.MaxRecvMsgSize(bazel.DefaultMaxBatchBytes + 1<<20)}, n.grpcServerOptions()...)
	srv := grpc.NewServer(opts...)
	b := bazel.Register(srv, n.cache, bazel.Options{Metrics: n.metrics, Logger: n.log})
	n.closers = append(n.closers, func() { b.Shutdown() })
	return n.serve("grpc", addr, listener.GRPC{Server: srv}, grace)
}

// authErrorWriter adapts a protocol's own error writer to the auth layer's.
func authErrorWriter(write func(w http.ResponseWriter, status int, msg string)) func(http.ResponseWriter, *http.Request, int, error) {
	return func(w http.ResponseWriter, _ *http.Request, status int, err error) {
		if err == nil {
			err = errors.New(http.StatusText(status))
		}
		write(w, status, err.Error())
	}
}
