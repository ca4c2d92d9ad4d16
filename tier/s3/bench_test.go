package s3

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tuist/fabrik-node/internal/minio"
	"github.com/tuist/fabrik-node/messages"
)

// BenchmarkGet measures a direct S3 GET through the tier against the raw SDK
// on the same object, so the difference is what the tier adds. A key ref
// costs a second request (the key entry) on top.
//
//	go test ./tier/s3 -run '^$' -bench Get -benchtime 2s
func BenchmarkGet(b *testing.B) {
	srv := minio.Start(b)
	srv.CreateBucket(b, "bench")
	tr := newTier(b, srv, "bench", "tenant/", 30*time.Second)
	raw := srv.Client()
	ctx := context.Background()
	buf := make([]byte, 32<<10)
	for _, size := range []struct {
		name string
		n    int
	}{{"4KiB", 4 << 10}, {"1MiB", 1 << 20}} {
		data, meta := content(uint64(size.n), size.n)
		cas := messages.Ref{Namespace: messages.CAS, Key: meta.Hash}
		key := messages.Ref{Namespace: "gradle", Key: "bench-" + size.name}
		if err := tr.Put(ctx, key, meta, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		objectKey := tr.blobKey(meta.Hash)

		b.Run("raw-sdk/"+size.name, func(b *testing.B) {
			b.SetBytes(int64(size.n))
			for b.Loop() {
				out, err := raw.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bench"), Key: aws.String(objectKey)})
				if err != nil {
					b.Fatal(err)
				}
				drain(b, out.Body, buf, size.n)
			}
		})
		for _, tc := range []struct {
			name string
			ref  messages.Ref
		}{{"tier-cas", cas}, {"tier-key", key}} {
			b.Run(tc.name+"/"+size.name, func(b *testing.B) {
				b.SetBytes(int64(size.n))
				for b.Loop() {
					_, body, err := tr.Get(ctx, tc.ref)
					if err != nil {
						b.Fatal(err)
					}
					drain(b, body, buf, size.n)
				}
			})
		}
	}
}

func drain(b *testing.B, body io.ReadCloser, buf []byte, want int) {
	n, err := io.CopyBuffer(io.Discard, body, buf)
	body.Close()
	if err != nil || n != int64(want) {
		b.Fatalf("read %d bytes, %v; want %d", n, err, want)
	}
}
