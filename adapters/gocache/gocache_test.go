package gocache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/internal/adaptertest"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
)

const action = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func serve(t *testing.T) (*httptest.Server, *store.Store) {
	t.Helper()
	cache, st := cachetest.NewWithStore(t, cachetest.Options{})
	mux := http.NewServeMux()
	New(cache, Options{MaxArtifactSize: 1 << 20}).Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, st
}

func do(t *testing.T, method, url string, hdr map[string]string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func outputID(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// A put with its output ID and time comes back on GET and HEAD with both,
// and the body is a CAS blob under its output ID.
func TestPutGetHead(t *testing.T) {
	srv, st := serve(t)
	body := adaptertest.RandomBytes(t, 100<<10)
	when := time.Date(2026, 3, 4, 5, 6, 7, 890, time.UTC)
	// An upper-case action ID is the same key as its lower-case form.
	resp, msg := do(t, http.MethodPut, srv.URL+"/gocache/"+strings.ToUpper(action),
		map[string]string{HeaderOutputID: outputID(body), HeaderTime: when.Format(time.RFC3339Nano)}, body)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT: %s %s", resp.Status, msg)
	}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		resp, got := do(t, method, srv.URL+"/gocache/"+action, nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", method, resp.Status)
		}
		if method == http.MethodGet && !bytes.Equal(got, body) {
			t.Fatalf("GET: %d bytes, want the %d stored", len(got), len(body))
		}
		if resp.ContentLength != int64(len(body)) || resp.Header.Get(HeaderOutputID) != outputID(body) {
			t.Fatalf("%s: length %d output %q, want %d %q", method, resp.ContentLength, resp.Header.Get(HeaderOutputID), len(body), outputID(body))
		}
		if got := resp.Header.Get(HeaderTime); got != when.Format(time.RFC3339Nano) {
			t.Fatalf("%s: time %q, want the put's %q", method, got, when.Format(time.RFC3339Nano))
		}
	}
	if _, err := st.Stat(messages.Ref{Namespace: messages.CAS, Key: outputID(body)}); err != nil {
		t.Fatalf("body is not a CAS blob under its output ID: %v", err)
	}
}

// The go command puts empty outputs (BodySize 0); they must round-trip.
func TestEmptyOutput(t *testing.T) {
	srv, _ := serve(t)
	resp, msg := do(t, http.MethodPut, srv.URL+"/gocache/"+action, map[string]string{HeaderOutputID: outputID(nil)}, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT empty: %s %s", resp.Status, msg)
	}
	resp, got := do(t, http.MethodGet, srv.URL+"/gocache/"+action, nil, nil)
	if resp.StatusCode != 200 || len(got) != 0 || resp.Header.Get(HeaderOutputID) != outputID(nil) {
		t.Fatalf("GET empty: %s, %d bytes, output %q", resp.Status, len(got), resp.Header.Get(HeaderOutputID))
	}
	// No time was given: the edge's own store time stands in.
	if _, err := time.Parse(time.RFC3339Nano, resp.Header.Get(HeaderTime)); err != nil {
		t.Fatalf("GET without a put time: %s %q", HeaderTime, resp.Header.Get(HeaderTime))
	}
}

// An output ID that is not the body's SHA-256 is refused and stores nothing:
// a hit would hand the go command an output under a false ID.
func TestWrongOutputIDRefused(t *testing.T) {
	srv, st := serve(t)
	body := adaptertest.RandomBytes(t, 4096)
	resp, _ := do(t, http.MethodPut, srv.URL+"/gocache/"+action, map[string]string{HeaderOutputID: outputID([]byte("other"))}, body)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("PUT with a wrong output ID: %s, want 400", resp.Status)
	}
	if _, n := st.Usage(); n != 0 {
		t.Fatalf("store holds %d objects after a refused put", n)
	}
	if resp, _ := do(t, http.MethodGet, srv.URL+"/gocache/"+action, nil, nil); resp.StatusCode != 404 {
		t.Fatalf("GET after a refused put: %s, want 404", resp.Status)
	}
}

func TestMalformedRequests(t *testing.T) {
	srv, _ := serve(t)
	for _, tc := range []struct {
		method, path string
		hdr          map[string]string
	}{
		{http.MethodGet, "/gocache/abc", nil},
		{http.MethodGet, "/gocache/" + strings.Repeat("g", 64), nil},
		{http.MethodHead, "/gocache/" + action + "00", nil},
		{http.MethodPut, "/gocache/" + action, map[string]string{HeaderOutputID: "xyz"}},
		{http.MethodPut, "/gocache/" + action, map[string]string{HeaderTime: "yesterday"}},
	} {
		if resp, _ := do(t, tc.method, srv.URL+tc.path, tc.hdr, []byte("x")); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s %v: %s, want 400", tc.method, tc.path, tc.hdr, resp.Status)
		}
	}
	if resp, _ := do(t, http.MethodGet, srv.URL+"/gocache/"+action, nil, nil); resp.StatusCode != 404 {
		t.Fatalf("GET of an absent entry: %s, want 404", resp.Status)
	}
}
