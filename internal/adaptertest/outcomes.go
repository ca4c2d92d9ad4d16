package adaptertest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
	"github.com/tuist/fabrik-node/tier"
)

// Outcomes drives every upload outcome through one HTTP adapter and checks
// that the adapter answers each with its table's status, and that nothing
// reaches the store on any refusal. Outcomes the real store cannot be made
// to produce on demand (a full cache, a rejected commit, a stopped router, a
// failure) come from a cache whose Put fails with the matching error; the
// rest (too large, truncated) go through the real write path.
type Outcomes struct {
	// Table is the adapter's StatusTable.
	Table adapters.StatusTable
	// Cache is a real cache (internal/cachetest) the adapter writes to.
	Cache adapters.Cache
	// Serve builds the adapter over cache with the given max artifact size
	// and returns its handler.
	Serve func(cache adapters.Cache, maxArtifact int64) http.Handler
	// Path is the URL path of the i-th upload (a fresh key each time).
	Path func(i int) string
	// Method of the upload; PUT when empty.
	Method string
	// Header is added to every upload (auth-free adapters need none).
	Header http.Header
	// Body is what every upload sends (at least 2 bytes); random when nil.
	// A fixed body lets Path name its digest (OCI's ?digest=).
	Body []byte
}

// Run checks every outcome.
func (o Outcomes) Run(t *testing.T) {
	t.Helper()
	for _, oc := range adapters.Outcomes() {
		if _, ok := o.Table[oc]; !ok {
			t.Errorf("status table has no answer for %q", oc)
		}
	}
	method := o.Method
	if method == "" {
		method = http.MethodPut
	}
	forced := map[adapters.Outcome]error{
		adapters.Full:        fmt.Errorf("commit: %w", tier.ErrFull),
		adapters.Invalid:     fmt.Errorf("commit: %w", tier.ErrInvalid),
		adapters.Unavailable: fmt.Errorf("ask: %w", actors.ErrStopped),
		adapters.Internal:    fmt.Errorf("disk on fire"),
	}
	body := o.Body
	if body == nil {
		body = RandomBytes(t, 2048)
	}
	for i, oc := range adapters.Outcomes() {
		t.Run(oc.String(), func(t *testing.T) {
			cache := &countingCache{Cache: o.Cache, fail: forced[oc]}
			max := int64(0)
			if oc == adapters.TooLarge {
				max = int64(len(body)) - 1
			}
			srv := httptest.NewServer(o.Serve(cache, max))
			defer srv.Close()
			path := o.Path(i)
			var status int
			if oc == adapters.Truncated {
				head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", method, path, srv.Listener.Addr(), len(body))
				for k, vs := range o.Header {
					for _, v := range vs {
						head += k + ": " + v + "\r\n"
					}
				}
				status = Raw(t, srv.Listener.Addr().String(), head+"\r\n", body[:len(body)/2]).StatusCode
			} else {
				req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(string(body)))
				if err != nil {
					t.Fatal(err)
				}
				for k, vs := range o.Header {
					req.Header[k] = vs
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				status = resp.StatusCode
			}
			if want := o.Table[oc].Status; status != want {
				t.Errorf("%s: status %d, want %d", oc, status, want)
			}
			stored := cache.stored.Load()
			if oc == adapters.Stored && stored != 1 {
				t.Errorf("stored %d artifacts, want 1", stored)
			}
			if oc != adapters.Stored && stored != 0 {
				t.Errorf("%s: %d artifacts reached the store", oc, stored)
			}
		})
	}
}

// countingCache counts the Puts that reach the real cache, and fails every
// Put with fail when it is set (discarding the blob, as a failed commit does).
type countingCache struct {
	adapters.Cache
	fail   error
	stored atomic.Int64
}

func (c *countingCache) Put(ctx context.Context, ref messages.Ref, meta messages.Meta, blob *store.Staged) error {
	if c.fail != nil {
		blob.Discard()
		return c.fail
	}
	err := c.Cache.Put(ctx, ref, meta, blob)
	if err == nil {
		c.stored.Add(1)
	}
	return err
}
