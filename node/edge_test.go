package node

import (
	"net/http"
	"strings"
	"testing"

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
