package oci

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/adapters/gradle"
	"github.com/tuist/fabrik-node/internal/adaptertest"
	"github.com/tuist/fabrik-node/internal/cachetest"
)

// clients is the number of concurrent pullers the GET benchmarks model.
const clients = 16

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * clients, MaxConnsPerHost: 2 * clients}}
}

// BenchmarkBlobGet pulls layers of 1 MiB and 64 MiB with 16 clients, and
// the same bytes through the Gradle adapter on the same cache and server,
// so the two figures come from one run.
func BenchmarkBlobGet(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1MiB", 1 << 20}, {"64MiB", 64 << 20}} {
		cache := cachetest.New(b)
		mux := http.NewServeMux()
		New(cache, Options{}).Routes(mux)
		gradle.New(cache, gradle.Options{}).Routes(mux)
		srv := httptest.NewServer(mux)
		c := benchClient()
		const keys = 8
		var layerURLs, gradleURLs []string
		for k := range keys {
			body := adaptertest.RandomBytes(b, size.n)
			sum := sha256.Sum256(body)
			d := "sha256:" + hex.EncodeToString(sum[:])
			resp, err := c.Post(srv.URL+"/v2/bench/app/blobs/uploads/?digest="+d, "application/octet-stream", bytes.NewReader(body))
			if err != nil || resp.StatusCode != http.StatusCreated {
				b.Fatalf("push layer: %v %v", err, resp)
			}
			resp.Body.Close()
			key := fmt.Sprintf("%032x", k+1)
			req, _ := http.NewRequest("PUT", srv.URL+"/cache/"+key, bytes.NewReader(body))
			if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("push gradle: %v %v", err, resp)
			} else {
				resp.Body.Close()
			}
			layerURLs = append(layerURLs, srv.URL+"/v2/bench/app/blobs/"+d)
			gradleURLs = append(gradleURLs, srv.URL+"/cache/"+key)
		}
		for _, target := range []struct {
			name string
			urls []string
		}{{"oci", layerURLs}, {"gradle", gradleURLs}} {
			b.Run(size.name+"/"+target.name, func(b *testing.B) {
				b.SetBytes(int64(size.n))
				b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
				var seq atomic.Int64
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						resp, err := c.Get(target.urls[seq.Add(1)%keys])
						if err != nil {
							b.Error(err)
							return
						}
						n, _ := io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK || n != int64(size.n) {
							b.Errorf("GET: %d, %d bytes", resp.StatusCode, n)
							return
						}
					}
				})
			})
		}
		// Both adapters at once: each op fetches one layer from each (in
		// alternating order) and times both, so the machine's noise hits
		// them equally; the metric is OCI's throughput over Gradle's.
		b.Run(size.name+"/mixed", func(b *testing.B) {
			b.SetBytes(2 * int64(size.n))
			b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			var seq atomic.Int64
			var spent [2]atomic.Int64
			get := func(which int, u string) bool {
				t0 := time.Now()
				resp, err := c.Get(u)
				if err != nil {
					b.Error(err)
					return false
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				spent[which].Add(int64(time.Since(t0)))
				if resp.StatusCode != http.StatusOK || n != int64(size.n) {
					b.Errorf("GET: %d, %d bytes", resp.StatusCode, n)
					return false
				}
				return true
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					k := int(i % keys)
					first := int(i % 2)
					urls := [2]string{layerURLs[k], gradleURLs[k]}
					if !get(first, urls[first]) || !get(1-first, urls[1-first]) {
						return
					}
				}
			})
			b.ReportMetric(float64(spent[1].Load())/float64(max(spent[0].Load(), 1)), "oci/gradle-throughput")
		})
		srv.Close()
	}
}

// BenchmarkCacheExport200Layers is one BuildKit cache export of 200 new
// layers (4 KiB each) the way containerd's pusher sends them: HEAD (a
// miss), POST (an upload session), monolithic PUT, then the manifest. One
// op is a whole export.
func BenchmarkCacheExport200Layers(b *testing.B) {
	const layers = 200
	cache, _ := cachetest.NewWithStore(b, cachetest.Options{MaxSize: 8 << 30})
	a := New(cache, Options{})
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := benchClient()
	do := func(method, url string, body []byte, header ...string) *http.Response {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, _ := http.NewRequest(method, url, rd)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	seed := adaptertest.RandomBytes(b, 4<<10)
	var export int
	b.ResetTimer()
	for b.Loop() {
		export++
		var descs []string
		for l := range layers {
			// A distinct layer per export: every HEAD is a miss.
			body := append([]byte(fmt.Sprintf("%d/%d", export, l)), seed...)
			sum := sha256.Sum256(body)
			d := "sha256:" + hex.EncodeToString(sum[:])
			if resp := do("HEAD", srv.URL+"/v2/bench/app/blobs/"+d, nil); resp.StatusCode != http.StatusNotFound {
				b.Fatalf("HEAD: %d", resp.StatusCode)
			}
			resp := do("POST", srv.URL+"/v2/bench/app/blobs/uploads/", nil)
			if resp.StatusCode != http.StatusAccepted {
				b.Fatalf("POST: %d", resp.StatusCode)
			}
			if resp := do("PUT", srv.URL+resp.Header.Get("Location")+"?digest="+d, body, "Content-Type", "application/octet-stream"); resp.StatusCode != http.StatusCreated {
				b.Fatalf("PUT: %d", resp.StatusCode)
			}
			descs = append(descs, fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, layerType, d, len(body)))
		}
		cfg := []byte(fmt.Sprintf(`{"export":%d}`, export))
		sum := sha256.Sum256(cfg)
		cd := "sha256:" + hex.EncodeToString(sum[:])
		do("POST", srv.URL+"/v2/bench/app/blobs/uploads/?digest="+cd, cfg)
		m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[%s]}`,
			ociManifest, cacheConfig, cd, len(cfg), strings.Join(descs, ","))
		if resp := do("PUT", srv.URL+"/v2/bench/app/manifests/buildcache", []byte(m), "Content-Type", ociManifest); resp.StatusCode != http.StatusCreated {
			b.Fatalf("manifest PUT: %d", resp.StatusCode)
		}
	}
	b.ReportMetric(float64(layers*b.N)/b.Elapsed().Seconds(), "layers/s")
}
