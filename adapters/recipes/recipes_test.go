package recipes

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/recipe/backend"
)

// The CLI's HTTP backend against the adapter: put, has, get, delete, the
// ledger, and refusals of bad spaces and keys.
func TestHTTPBackendRoundTrip(t *testing.T) {
	mux := http.NewServeMux()
	New(cachetest.New(t), Options{LedgerPath: filepath.Join(t.TempDir(), "ledger.jsonl")}).Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	b := backend.NewHTTP(srv.URL, "")
	ctx := context.Background()
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, found, err := b.Has(ctx, backend.Runs, "k1.run"); err != nil || found {
		t.Fatalf("has before put: %v %v", found, err)
	}
	body := bytes.Repeat([]byte("recipe "), 1000)
	if err := b.Put(ctx, backend.Runs, "k1.run", bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	if n, found, err := b.Has(ctx, backend.Runs, "k1.run"); err != nil || !found || n != int64(len(body)) {
		t.Fatalf("has: %d %v %v", n, found, err)
	}
	rc, n, found, err := b.Get(ctx, backend.Runs, "k1.run")
	if err != nil || !found || n != int64(len(body)) {
		t.Fatalf("get: %d %v %v", n, found, err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, body) {
		t.Fatal("get returned different bytes")
	}
	// Spaces are separate namespaces.
	if _, found, _ := b.Has(ctx, backend.KV, "k1.run"); found {
		t.Fatal("kv space sees a runs entry")
	}
	if err := b.Delete(ctx, backend.Runs, "k1.run"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := b.Has(ctx, backend.Runs, "k1.run"); found {
		t.Fatal("entry survived delete")
	}
	ev := backend.Event{Time: time.Now().UTC().Truncate(time.Second), Kind: "hit", Key: "k1", Script: "a.sh", Saved: time.Second}
	if err := b.Record(ctx, ev); err != nil {
		t.Fatal(err)
	}
	evs, err := b.Events(ctx)
	if err != nil || len(evs) != 1 || evs[0] != ev {
		t.Fatalf("events %+v %v", evs, err)
	}
	for _, p := range []string{"/recipes/v1/other/k", "/recipes/v1/runs/bad%20key"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", p, resp.StatusCode)
		}
	}
}
