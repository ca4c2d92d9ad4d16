package gocacheprog

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/adapters/gocache"
	"github.com/tuist/fabrik-node/internal/cachetest"
)

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// newHelper is a helper over a fresh local directory, talking to edgeURL
// ("" for none).
func newHelper(t testing.TB, dir, edgeURL string) *Helper {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	return New(Options{Dir: dir, MaxSize: 1 << 30, Edge: EdgeOptions{URL: edgeURL, GetTimeout: 500 * time.Millisecond}, FlushTimeout: 5 * time.Second})
}

// edgeServer is the real gocache adapter over a real cache, behind a real
// HTTP server; wrap (optional) sits in front of it.
func edgeServer(t testing.TB, wrap func(http.Handler) http.Handler) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	gocache.New(cachetest.New(t), gocache.Options{}).Routes(mux)
	var h http.Handler = mux
	if wrap != nil {
		h = wrap(mux)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// The first message announces get, put and close with ID 0; puts with a
// body, with BodySize 0 and with no BodySize at all come back from get with
// their output ID, size, time and a file holding the body; an unknown
// action is a miss.
func TestProtocol(t *testing.T) {
	c := startHelper(t, newHelper(t, "", ""))
	if c.caps.ID != 0 || !slices.Equal(c.caps.KnownCommands, []Cmd{CmdGet, CmdPut, CmdClose}) {
		t.Fatalf("first message %+v, want ID 0 and KnownCommands get, put, close", c.caps)
	}
	big := randomBytes(t, 3<<20+17) // several base64 buffers' worth
	before := time.Now().Add(-time.Second)
	if res := c.put(actionID(1), big); !strings.HasPrefix(res.DiskPath, "/") {
		t.Fatalf("put DiskPath %q is not absolute", res.DiskPath)
	}
	mustHit(t, c.get(actionID(1)), big, os.ReadFile)
	if got := c.get(actionID(1)); got.Time.Before(before) || got.Time.After(time.Now()) {
		t.Fatalf("get Time %v is not the put's time", got.Time)
	}

	c.put(actionID(2), nil) // BodySize 0: no body line follows
	mustHit(t, c.get(actionID(2)), nil, os.ReadFile)
	// BodySize absent from the JSON altogether (omitempty) is the same.
	empty := sha256.Sum256(nil)
	if res := c.do(&Request{Command: CmdPut, ActionID: actionID(3), OutputID: empty[:]}, nil); res.Err != "" || res.DiskPath == "" {
		t.Fatalf("put without BodySize: %+v", res)
	}
	mustHit(t, c.get(actionID(3)), nil, os.ReadFile)

	if res := c.get(actionID(99)); !res.Miss || res.DiskPath != "" || res.OutputID != nil {
		t.Fatalf("get of an unknown action: %+v, want a bare miss", res)
	}
	if err := c.close(); err != nil {
		t.Fatalf("Serve after close: %v", err)
	}
}

// The go command keeps many requests in flight and matches answers by ID:
// answers may come in any order, and every one must be right.
func TestConcurrentRequests(t *testing.T) {
	c := startHelper(t, newHelper(t, "", ""))
	const n = 64
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = randomBytes(t, 1+i*1000)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.put(actionID(i), bodies[i])
			if res := c.get(actionID(i + n)); !res.Miss {
				t.Errorf("get %d: %+v, want a miss", i+n, res)
			}
			mustHit(t, c.get(actionID(i)), bodies[i], os.ReadFile)
		}()
	}
	wg.Wait()
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
}

// A put whose output ID is not the body's SHA-256 gets an error answer (the
// go command carries on without caching it) and the stream stays usable.
func TestPutWrongOutputID(t *testing.T) {
	c := startHelper(t, newHelper(t, "", ""))
	body := randomBytes(t, 1000)
	wrong := sha256.Sum256([]byte("something else"))
	res := c.do(&Request{Command: CmdPut, ActionID: actionID(1), OutputID: wrong[:], BodySize: int64(len(body))}, body)
	if res.Err == "" {
		t.Fatalf("put with a wrong output ID: %+v, want an error", res)
	}
	if res := c.get(actionID(1)); !res.Miss {
		t.Fatalf("refused put is a hit: %+v", res)
	}
	c.put(actionID(2), body) // the next request is read correctly
	mustHit(t, c.get(actionID(2)), body, os.ReadFile)
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
}

// A body that is not what BodySize announced breaks the stream: the helper
// answers that put with an error and stops (the go command fails on its own
// broken pipe; nothing after it can be trusted).
func TestBrokenBodyFraming(t *testing.T) {
	for name, raw := range map[string]string{
		"short":      `"` + "AAAA" + `"` + "\n",     // 3 bytes, BodySize 10
		"not base64": `"` + "!!!!!!!!" + `"` + "\n", // garbage
		"no string":  `{"ID":2}` + "\n",
		"eof":        `"AAAA`,
	} {
		t.Run(name, func(t *testing.T) {
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			done := make(chan error, 1)
			go func() { done <- newHelper(t, "", "").Serve(inR, outW); outW.Close() }()
			dec := json.NewDecoder(outR)
			var caps Response
			if err := dec.Decode(&caps); err != nil {
				t.Fatal(err)
			}
			go func() {
				fmt.Fprintf(inW, `{"ID":1,"Command":"put","ActionID":"%s","BodySize":10}`+"\n\n%s", b64(actionID(1)), raw)
				inW.Close()
			}()
			var res Response
			if err := dec.Decode(&res); err != nil || res.ID != 1 || res.Err == "" {
				t.Fatalf("answer %+v (%v), want an error for request 1", res, err)
			}
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("Serve returned nil after a broken body")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Serve still running after a broken body")
			}
		})
	}
}

func b64(b []byte) string {
	s, _ := json.Marshal(b)
	return strings.Trim(string(s), `"`)
}

// A put reaches the edge in the background and is flushed by close; a
// second helper with an empty directory gets it from the edge, with the
// original put time, and keeps it locally.
func TestEdgeRoundTrip(t *testing.T) {
	edge := edgeServer(t, nil)
	body := randomBytes(t, 200<<10)
	a := newHelper(t, "", edge.URL)
	c := startHelper(t, a)
	c.put(actionID(1), body)
	c.put(actionID(2), nil)
	put := c.get(actionID(1)).Time
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if sent := a.uploader.Sent.Load(); sent != 2 {
		t.Fatalf("uploaded %d puts by close, want 2 (failed %d, dropped %d)", sent, a.uploader.Failed.Load(), a.uploader.Dropped.Load())
	}

	dirB := t.TempDir()
	b := newHelper(t, dirB, edge.URL)
	c = startHelper(t, b)
	res := c.get(actionID(1))
	mustHit(t, res, body, os.ReadFile)
	if !strings.HasPrefix(res.DiskPath, dirB) {
		t.Fatalf("edge hit at %s, not in the helper's directory %s", res.DiskPath, dirB)
	}
	if !res.Time.Equal(*put) {
		t.Fatalf("edge hit Time %v, want the original put's %v", res.Time, put)
	}
	mustHit(t, c.get(actionID(2)), nil, os.ReadFile)
	mustHit(t, c.get(actionID(1)), body, os.ReadFile) // now local
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if b.Stats.EdgeHits.Load() != 2 || b.Stats.LocalHits.Load() != 1 {
		t.Fatalf("edge hits %d, local hits %d; want 2 and 1", b.Stats.EdgeHits.Load(), b.Stats.LocalHits.Load())
	}
}

// Nothing listening at the edge's address: every get is a miss, every put
// is kept locally and answered, and close does not wait.
func TestDeadEdge(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	h := newHelper(t, "", url)
	c := startHelper(t, h)
	body := randomBytes(t, 5000)
	for i := range 10 {
		if res := c.get(actionID(i)); !res.Miss {
			t.Fatalf("get from a dead edge: %+v", res)
		}
		c.put(actionID(i), body)
	}
	mustHit(t, c.get(actionID(3)), body, os.ReadFile)
	start := time.Now()
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("close took %s with a dead edge", d)
	}
}

// An edge that accepts connections and never answers: gets are misses
// within the get timeout, and after a few the edge is skipped so the rest
// are misses at once; close gives up on uploads after its bound.
func TestSlowEdge(t *testing.T) {
	release := make(chan struct{})
	var requests atomic.Int64
	edge := edgeServer(t, func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
	})
	defer close(release)
	h := New(Options{Dir: t.TempDir(), Edge: EdgeOptions{URL: edge.URL, GetTimeout: 200 * time.Millisecond}, FlushTimeout: 300 * time.Millisecond})
	c := startHelper(t, h)
	start := time.Now()
	for i := range 20 {
		if res := c.get(actionID(i)); !res.Miss {
			t.Fatalf("get from a hung edge: %+v", res)
		}
	}
	// 3 timeouts trip the breaker; the other 17 gets cost nothing.
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("20 gets from a hung edge took %s", d)
	}
	if n := requests.Load(); n > breakerFailures {
		t.Fatalf("edge got %d requests after it stopped answering, want at most %d", n, breakerFailures)
	}
	// Puts are accepted and answered at once even though nothing uploads.
	c.put(actionID(1), randomBytes(t, 100))
	start = time.Now()
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("close took %s, past its flush bound", d)
	}
}

// An edge that keeps refusing (401) or answers garbage for a hit is a miss
// every time; a hit whose body does not match its output ID is not kept.
func TestMisbehavingEdge(t *testing.T) {
	body := randomBytes(t, 4096)
	out := sha256.Sum256(body)
	for name, handler := range map[string]http.HandlerFunc{
		"refusing": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusUnauthorized) },
		"corrupt": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(gocache.HeaderOutputID, fmt.Sprintf("%x", out))
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.Write(randomBytes(t, len(body)))
		},
		"short": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(gocache.HeaderOutputID, fmt.Sprintf("%x", out))
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.Write(body[:100])
		},
		"no output ID": func(w http.ResponseWriter, r *http.Request) { w.Write(body) },
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(handler)
			defer srv.Close()
			dir := t.TempDir()
			c := startHelper(t, newHelper(t, dir, srv.URL))
			for i := range 5 {
				if res := c.get(actionID(i)); !res.Miss {
					t.Fatalf("get: %+v, want a miss", res)
				}
			}
			if err := c.close(); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadDir(dir + "/o"); len(b) != 0 {
				t.Fatalf("local directory kept %d output shards from a bad edge", len(b))
			}
		})
	}
}

// The helper sends the token as a Bearer header, and a token-protected
// edge's refusal of a helper without one is only a miss.
func TestEdgeToken(t *testing.T) {
	var sawAuth atomic.Value
	edge := edgeServer(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sawAuth.Store(r.Header.Get("Authorization"))
			if r.Header.Get("Authorization") != "Bearer s3cret" {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	body := randomBytes(t, 100)
	h := New(Options{Dir: t.TempDir(), Edge: EdgeOptions{URL: edge.URL, Token: "s3cret\n"}})
	c := startHelper(t, h)
	c.put(actionID(1), body)
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if h.uploader.Sent.Load() != 1 || sawAuth.Load() != "Bearer s3cret" {
		t.Fatalf("upload with a token: sent %d, Authorization %q", h.uploader.Sent.Load(), sawAuth.Load())
	}
	c = startHelper(t, newHelper(t, "", edge.URL)) // no token
	if res := c.get(actionID(1)); !res.Miss {
		t.Fatalf("get without a token: %+v, want a miss", res)
	}
	c.close()
	c = startHelper(t, New(Options{Dir: t.TempDir(), Edge: EdgeOptions{URL: edge.URL, Token: "s3cret"}}))
	mustHit(t, c.get(actionID(1)), body, os.ReadFile)
	c.close()
}

// A full upload queue drops new puts (they stay local) instead of blocking
// the build.
func TestUploadQueueBound(t *testing.T) {
	release := make(chan struct{})
	edge := edgeServer(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-release
			next.ServeHTTP(w, r)
		})
	})
	h := New(Options{Dir: t.TempDir(), Edge: EdgeOptions{URL: edge.URL}, QueueSize: 2, Workers: 1, FlushTimeout: 5 * time.Second})
	c := startHelper(t, h)
	start := time.Now()
	for i := range 10 {
		c.put(actionID(i), randomBytes(t, 10))
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("10 puts behind a stalled edge took %s", d)
	}
	if h.uploader.Dropped.Load() < 7 {
		t.Fatalf("dropped %d puts with a queue of 2 and one stalled worker, want >= 7", h.uploader.Dropped.Load())
	}
	close(release)
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, _, ok := h.dir.Get(actionID(i)); !ok {
			t.Fatalf("put %d is not in the local directory", i)
		}
	}
}
