package node

import (
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/tuist/fabrik-node/actors/listener"
	"github.com/tuist/fabrik-node/adapters/bazel"
	"github.com/tuist/fabrik-node/adapters/gradle"
	"github.com/tuist/fabrik-node/adapters/nx"
	"github.com/tuist/fabrik-node/adapters/turbo"
	"github.com/tuist/fabrik-node/config"
)

// routes is an HTTP adapter's route registration.
type routes interface{ Routes(*http.ServeMux) }

// startEdgeAdapters hosts the enabled HTTP adapters on the shared HTTP
// listener (each registers its own routes without knowing the others), or
// on a listener of their own when [build_tools.<tool>] sets a port, and
// Bazel's REAPI on the gRPC listener.
func (n *Node) startEdgeAdapters(grace time.Duration) error {
	bt := n.cfg.BuildTools
	maxSize := int64(n.cfg.Cache.MaxArtifactSize)
	httpAdapters := []struct {
		name string
		tool config.ToolConfig
		make func() routes
	}{
		{"gradle", bt.Gradle, func() routes {
			return gradle.New(n.cache, gradle.Options{MaxArtifactSize: maxSize, Guard: n.guard(nil), Metrics: n.metrics, Logger: n.log})
		}},
		{"nx", bt.Nx, func() routes {
			return nx.New(n.cache, nx.Options{MaxArtifactSize: maxSize, Guard: n.guard(authErrorWriter(nx.WriteAuthError)), Metrics: n.metrics, Logger: n.log})
		}},
		{"turborepo", bt.Turborepo, func() routes {
			return turbo.New(n.cache, turbo.Options{MaxArtifactSize: maxSize, Guard: n.guard(authErrorWriter(turbo.WriteAuthError)), Metrics: n.metrics, Logger: n.log})
		}},
	}
	shared, sharedUsed := http.NewServeMux(), false
	for _, a := range httpAdapters {
		if !slices.Contains(bt.Enabled, a.name) {
			continue
		}
		if a.tool.Port == 0 {
			a.make().Routes(shared)
			sharedUsed = true
			continue
		}
		own := http.NewServeMux()
		a.make().Routes(own)
		if err := n.serveHTTP(a.name, toolAddr(a.tool), collapseSlashes(own), grace); err != nil {
			return err
		}
	}
	if sharedUsed {
		if err := n.serveHTTP("http", bt.HTTPBind, collapseSlashes(shared), grace); err != nil {
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

// collapseSlashes rewrites "//v8/artifacts/x" to "/v8/artifacts/x" before
// routing. Users who configure a base URL with a trailing slash make their
// clients send double slashes, and ServeMux would answer with a redirect
// that clients streaming an upload (turbo) cannot replay.
func collapseSlashes(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "//") {
			p := r.URL.Path
			for strings.Contains(p, "//") {
				p = strings.ReplaceAll(p, "//", "/")
			}
			r2 := *r
			u := *r.URL
			u.Path, u.RawPath = p, ""
			r2.URL = &u
			r = &r2
		}
		h.ServeHTTP(w, r)
	})
}
