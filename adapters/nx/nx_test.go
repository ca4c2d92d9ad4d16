package nx

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/internal/adaptertest"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/metrics"
)

// tokenGuard stands in for the JWT middleware: "Bearer bad" is rejected
// (401), "Bearer read" may only read (403 on writes), no header is open.
func tokenGuard(access adapters.Access, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "":
			h.ServeHTTP(w, r)
		case "Bearer read":
			if access != adapters.Read {
				WriteAuthError(w, http.StatusForbidden, "this token may not write")
				return
			}
			h.ServeHTTP(w, r)
		default:
			WriteAuthError(w, http.StatusUnauthorized, "invalid token")
		}
	})
}

type env struct {
	url     string
	addr    string
	cache   adapters.Cache
	metrics *metrics.Set
}

func start(t *testing.T, cache adapters.Cache, max int64) *env {
	t.Helper()
	if cache == nil {
		cache = cachetest.New(t)
	}
	m := metrics.New(nil, nil)
	mux := http.NewServeMux()
	New(cache, Options{Guard: tokenGuard, Metrics: m, MaxArtifactSize: max}).Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{url: srv.URL, addr: srv.Listener.Addr().String(), cache: cache, metrics: m}
}

func (e *env) do(t *testing.T, method, hash, token string, body []byte) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+"/v1/cache/"+hash, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
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

// raw sends a hand-made request to the adapter (see adaptertest.Raw).
func (e *env) raw(t *testing.T, head string, body []byte) *http.Response {
	return adaptertest.Raw(t, e.addr, head, body)
}

func randomBytes(t testing.TB, n int) []byte { return adaptertest.RandomBytes(t, n) }

func stored(t *testing.T, c adapters.Cache, hash string) bool {
	t.Helper()
	st, err := c.Stat(context.Background(), messages.Ref{Namespace: Namespace, Key: hash})
	if err != nil {
		t.Fatal(err)
	}
	return st.Found
}

func TestPutThenGet(t *testing.T) {
	e := start(t, nil, 0)
	body := randomBytes(t, 300<<10)
	if resp, _ := e.do(t, "GET", "1234567890", "", nil); resp.StatusCode != 404 {
		t.Fatalf("GET before PUT: %d, want 404", resp.StatusCode)
	}
	if resp, _ := e.do(t, "PUT", "1234567890", "", body); resp.StatusCode != 200 {
		t.Fatalf("PUT: %d, want exactly 200", resp.StatusCode)
	}
	resp, got := e.do(t, "GET", "1234567890", "", nil)
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("GET: %d, %d bytes; want 200 with the %d bytes stored", resp.StatusCode, len(got), len(body))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d, want %d", resp.ContentLength, len(body))
	}
	// The handler counts the bytes it sent after the client has them all:
	// give it a moment before reading the counters.
	wants := []string{
		`fabrik_cache_hits_by_build_system_total{build_system="nx"} 1`,
		`fabrik_cache_misses_by_build_system_total{build_system="nx"} 1`,
		fmt.Sprintf(`fabrik_bandwidth_bytes_total{direction="upload"} %d`, len(body)),
		fmt.Sprintf(`fabrik_bandwidth_bytes_total{direction="download"} %d`, len(body)),
		`fabrik_request_duration_seconds_count{build_system="nx",op="put"} 1`,
	}
	var missing []string
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var prom bytes.Buffer
		e.metrics.WritePrometheus(&prom)
		missing = missing[:0]
		for _, want := range wants {
			if !strings.Contains(prom.String(), want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, m := range missing {
		t.Errorf("metrics lack %s", m)
	}
}

func TestPutExistingIsConflictAndKeepsOriginal(t *testing.T) {
	e := start(t, nil, 0)
	first, second := randomBytes(t, 1000), randomBytes(t, 1000)
	if resp, _ := e.do(t, "PUT", "42", "", first); resp.StatusCode != 200 {
		t.Fatalf("first PUT: %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "PUT", "42", "", second); resp.StatusCode != 409 {
		t.Fatalf("second PUT: %d, want 409", resp.StatusCode)
	}
	if _, got := e.do(t, "GET", "42", "", nil); !bytes.Equal(got, first) {
		t.Fatal("the second PUT replaced the original record")
	}
}

// Concurrent uploads of one hash: exactly one stores, the rest get 409, and
// what is served is the body of the upload that got 200.
func TestConcurrentPutsStoreOnce(t *testing.T) {
	e := start(t, nil, 0)
	const n = 8
	bodies := make([][]byte, n)
	codes := make([]int, n)
	for i := range bodies {
		bodies[i] = randomBytes(t, 256<<10)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("PUT", e.url+"/v1/cache/777", bytes.NewReader(bodies[i]))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	winner := -1
	for i, c := range codes {
		switch c {
		case 200:
			if winner >= 0 {
				t.Fatalf("two uploads of one hash both got 200: %v", codes)
			}
			winner = i
		case 409:
		default:
			t.Fatalf("unexpected status %d among %v", c, codes)
		}
	}
	if winner < 0 {
		t.Fatalf("no upload stored: %v", codes)
	}
	if _, got := e.do(t, "GET", "777", "", nil); !bytes.Equal(got, bodies[winner]) {
		t.Fatal("stored content is not the body of the upload that got 200")
	}
}

// An upload that arrives while another of the same hash is in flight waits
// for it: when the first fails (its client dies mid-body), the second
// stores, so a client never gets 409 for a record that does not exist.
func TestSecondUploadStoresWhenTheFirstFails(t *testing.T) {
	e := start(t, nil, 0)
	first, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	fmt.Fprintf(first, "PUT /v1/cache/888 HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n")
	first.Write(make([]byte, 100))
	time.Sleep(100 * time.Millisecond) // the first upload holds the claim now

	body := randomBytes(t, 4096)
	codes := make(chan int, 1)
	go func() {
		resp, _ := e.do(t, "PUT", "888", "", body)
		codes <- resp.StatusCode
	}()
	select {
	case c := <-codes:
		t.Fatalf("second upload answered %d while the first was still in flight", c)
	case <-time.After(200 * time.Millisecond):
	}
	first.Close() // the first client dies: its upload is truncated
	select {
	case c := <-codes:
		if c != 200 {
			t.Fatalf("second upload: %d, want 200 after the first failed", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second upload never finished")
	}
	if _, got := e.do(t, "GET", "888", "", nil); !bytes.Equal(got, body) {
		t.Fatal("stored content is not the second upload's body")
	}
}

func TestMalformedHash(t *testing.T) {
	e := start(t, nil, 0)
	for _, h := range []string{"bad!hash", "a.b", "%2e%2e", strings.Repeat("1", maxKeyLen+1)} {
		for _, m := range []string{"GET", "PUT"} {
			var body []byte
			if m == "PUT" {
				body = []byte("x")
			}
			if resp, _ := e.do(t, m, h, "", body); resp.StatusCode != 400 {
				t.Errorf("%s %q: %d, want 400", m, h, resp.StatusCode)
			}
		}
	}
}

func TestTruncatedUploadIsNotStored(t *testing.T) {
	e := start(t, nil, 0)
	head := "PUT /v1/cache/555 HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
	resp := e.raw(t, head, randomBytes(t, 40000))
	if resp.StatusCode == 200 {
		t.Fatal("a body shorter than its Content-Length was accepted")
	}
	if stored(t, e.cache, "555") {
		t.Fatal("a truncated body was stored")
	}
	// The hash is free again: the full upload must now succeed.
	if resp, _ := e.do(t, "PUT", "555", "", randomBytes(t, 100000)); resp.StatusCode != 200 {
		t.Fatalf("PUT after a truncated attempt: %d", resp.StatusCode)
	}
}

func TestUploadWithoutLengthIsRefused(t *testing.T) {
	e := start(t, nil, 0)
	// A reader of unknown length makes Go's client send a chunked body.
	req, _ := http.NewRequest("PUT", e.url+"/v1/cache/66", io.MultiReader(strings.NewReader("abc")))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusLengthRequired {
		t.Fatalf("chunked PUT: %d, want 411", resp.StatusCode)
	}
	if stored(t, e.cache, "66") {
		t.Fatal("stored an upload without Content-Length")
	}
}

// An oversize upload is refused from its headers alone: the client below
// never sends a body, so a handler that read it would time out.
func TestOversizeRefusedBeforeBody(t *testing.T) {
	e := start(t, nil, 1<<20)
	head := "PUT /v1/cache/99 HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n"
	resp := e.raw(t, head, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("oversize PUT: %d, want 403 (Nx's non-fatal refusal)", resp.StatusCode)
	}
	if resp, _ := e.do(t, "PUT", "98", "", randomBytes(t, 1<<20)); resp.StatusCode != 200 {
		t.Fatalf("PUT at exactly the limit: %d", resp.StatusCode)
	}
}

func TestAuth(t *testing.T) {
	e := start(t, nil, 0)
	for _, m := range []string{"GET", "PUT"} {
		resp, body := e.do(t, m, "11", "bad", []byte("x"))
		if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "text/plain" || len(body) == 0 {
			t.Errorf("%s with a bad token: %d %q %q; want 401 text/plain with a message", m, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	if resp, _ := e.do(t, "PUT", "11", "read", []byte("x")); resp.StatusCode != 403 {
		t.Errorf("PUT with a read-only token: %d, want 403", resp.StatusCode)
	}
	if stored(t, e.cache, "11") {
		t.Error("a read-only token stored an artifact")
	}
	if resp, _ := e.do(t, "GET", "11", "read", nil); resp.StatusCode != 404 {
		t.Errorf("GET with a read-only token: %d, want 404", resp.StatusCode)
	}
}

func TestFullCacheIsANonFatalRefusal(t *testing.T) {
	e := start(t, smallCache(t), 0)
	if resp, _ := e.do(t, "PUT", "12", "", randomBytes(t, 4096)); resp.StatusCode != 403 {
		t.Fatalf("PUT into a full cache: %d, want 403", resp.StatusCode)
	}
}

// smallCache is a real cache whose whole capacity is smaller than a 4 KiB
// artifact, so storing one hits the hard size limit (tier.ErrFull).
func smallCache(t *testing.T) adapters.Cache {
	c, _ := cachetest.NewWithStore(t, cachetest.Options{MaxSize: 1024})
	return c
}

func TestHead(t *testing.T) {
	e := start(t, nil, 0)
	if resp, _ := e.do(t, "HEAD", "31", "", nil); resp.StatusCode != 404 {
		t.Fatalf("HEAD miss: %d", resp.StatusCode)
	}
	e.do(t, "PUT", "31", "", randomBytes(t, 5000))
	if resp, body := e.do(t, "HEAD", "31", "", nil); resp.StatusCode != 200 || resp.ContentLength != 5000 || len(body) != 0 {
		t.Fatalf("HEAD hit: %d, Content-Length %d, %d body bytes", resp.StatusCode, resp.ContentLength, len(body))
	}
}
