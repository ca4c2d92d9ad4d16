package ops

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/metrics"
	"github.com/tuist/fabrik-node/store"
)

// Run: go test ./ops -run '^$' -bench Artifacts -benchtime 20x
// The 100k-entry store is built once per process (~15 s: one PutReader per
// entry, small distinct blobs, fsync off) and removed by TestMain.
//
// Figures (2-core VM shared with other builds, 100k entries, page of 100):
//
//	warm (snapshot served, also past its TTL while refreshing)  0.9-2.2 ms
//	cold size_desc (full scan + top-1024 heap)                  185-270 ms
//	cold offset=50000 (top-65536 heap)                          390-455 ms
//	scan_only (store.Blobs alone)                               170-225 ms
//
// The cold cost is store.Blobs' Badger scan: an in-memory iteration of the
// store's eviction index would bring it to a few ms.

var (
	bigOnce  sync.Once
	bigDir   string
	bigStore *store.Store
	bigErr   error
)

func bigIndex(b *testing.B, n int) *store.Store {
	bigOnce.Do(func() {
		bigDir, bigErr = os.MkdirTemp("", "fabrik-ops-bench-")
		if bigErr != nil {
			return
		}
		bigStore, bigErr = store.Open(store.Options{Dir: bigDir})
		if bigErr != nil {
			return
		}
		start := time.Now()
		for i := range n {
			body := []byte(strconv.Itoa(i) + " " + string(make([]byte, i%512)))
			bs := []string{"gradle", "bazel", "nx", "turborepo"}[i%4]
			ref := messages.Ref{Namespace: "gradle", Key: fmt.Sprintf("%032x", i)}
			if _, bigErr = bigStore.PutReader(ref, messages.Meta{BuildSystem: bs}, bytes.NewReader(body)); bigErr != nil {
				return
			}
		}
		fmt.Fprintf(os.Stderr, "filled %d entries in %v\n", n, time.Since(start).Round(time.Millisecond))
	})
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	return bigStore
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bigStore != nil {
		bigStore.Close()
	}
	if bigDir != "" {
		os.RemoveAll(bigDir)
	}
	os.Exit(code)
}

// BenchmarkArtifacts100k is GET /api/v1/artifacts?limit=100 over real HTTP
// on loopback against a store of 100,000 entries. "cold" drops the cached
// ranking before every request: each one pays the full index scan and the
// top-K heap. "warm" is a client paging within the snapshot's lifetime.
func BenchmarkArtifacts100k(b *testing.B) {
	s := bigIndex(b, 100_000)
	a := &API{Index: s, Metrics: metrics.New(nil, nil), Query: true}
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(b *testing.B, q string) {
		resp, err := http.Get(srv.URL + "/api/v1/artifacts" + q)
		if err != nil {
			b.Fatal(err)
		}
		var p ArtifactPage
		err = json.NewDecoder(resp.Body).Decode(&p)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || p.Total != 100_000 {
			b.Fatalf("%s: %d, total %d, %v", q, resp.StatusCode, p.Total, err)
		}
	}
	for _, q := range []string{"?limit=100&sort=size_desc", "?limit=100&offset=50000&sort=accessed_desc"} {
		b.Run("cold"+q, func(b *testing.B) {
			for range b.N {
				a.Invalidate()
				get(b, q)
			}
		})
		b.Run("warm"+q, func(b *testing.B) {
			for range b.N {
				get(b, q)
			}
		})
	}
	b.Run("search_min_size", func(b *testing.B) {
		for range b.N {
			resp, err := http.Get(srv.URL + "/api/v1/artifacts/search?min_size=400&limit=100")
			if err != nil || resp.StatusCode != 200 {
				b.Fatal(err, resp.Status)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.Run("stats_cold", func(b *testing.B) {
		for range b.N {
			a.Invalidate()
			if _, err := a.Stats(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scan_only", func(b *testing.B) {
		for range b.N {
			n := 0
			s.Blobs(func(messages.Meta) bool { n++; return true })
		}
	})
}
