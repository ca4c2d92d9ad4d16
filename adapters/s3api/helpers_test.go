package s3api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
)

const (
	testKeyID  = "AKIDFABRIKTEST"
	testSecret = "fabrik-test-secret-key"
)

// clock is a settable clock for expiry and skew tests.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// server is an S3 API over a real cache, on a test HTTP server.
type server struct {
	*httptest.Server
	api   *Adapter
	cache adapters.Cache
	store *store.Store
	clock *clock
}

func newServer(t *testing.T, opts Options) *server {
	t.Helper()
	cache, st := cachetest.NewWithStore(t, cachetest.Options{})
	c := &clock{}
	if opts.Now == nil {
		opts.Now = c.now
	}
	api := New(cache, opts)
	mux := http.NewServeMux()
	api.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(api.Close)
	return &server{Server: srv, api: api, cache: cache, store: st, clock: c}
}

// client is an aws-sdk-go-v2 S3 client of the server, path style.
func (s *server) client(t *testing.T, keyID, secret string, optFns ...func(*s3.Options)) *s3.Client {
	t.Helper()
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.URL),
		Region:       "us-east-1",
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(keyID, secret, ""),
		Retryer:      aws.NopRetryer{},
	}, optFns...)
}

// stagingFiles counts files in the store's staging directory: multipart
// parts and uploads in flight live there.
func (s *server) stagingFiles(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir(s.store.Stager().Dir())
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// objects counts the keys of a bucket in the local store.
func (s *server) objects(t *testing.T, bucket string) int {
	t.Helper()
	n := 0
	err := s.cache.(adapters.Lister).List(context.Background(), objectsPrefix+bucket, "", "", func(string, messages.Meta) bool { n++; return true })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (s *server) mustGet(t *testing.T, c *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustPut(t *testing.T, c *s3.Client, bucket, key string, body []byte) *s3.PutObjectOutput {
	t.Helper()
	out, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("PutObject %s/%s: %v", bucket, key, err)
	}
	return out
}
