package fabrik

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"testing"

	"github.com/tuist/fabrik-node/messages"
)

// Loopback benchmarks of one request through the real client tier and the
// real server over a real store: go test -bench . -run '^$' ./tier/fabrik/

var benchSizes = []int{4 << 10, 1 << 20}

func benchData(size int) ([]byte, messages.Meta) {
	data := bytes.Repeat([]byte("fabrik-bench-"), size/13+1)[:size]
	sum := sha256.Sum256(data)
	return data, messages.Meta{Hash: hex.EncodeToString(sum[:]), Size: int64(size), BuildSystem: "bench"}
}

func BenchmarkGet(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			reg := startRegional(b, nil)
			tr := newTier(b, "grpc://"+reg.addr, Options{})
			data, meta := benchData(size)
			ref := messages.Ref{Namespace: "bench", Key: "get"}
			if err := tr.Put(context.Background(), ref, meta, bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				_, body, err := tr.Get(ctx, ref)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, body)
				body.Close()
				if err != nil || n != int64(size) {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
		})
	}
}

func BenchmarkPut(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			reg := startRegional(b, nil)
			tr := newTier(b, "grpc://"+reg.addr, Options{})
			data, meta := benchData(size)
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				ref := messages.Ref{Namespace: "bench", Key: fmt.Sprintf("put-%d", i)}
				if err := tr.Put(ctx, ref, meta, bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStat is one unary round trip (Exists), the floor under Get and Put.
func BenchmarkStat(b *testing.B) {
	reg := startRegional(b, nil)
	tr := newTier(b, "grpc://"+reg.addr, Options{})
	data, meta := benchData(4 << 10)
	ref := messages.Ref{Namespace: "bench", Key: "stat"}
	if err := tr.Put(context.Background(), ref, meta, bytes.NewReader(data)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Stat(context.Background(), ref); err != nil {
			b.Fatal(err)
		}
	}
}
