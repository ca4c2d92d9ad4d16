package node

import (
	"net"
	"net/http"
	"testing"

	"github.com/tuist/fabrik-node/config"
)

// The BuildKit registry cache answers /v2/ on the shared HTTP listener by
// default, and on a listener of its own with [build_tools.buildkit]
// bind = "host:port".
func TestBuildkitRegistry(t *testing.T) {
	status := func(addr string) int {
		t.Helper()
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
			t.Fatalf("%s/v2/ lacks Docker-Distribution-API-Version", addr)
		}
		return resp.StatusCode
	}
	shared := startNode(t, config.RoleEdge, testConfig(t, config.RoleEdge, t.TempDir()))
	if got := status(shared.Addr("http")); got != http.StatusOK {
		t.Fatalf("GET /v2/ on the shared listener: %d", got)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.BuildTools.Buildkit = config.ToolConfig{Bind: addr}
	own := startNode(t, config.RoleEdge, c)
	if got := own.Addr("buildkit"); got != addr {
		t.Fatalf("buildkit listens on %q, want %q", got, addr)
	}
	if got := status(addr); got != http.StatusOK {
		t.Fatalf("GET /v2/ on its own listener: %d", got)
	}
	if got := status(own.Addr("http")); got != http.StatusNotFound {
		t.Fatalf("GET /v2/ on the shared listener with its own: %d", got)
	}
}
