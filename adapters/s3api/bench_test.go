package s3api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/adapters/gradle"
	"github.com/tuist/fabrik-node/internal/adaptertest"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
)

// benchClients is the number of concurrent clients (as the other adapters'
// benchmarks).
const benchClients = 16

const benchKeys = 64

func benchHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * benchClients, MaxConnsPerHost: 2 * benchClients}}
}

func runParallel(b *testing.B, op func(i int64) error) {
	b.SetParallelism((benchClients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var seq atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(seq.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// signHeaders signs a GET of url once with the test key pair; the
// signature stays valid (within the clock skew) for the whole run, so the
// benchmark measures the node's verification, not the client's signing.
func signHeaders(b *testing.B, url string) http.Header {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-Amz-Content-Sha256", unsignedPayload)
	creds := aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, unsignedPayload, "s3", "us-east-1", time.Now(),
		func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }); err != nil {
		b.Fatal(err)
	}
	return req.Header
}

func getLoop(b *testing.B, urls []string, headers []http.Header, size int) {
	c := benchHTTPClient()
	b.SetBytes(int64(size))
	cpu := cpuTime()
	defer func() {
		// Client and server share the process: CPU per request of both,
		// comparable between variants when wall time is mostly queueing.
		b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	}()
	runParallel(b, func(i int64) error {
		k := i % benchKeys
		req, _ := http.NewRequest(http.MethodGet, urls[k], nil)
		if headers != nil {
			for h, v := range headers[k] {
				req.Header[h] = v
			}
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != int64(size) {
			return fmt.Errorf("GET %s: %d, %d bytes", urls[k], resp.StatusCode, n)
		}
		return nil
	})
}

// GetObject 4 KiB hits against the Gradle adapter's GET on the same run and
// the same kind of cache: anonymous S3 reads, signed reads verified against
// the key pair, and Gradle.
func BenchmarkGet4KiB(b *testing.B) {
	const size = 4 << 10
	seed := func(c adapters.Cache, ns string, key func(int) string) {
		for k := range benchKeys {
			ref := messages.Ref{Namespace: ns, Key: key(k)}
			res := adapters.Store(context.Background(), c, ref, messages.Meta{Attrs: map[string]string{attrETag: "x"}},
				adapters.Upload{Body: strings.NewReader(string(adaptertest.RandomBytes(b, size))), Length: size})
			if res.Outcome != adapters.Stored {
				b.Fatal(res.Err)
			}
		}
	}
	s3Key := func(k int) string { return fmt.Sprintf("prefix/a/b/c/%032x", k) }
	for _, variant := range []string{"s3-anonymous", "s3-signed", "gradle"} {
		b.Run(variant, func(b *testing.B) {
			cache := cachetest.New(b)
			mux := http.NewServeMux()
			var urls []string
			var headers []http.Header
			switch variant {
			case "gradle":
				gradle.New(cache, gradle.Options{}).Routes(mux)
				seed(cache, gradle.Namespace, func(k int) string { return fmt.Sprintf("%032x", k) })
			default:
				opts := Options{}
				if variant == "s3-signed" {
					opts = keyed()
				}
				New(cache, opts).Routes(mux)
				seed(cache, "s3/bench", s3Key)
			}
			srv := httptest.NewServer(mux)
			defer srv.Close()
			for k := range benchKeys {
				if variant == "gradle" {
					urls = append(urls, fmt.Sprintf("%s/cache/%032x", srv.URL, k))
					continue
				}
				urls = append(urls, srv.URL+"/bench/"+s3Key(k))
				if variant == "s3-signed" {
					headers = append(headers, signHeaders(b, urls[k]))
				}
			}
			getLoop(b, urls, headers, size)
		})
	}
}

// The cost of verifying one header-signed request, outside HTTP.
func BenchmarkSigV4Verify(b *testing.B) {
	a := New(cachetest.New(b), keyed())
	url := "http://127.0.0.1:5073/sccache/prefix/a/b/c/abcdef0123456789"
	h := signHeaders(b, url)
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header = h
	req.RequestURI = "/sccache/prefix/a/b/c/abcdef0123456789"
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for range b.N {
		if _, aerr := a.authenticate(req, adapters.Read); aerr != nil {
			b.Fatal(aerr)
		}
	}
	// CPU time per verification: on a shared machine wall time mostly
	// measures the wait for a core.
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// cpuTime is this process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
