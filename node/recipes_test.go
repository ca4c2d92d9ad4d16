package node

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/recipe/backend"
)

// An edge serves the recipes API on its HTTP listener by default, even
// with no build tool enabled, stores through its cache, and stops serving
// it with [recipes] enabled = false.
func TestEdgeServesRecipesAPI(t *testing.T) {
	cfg := testConfig(t, config.RoleEdge, t.TempDir())
	cfg.BuildTools.Enabled = nil
	n := startNode(t, config.RoleEdge, cfg)
	b := backend.NewHTTP("http://"+n.Addr("http"), "")
	ctx := context.Background()
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, backend.Runs, "k.run", bytes.NewReader([]byte("record")), 6); err != nil {
		t.Fatal(err)
	}
	res, err := n.Cache().Stat(ctx, refOf(t, "k.run"))
	if err != nil || !res.Found || res.Meta.Size != 6 {
		t.Fatalf("stat through the node's cache: %+v %v", res, err)
	}

	off := false
	cfg2 := testConfig(t, config.RoleEdge, t.TempDir())
	cfg2.Recipes.Enabled = &off
	n2 := startNode(t, config.RoleEdge, cfg2)
	resp, err := http.Get("http://" + n2.Addr("http") + "/recipes/v1/ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("recipes API with enabled = false: %s", resp.Status)
	}
}

func refOf(t *testing.T, key string) messages.Ref {
	t.Helper()
	ns, err := backend.Runs.Namespace()
	if err != nil {
		t.Fatal(err)
	}
	return messages.Ref{Namespace: ns, Key: key}
}
