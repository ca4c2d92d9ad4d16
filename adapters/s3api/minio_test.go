package s3api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tuist/fabrik-node/internal/adaptertest"
)

func minioClient(t *testing.T, s *server, secret string, transport ...http.RoundTripper) *minio.Client {
	t.Helper()
	u, _ := url.Parse(s.URL)
	opts := &minio.Options{Creds: credentials.NewStaticV4(testKeyID, secret, ""), Region: "us-east-1",
		BucketLookup: minio.BucketLookupPath, MaxRetries: 1}
	if len(transport) > 0 {
		opts.Transport = transport[0]
	}
	c, err := minio.New(u.Host, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// minio-go signs PUT bodies over plain HTTP chunk by chunk
// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD): each chunk's signature is verified,
// and a body altered in transit is refused and stores nothing.
func TestMinioStreamingSignature(t *testing.T) {
	s := newServer(t, keyed())
	ctx := context.Background()
	c := minioClient(t, s, testSecret)
	if err := c.MakeBucket(ctx, "mcbucket", minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("MakeBucket: %v", err)
	}
	body := adaptertest.RandomBytes(t, 300_000)
	info, err := c.PutObject(ctx, "mcbucket", "streamed", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
	if err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if info.ETag != md5Hex(body) {
		t.Fatalf("ETag %s, want %s", info.ETag, md5Hex(body))
	}
	obj, err := c.GetObject(ctx, "mcbucket", "streamed", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("GetObject: %v, %d bytes", err, len(got))
	}
	var keys []string
	for o := range c.ListObjects(ctx, "mcbucket", minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	if len(keys) != 1 || keys[0] != "streamed" {
		t.Fatalf("ListObjects: %v", keys)
	}
	if err := c.RemoveObject(ctx, "mcbucket", "streamed", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := s.objects(t, "mcbucket"); n != 0 {
		t.Fatalf("%d objects after RemoveObject", n)
	}
}

// A chunk whose signature does not chain from the request's is refused.
func TestChunkSignatureVerified(t *testing.T) {
	s := newServer(t, keyed())
	ctx := context.Background()
	// Flip one byte of the body after minio-go signed it: the chunk
	// signatures no longer match.
	c := minioClient(t, s, testSecret, flipTransport{})
	body := adaptertest.RandomBytes(t, 200_000)
	_, err := c.PutObject(ctx, "mcbucket", "tampered", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
	if err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("tampered streaming PUT: %v, want a signature mismatch", err)
	}
	if n := s.objects(t, "mcbucket"); n != 0 {
		t.Fatalf("%d objects stored from a tampered body", n)
	}
	if n := s.stagingFiles(t); n != 0 {
		t.Fatalf("%d staging files left", n)
	}
}
