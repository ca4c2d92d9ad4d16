package gocacheprog

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/adapters/gocache"
	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/node"
)

// The cost of one get as the go command sees it: request written, answer
// read, over the real framing and pipes (the go command's side is
// client_test.go's goClient). Targets (issue 12): under 0.2 ms per hit from
// the helper's local directory, under 2 ms from an edge on loopback.

// BenchmarkGetLocalHit: every get is answered from the local directory.
func BenchmarkGetLocalHit(b *testing.B) {
	const entries = 1000
	c := startHelper(b, New(Options{Dir: b.TempDir()}))
	body := make([]byte, 16<<10)
	for i := range entries {
		body[0], body[1] = byte(i), byte(i>>8)
		c.put(actionID(i), body)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := c.get(actionID(i % entries)); res.Miss {
			b.Fatal("miss")
		}
	}
	b.StopTimer()
	c.close()
}

// BenchmarkGetEdgeHit: every get misses locally and is served by a real
// edge node on loopback (the whole node: listener, router, local tier),
// then stored in the helper's directory.
func BenchmarkGetEdgeHit(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10, 256 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			url := startEdge(b)
			body := make([]byte, size)
			for i := 0; i < b.N; i++ {
				body[0], body[1], body[2] = byte(i), byte(i>>8), byte(i>>16)
				edgePut(b, url, actionID(i), body)
			}
			h := New(Options{Dir: b.TempDir(), Edge: EdgeOptions{URL: url}})
			c := startHelper(b, h)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if res := c.get(actionID(i)); res.Miss {
					b.Fatal("miss")
				}
			}
			b.StopTimer()
			c.close()
			if h.Stats.EdgeHits.Load() != int64(b.N) {
				b.Fatalf("%d edge hits of %d gets", h.Stats.EdgeHits.Load(), b.N)
			}
		})
	}
}

// startEdge runs an in-process edge serving only /gocache/ and returns its
// HTTP base URL.
func startEdge(b *testing.B) string {
	b.Helper()
	c := config.Default(config.RoleEdge)
	c.Cache.Dir = b.TempDir()
	c.BuildTools.Enabled = []string{"gocache"}
	c.BuildTools.HTTPBind = "127.0.0.1:0"
	c.Observability.HealthBind, c.Observability.APIBind = "127.0.0.1:0", "127.0.0.1:0"
	c.Fabrik.Bind = "127.0.0.1:0"
	c.Runtime.GracefulShutdownTimeout = config.Duration(2 * time.Second)
	n, err := node.New(node.Options{Role: config.RoleEdge, Config: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Stop(b.Context()) })
	return "http://" + n.Addr("http")
}

func edgePut(b *testing.B, url string, action, body []byte) {
	b.Helper()
	out := sha256.Sum256(body)
	req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/gocache/%x", url, action), bytes.NewReader(body))
	req.Header.Set(gocache.HeaderOutputID, fmt.Sprintf("%x", out))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b.Fatalf("PUT: %s", resp.Status)
	}
}
