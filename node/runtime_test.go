package node

import (
	"net/http"
	"testing"

	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/config"
)

func httpStatus(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// observability.api_jwt_public_key_file: the API port trusts its own key,
// the cache ports the [auth] keys.
func TestAPIPortHasItsOwnKey(t *testing.T) {
	cacheKeys, apiKeys := authtest.New(t), authtest.New(t)
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Auth.PublicKeyFile = cacheKeys.File()
	c.Observability.APIJWTPublicKeyFile = apiKeys.File()
	n := startNode(t, config.RoleEdge, c)
	metrics := "http://" + n.Addr("api") + "/metrics"
	if got := httpStatus(t, metrics, apiKeys.Token(t, authtest.Scopes("cache:read"))); got != 200 {
		t.Fatalf("/metrics with an API-key token: %d, want 200", got)
	}
	if got := httpStatus(t, metrics, cacheKeys.Token(t, authtest.Scopes("cache:read"))); got != 401 {
		t.Fatalf("/metrics with a cache-key token: %d, want 401", got)
	}
	gradle := "http://" + n.Addr("http") + "/cache/" + key1
	if got := httpStatus(t, gradle, cacheKeys.Token(t, authtest.Scopes("cache:read"))); got != 404 {
		t.Fatalf("Gradle GET with a cache-key token: %d, want 404 (authorized miss)", got)
	}
}

// observability.health_enabled = false: no health listener at all.
func TestHealthCanBeDisabled(t *testing.T) {
	c := testConfig(t, config.RoleEdge, t.TempDir())
	off := false
	c.Observability.HealthEnabled = &off
	n := startNode(t, config.RoleEdge, c)
	if addr := n.Addr("health"); addr != "" {
		t.Fatalf("health listener on %s although disabled", addr)
	}
}
