package router_test

import (
	"context"
	"crypto/rand"
	"io"
	"testing"

	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
)

// BenchmarkLocalHit measures a 4 KiB hit through the whole in-process path:
// Ask router -> local tier actor -> store -> file handle -> read.
func BenchmarkLocalHit(b *testing.B) {
	cache := cachetest.New(b)
	ctx := context.Background()
	body := make([]byte, 4096)
	rand.Read(body)
	st, _ := cache.Stage("", int64(len(body)))
	st.Write(body)
	if err := st.Seal(); err != nil {
		b.Fatal(err)
	}
	ref := messages.Ref{Namespace: "gradle", Key: "0123456789abcdef0123456789abcdef"}
	if err := cache.Put(ctx, ref, messages.Meta{}, st); err != nil {
		b.Fatal(err)
	}
	b.Run("stat", func(b *testing.B) {
		for b.Loop() {
			if r, _ := cache.Stat(ctx, ref); !r.Found {
				b.Fatal("miss")
			}
		}
	})
	b.Run("get", func(b *testing.B) {
		for b.Loop() {
			r, _ := cache.Get(ctx, ref)
			if !r.Found {
				b.Fatal("miss")
			}
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
		}
	})
	b.Run("get-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r, _ := cache.Get(ctx, ref)
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
		})
	})
}
