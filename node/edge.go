package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/adapter"
	"github.com/tuist/fabrik-node/actors/listener"
	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/adapters/bazel"
	"github.com/tuist/fabrik-node/adapters/ccache"
	"github.com/tuist/fabrik-node/adapters/gocache"
	"github.com/tuist/fabrik-node/adapters/gradle"
	"github.com/tuist/fabrik-node/adapters/httpfront"
	"github.com/tuist/fabrik-node/adapters/nx"
	"github.com/tuist/fabrik-node/adapters/oci"
	"github.com/tuist/fabrik-node/adapters/recipes"
	"github.com/tuist/fabrik-node/adapters/turbo"
	"github.com/tuist/fabrik-node/adapters/webdav"
	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/recipe/backend"
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
		// sccache's WebDAV backend always shares the HTTP listener
		// ([build_tools.sccache] bind/port belong to its S3 API).
		{"sccache", config.ToolConfig{}, func() httpfront.Routes {
			return webdav.New(n.cache, webdav.Options{MaxArtifactSize: maxSize, Guard: n.guard(nil), Metrics: n.metrics, Logger: n.log})
		}},
		{"ccache", bt.Ccache, func() httpfront.Routes {
			return ccache.New(n.cache, ccache.Options{MaxArtifactSize: maxSize, Guard: n.guard(nil), Metrics: n.metrics, Logger: n.log})
		}},
		{"buildkit", bt.Buildkit, func() httpfront.Routes {
			a := oci.New(n.cache, oci.Options{HTTPOptions: adapters.HTTPOptions{MaxArtifactSize: maxSize, Guard: n.guard(authErrorWriter(oci.WriteAuthError)), Metrics: n.metrics, Logger: n.log}})
			n.closers = append(n.closers, a.Close)
			return a
		}},
		{"gocache", bt.Gocache, func() httpfront.Routes {
			return gocache.New(n.cache, gocache.Options{MaxArtifactSize: maxSize, Guard: n.guard(nil), Metrics: n.metrics, Logger: n.log})
		}},
	}
	shared := httpfront.New()
	sharedUsed := false
	for _, a := range httpAdapters {
		if !slices.Contains(bt.Enabled, a.name) {
			continue
		}
		front, listenerName, addr := shared, "http", bt.HTTPBind
		if a.tool.Port != 0 || hasPort(a.tool.Bind) {
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
	// The recipes API is not a build tool: [recipes] enabled turns it on
	// (default), and it shares the HTTP listener of the build tools.
	if n.cfg.Recipes.ServeAPI() && bt.HTTPBind != "" {
		routes := recipes.New(n.cache, recipes.Options{HTTPOptions: adapters.HTTPOptions{MaxArtifactSize: maxSize, Guard: n.guard(nil), Metrics: n.metrics, Logger: n.log},
			LedgerPath: filepath.Join(n.cfg.Cache.Dir, backend.LedgerFile)})
		if err := n.mountAdapter("recipes", routes, shared); err != nil {
			return err
		}
		sharedUsed = true
	}
	if sharedUsed {
		if err := n.serveHTTP("http", bt.HTTPBind, shared, grace); err != nil {
			return err
		}
	}
	if slices.Contains(bt.Enabled, "sccache") {
		if err := n.startS3(grace); err != nil {
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
	if hasPort(t.Bind) {
		return t.Bind // bind = "host:port" (the buildkit registry's own listener)
	}
	bind := t.Bind
	if bind == "" {
		bind = "127.0.0.1"
	}
	return net.JoinHostPort(bind, strconv.Itoa(t.Port))
}

// hasPort reports whether a tool's bind is a whole address ("host:port").
func hasPort(bind string) bool {
	_, port, err := net.SplitHostPort(bind)
	return err == nil && port != ""
}

// startBazel serves REAPI on addr. The message limit leaves room above the
// batch limit the adapter advertises, so a full batch always fits. Stream
// workers (one per CPU) run the short unary calls Bazel makes most
// (FindMissingBlobs, GetActionResult) on goroutines whose stacks have
// already grown, instead of a new goroutine per call; when every worker is
// busy gRPC still starts one.
func (n *Node) startBazel(addr string, grace time.Duration) error {
	opts := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(bazel.DefaultMaxBatchBytes + 1<<20),
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
	}, bazel.ServerOptions()...)
	opts = append(opts, n.grpcServerOptions("grpc")...)
	srv := grpc.NewServer(opts...)
	b := bazel.Register(srv, n.cache, bazel.Options{MaxArtifactSize: int64(n.cfg.Cache.MaxArtifactSize), Metrics: n.metrics, Logger: n.log})
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
