package node

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/messages"
)

// A default edge on loopback cannot be written by a web page: a foreign
// Host (DNS rebinding) and a foreign Origin are refused and store nothing,
// no answer carries a wildcard CORS header, and an origin on the allow-list
// is let through with its own name.
func TestBrowserCannotWriteToADefaultEdge(t *testing.T) {
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Runtime.CORSAllowedOrigins = []string{"https://dash.example"}
	n := startNode(t, config.RoleEdge, c)
	put := func(key, host, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, "http://"+n.Addr("http")+"/cache/"+key, bytes.NewReader([]byte("body")))
		if host != "" {
			req.Host = host
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	const a, b, d = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "dddddddddddddddddddddddddddddddd"
	if resp := put(a, "attacker.example:5071", ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("rebound Host: %d, want 403", resp.StatusCode)
	}
	if resp := put(b, "", "https://attacker.example"); resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign Origin: %d ACAO %q, want 403 and none", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	for _, k := range []string{a, b} {
		if localHas(n, messages.Ref{Namespace: "gradle", Key: k}) {
			t.Errorf("%s was stored", k)
		}
	}
	if resp := put(d, "", "https://dash.example"); resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://dash.example" {
		t.Errorf("allowed origin: %d ACAO %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	req, _ := http.NewRequest(http.MethodOptions, "http://"+n.Addr("http")+"/v8/artifacts/abc", nil)
	req.Header.Set("Origin", "https://attacker.example")
	req.Header.Set("Access-Control-Request-Method", "PUT")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Errorf("preflight from a foreign origin allowed with %q", v)
	}
}
