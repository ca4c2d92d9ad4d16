package node

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/config"
)

// A base URL configured with a trailing slash makes clients send "//v8/...":
// it must reach the adapter, not a redirect that a streaming upload cannot
// follow.
func TestDoubleSlashReachesAdapter(t *testing.T) {
	n := startNode(t, config.RoleEdge, testConfig(t, config.RoleEdge, t.TempDir()))
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodPut, "http://"+n.Addr("http")+"//v8/artifacts/abcdef0123", strings.NewReader("payload"))
	req.Header.Set("Authorization", "Bearer x")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT //v8/artifacts/...: %s, want 2xx", resp.Status)
	}
	resp, err = client.Get("http://" + n.Addr("http") + "//v8/artifacts/abcdef0123")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET //v8/artifacts/...: %s, want 200", resp.Status)
	}
}

// [build_tools.<tool>] port gives an adapter a listener of its own; the
// others stay on the shared one.
func TestToolWithItsOwnPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.BuildTools.Nx = config.ToolConfig{Port: port}
	n := startNode(t, config.RoleEdge, c)
	if got, want := n.Addr("nx"), net.JoinHostPort("127.0.0.1", strconv.Itoa(port)); got != want {
		t.Fatalf("nx listens on %q, want %q", got, want)
	}
	for _, tc := range []struct {
		addr, path string
		want       int
	}{
		{n.Addr("nx"), "/v1/cache/123", http.StatusNotFound},    // Nx on its own port
		{n.Addr("nx"), "/cache/" + key1, http.StatusNotFound},   // not Gradle's route there
		{n.Addr("http"), "/cache/" + key1, http.StatusNotFound}, // Gradle stays shared
		{n.Addr("http"), "/v8/artifacts/status", http.StatusOK}, // and Turborepo
		{n.Addr("http"), "/v1/cache/123", http.StatusNotFound},  // Nx moved away
	} {
		resp, err := http.Get("http://" + tc.addr + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s%s: %d %s, want %d", tc.addr, tc.path, resp.StatusCode, body, tc.want)
		}
	}
	// A 404 from Nx's own handler says so in text; the mux's says "404 page not found".
	resp, _ := http.Get("http://" + n.Addr("http") + "/v1/cache/123")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "page not found") {
		t.Errorf("shared listener still routes Nx: %q", body)
	}
}

// Each HTTP adapter is an actor owning its mount on the shared front:
// stopping one removes its routes and leaves the others serving.
func TestAdapterActorOwnsItsRoutes(t *testing.T) {
	n := startNode(t, config.RoleEdge, testConfig(t, config.RoleEdge, t.TempDir()))
	get := func(path string) int {
		resp, err := http.Get("http://" + n.Addr("http") + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/v1/cache/123"); code != http.StatusNotFound {
		t.Fatalf("Nx before: %d", code)
	}
	var nxRef actors.Ref
	for _, ref := range n.adapterRefs {
		if strings.HasSuffix(ref.PID().Id, "adapter-nx") {
			nxRef = ref
		}
	}
	if !nxRef.Valid() {
		t.Fatal("no adapter-nx actor")
	}
	n.sys.Stop(nxRef)
	resp, _ := http.Get("http://" + n.Addr("http") + "/v1/cache/123")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "page not found") {
		t.Fatalf("Nx routes still mounted after its actor stopped: %q", body)
	}
	if code := get("/v8/artifacts/status"); code != http.StatusOK {
		t.Fatalf("Turborepo stopped serving with Nx: %d", code)
	}
}
