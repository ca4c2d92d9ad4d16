package turbo

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
)

// clients is the number of concurrent turbo clients the benchmarks model.
const clients = 16

// benchSizes are a small task output and a large one.
var benchSizes = []struct {
	name string
	n    int
}{{"4KiB", 4 << 10}, {"1MiB", 1 << 20}}

// keySpace bounds the distinct hashes a PUT benchmark writes, so a long run
// overwrites instead of filling the disk.
const keySpace = 256

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * clients, MaxConnsPerHost: 2 * clients}}
}

// parallel runs op from 16 goroutines whatever GOMAXPROCS is.
func parallel(b *testing.B, op func(i int64) error) {
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
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

func BenchmarkPut(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			e := start(b, nil, 0)
			c := benchClient()
			body := randomBytes(b, s.n)
			b.SetBytes(int64(s.n))
			parallel(b, func(i int64) error {
				url := fmt.Sprintf("%s/v8/artifacts/%016x?slug=bench", e.url, i%keySpace)
				req, _ := http.NewRequest("PUT", url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/octet-stream")
				req.Header.Set("x-artifact-duration", "100")
				resp, err := c.Do(req)
				if err != nil {
					return err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					return fmt.Errorf("PUT: %d", resp.StatusCode)
				}
				return nil
			})
		})
	}
}

func BenchmarkGet(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			e := start(b, nil, 0)
			c := benchClient()
			const keys = 64
			for k := range keys {
				url := fmt.Sprintf("%s/v8/artifacts/%016x?slug=bench", e.url, k)
				req, _ := http.NewRequest("PUT", url, bytes.NewReader(randomBytes(b, s.n)))
				resp, err := c.Do(req)
				if err != nil || resp.StatusCode != http.StatusAccepted {
					b.Fatalf("seeding: %v %v", err, resp)
				}
				resp.Body.Close()
			}
			b.SetBytes(int64(s.n))
			parallel(b, func(i int64) error {
				resp, err := c.Get(fmt.Sprintf("%s/v8/artifacts/%016x?slug=bench", e.url, i%keys))
				if err != nil {
					return err
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || n != int64(s.n) {
					return fmt.Errorf("GET: %d, %d bytes, %v", resp.StatusCode, n, err)
				}
				return nil
			})
		})
	}
}
