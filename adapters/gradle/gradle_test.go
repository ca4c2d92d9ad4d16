package gradle

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/internal/adaptertest"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
)

const key = "0123456789abcdef0123456789abcdef"

func serve(t *testing.T, maxArtifact, maxStore int64) (*httptest.Server, *store.Store) {
	t.Helper()
	cache, st := cachetest.NewWithStore(t, cachetest.Options{MaxSize: maxStore})
	mux := http.NewServeMux()
	New(cache, Options{MaxArtifactSize: maxArtifact}).Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, st
}

func do(t *testing.T, method, url string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/vnd.gradle.build-cache-artifact.v1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// storeIsEmpty checks that nothing was committed and no staging file leaked.
func storeIsEmpty(t *testing.T, st *store.Store) {
	t.Helper()
	if _, n := st.Usage(); n != 0 {
		t.Fatalf("store holds %d objects, want none", n)
	}
	if _, err := st.Stat(messages.Ref{Namespace: Namespace, Key: key}); err == nil {
		t.Fatal("rejected artifact is visible")
	}
}

func TestPutGetRoundTrip(t *testing.T) {
	srv, _ := serve(t, 1<<20, 1<<30)
	body := random(300 << 10)
	if resp, msg := do(t, http.MethodPut, srv.URL+"/cache/"+key, bytes.NewReader(body)); resp.StatusCode != 200 {
		t.Fatalf("PUT: %s %s", resp.Status, msg)
	}
	resp, got := do(t, http.MethodGet, srv.URL+"/cache/"+key, nil)
	if resp.StatusCode != 200 || got != string(body) {
		t.Fatalf("GET: %s, %d bytes, want 200 and the stored %d bytes", resp.Status, len(got), len(body))
	}
	if ct := resp.Header.Get("Content-Type"); ct != contentType {
		t.Fatalf("Content-Type %q", ct)
	}
	if resp, _ := do(t, http.MethodHead, srv.URL+"/cache/"+key, nil); resp.StatusCode != 200 || resp.ContentLength != int64(len(body)) {
		t.Fatalf("HEAD: %s length %d", resp.Status, resp.ContentLength)
	}
}

func TestMissIs404(t *testing.T) {
	srv, _ := serve(t, 1<<20, 1<<30)
	if resp, _ := do(t, http.MethodGet, srv.URL+"/cache/"+key, nil); resp.StatusCode != 404 {
		t.Fatalf("GET miss: %s, want 404", resp.Status)
	}
}

func TestBadInput(t *testing.T) {
	srv, st := serve(t, 64<<10, 1<<30)
	cases := []struct {
		name, method, path string
		body               io.Reader
		want               int
	}{
		{"malformed key", http.MethodGet, "/cache/not-hex!", nil, 400},
		{"key too short", http.MethodPut, "/cache/abc", strings.NewReader("x"), 400},
		{"path escape", http.MethodGet, "/cache/..%2f..%2fetc", nil, 400},
		{"unknown path", http.MethodGet, "/elsewhere/" + key, nil, 404},
		{"over max size", http.MethodPut, "/cache/" + key, bytes.NewReader(random(64<<10 + 1)), 413},
		{"chunked over max size", http.MethodPut, "/cache/" + key, io.MultiReader(bytes.NewReader(random(64<<10)), strings.NewReader("xx")), 413},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, msg := do(t, c.method, srv.URL+c.path, c.body)
			if resp.StatusCode != c.want {
				t.Fatalf("%s %s: %s (%s), want %d", c.method, c.path, resp.Status, msg, c.want)
			}
			if c.want != 404 && strings.TrimSpace(msg) == "" {
				t.Fatal("error without a message")
			}
			storeIsEmpty(t, st)
		})
	}
}

// rawPut sends a PUT by hand, so that the body can be shorter than the
// declared Content-Length (a client that dies mid-upload) or withheld until
// the server says continue. It returns the status code.
func rawPut(t *testing.T, addr, path string, declared int, body []byte, expectContinue bool) int {
	t.Helper()
	head := fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n", path, declared)
	if expectContinue {
		head += "Expect: 100-continue\r\n"
	}
	return adaptertest.Raw(t, addr, head+"\r\n", body).StatusCode
}

func TestTruncatedUploadLeavesNothing(t *testing.T) {
	srv, st := serve(t, 1<<20, 1<<30)
	addr := strings.TrimPrefix(srv.URL, "http://")
	// Declared over the inline bound, so the body is staged in a file.
	if status := rawPut(t, addr, "/cache/"+key, 200<<10, random(100<<10), false); status != http.StatusBadRequest {
		t.Fatalf("truncated upload answered %d, want 400", status)
	}
	storeIsEmpty(t, st)
	if left, _ := os.ReadDir(stagingDir(t, st)); len(left) != 0 {
		t.Fatalf("staging files left behind: %d", len(left))
	}
}

// stagingDir is the store's staging directory.
func stagingDir(t *testing.T, st *store.Store) string { return st.Stager().Dir() }

// Expect: 100-continue with a declared length over the limit is refused
// before the client sends a byte.
func TestExpectContinueRefusedEarly(t *testing.T) {
	srv, st := serve(t, 1<<10, 1<<30)
	addr := strings.TrimPrefix(srv.URL, "http://")
	if status := rawPut(t, addr, "/cache/"+key, 1<<20, nil, true); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("answered %d, want 413 before the body", status)
	}
	storeIsEmpty(t, st)
}

// A full store is 413, the one refusal Gradle tolerates: 507 would turn the
// remote cache off for the rest of the build, reads included.
func TestFullStoreIs413(t *testing.T) {
	srv, _ := serve(t, 1<<20, 100<<10)
	resp, msg := do(t, http.MethodPut, srv.URL+"/cache/"+key, bytes.NewReader(random(200<<10)))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "full") {
		t.Fatalf("PUT larger than the store: %s %s, want 413 saying the cache is full", resp.Status, msg)
	}
}

// fileWriter is a ResponseWriter with net/http's io.ReaderFrom (the
// sendfile path), recording whether the body reached it as a file.
type fileWriter struct {
	*httptest.ResponseRecorder
	fromFile bool
}

func (w *fileWriter) ReadFrom(r io.Reader) (int64, error) {
	if _, ok := r.(interface{ Fd() uintptr }); ok {
		w.fromFile = true
	}
	return io.Copy(w.ResponseRecorder, r)
}

// A local hit larger than the small-body limit reaches the ResponseWriter's
// ReadFrom as the blob's open file, which net/http turns into sendfile(2):
// nothing on the read path (router, store, SendBody) may wrap the body or
// copy it through a userspace buffer.
func TestLargeHitIsSentFromTheFile(t *testing.T) {
	cache, _ := cachetest.NewWithStore(t, cachetest.Options{})
	mux := http.NewServeMux()
	New(cache, Options{MaxArtifactSize: 8 << 20}).Routes(mux)
	body := random(1 << 20)
	put := httptest.NewRecorder()
	mux.ServeHTTP(put, httptest.NewRequest(http.MethodPut, "/cache/"+key, bytes.NewReader(body)))
	if put.Code != http.StatusOK {
		t.Fatalf("PUT: %d %s", put.Code, put.Body)
	}
	w := &fileWriter{ResponseRecorder: httptest.NewRecorder()}
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/cache/"+key, nil))
	if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), body) {
		t.Fatalf("GET: %d, %d bytes, want 200 and the %d stored", w.Code, w.Body.Len(), len(body))
	}
	if !w.fromFile {
		t.Fatal("the body did not reach the ResponseWriter's ReadFrom as a file: a large hit would be copied in userspace instead of sent with sendfile")
	}
}
