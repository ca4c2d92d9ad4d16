package s3api

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/tuist/fabrik-node/internal/adaptertest"
)

// errorCode is the S3 error code of an SDK error ("" when it has none).
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func TestObjectRoundTrip(t *testing.T) {
	s := newServer(t, Options{})
	c := s.client(t, "any", "any")
	ctx := context.Background()
	for range 2 { // CreateBucket is idempotent
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("cache")}); err != nil {
			t.Fatalf("CreateBucket: %v", err)
		}
	}
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("cache")}); err != nil {
		t.Fatalf("HeadBucket: %v", err)
	}
	body := adaptertest.RandomBytes(t, 100_000)
	put := mustPut(t, c, "cache", "prefix/a/b/c/abcdef", body)
	if got, want := aws.ToString(put.ETag), `"`+md5Hex(body)+`"`; got != want {
		t.Fatalf("PutObject ETag %s, want %s", got, want)
	}
	if got := s.mustGet(t, c, "cache", "prefix/a/b/c/abcdef"); !bytes.Equal(got, body) {
		t.Fatalf("GetObject returned %d bytes, not the %d put", len(got), len(body))
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("cache"), Key: aws.String("prefix/a/b/c/abcdef")})
	if err != nil {
		t.Fatalf("HeadObject: %v", err)
	}
	if aws.ToInt64(head.ContentLength) != int64(len(body)) || aws.ToString(head.ETag) != aws.ToString(put.ETag) {
		t.Fatalf("HeadObject: length %d etag %s", aws.ToInt64(head.ContentLength), aws.ToString(head.ETag))
	}
	// Range reads: a middle slice, an open end and a suffix are 206.
	for rng, want := range map[string][]byte{
		"bytes=10-19": body[10:20], "bytes=99990-": body[99990:], "bytes=-5": body[len(body)-5:],
	} {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("cache"), Key: aws.String("prefix/a/b/c/abcdef"), Range: aws.String(rng)})
		if err != nil {
			t.Fatalf("GetObject %s: %v", rng, err)
		}
		got, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if !bytes.Equal(got, want) || aws.ToString(out.ContentRange) == "" {
			t.Fatalf("GetObject %s: %d bytes, Content-Range %q", rng, len(got), aws.ToString(out.ContentRange))
		}
	}
	resp, err := http.Get(s.URL + "/cache/prefix/a/b/c/abcdef")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/cache/prefix/a/b/c/abcdef", nil)
	req.Header.Set("Range", "bytes=5-10")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("anonymous range GET: %d, want 206", resp.StatusCode)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("cache"), Key: aws.String("prefix/a/b/c/abcdef"), Range: aws.String("bytes=200000-")})
	if errorCode(err) != "InvalidRange" {
		t.Fatalf("range past the end: %v, want InvalidRange", err)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("cache"), Key: aws.String("prefix/a/b/c/abcdef")}); err != nil {
		t.Fatalf("DeleteObject: %v", err)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("cache"), Key: aws.String("prefix/a/b/c/abcdef")})
	if errorCode(err) != "NoSuchKey" {
		t.Fatalf("GetObject after delete: %v, want NoSuchKey", err)
	}
	var nf interface{ HTTPStatusCode() int }
	if !errors.As(err, &nf) || nf.HTTPStatusCode() != 404 {
		t.Fatalf("NoSuchKey status: %v", err)
	}
	_, err = c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("never-created")})
	if !errors.As(err, &nf) || nf.HTTPStatusCode() != 404 {
		t.Fatalf("HeadBucket of an unknown bucket: %v, want 404", err)
	}
	_, err = c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("never-created")})
	if errorCode(err) != "NoSuchBucket" {
		t.Fatalf("ListObjectsV2 of an unknown bucket: %v, want NoSuchBucket", err)
	}
}

// sccache never creates its bucket: the first PUT does, and the GET of a
// missing key in it is a plain 404.
func TestSccacheSequence(t *testing.T) {
	s := newServer(t, Options{})
	var statuses []int
	do := func(method, path, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		statuses = append(statuses, resp.StatusCode)
		return resp
	}
	do("GET", "/sccache/.sccache_check", "")
	do("PUT", "/sccache/.sccache_check", "Hello, World!")
	do("GET", "/sccache/prefix/a/b/c/abcdef0123", "")
	do("PUT", "/sccache/prefix/a/b/c/abcdef0123", "object file")
	got := do("GET", "/sccache/prefix/a/b/c/abcdef0123", "")
	want := []int{404, 200, 404, 200, 200}
	for i := range want {
		if statuses[i] != want[i] {
			t.Fatalf("sccache sequence statuses %v, want %v", statuses, want)
		}
	}
	if b, _ := io.ReadAll(got.Body); string(b) != "object file" {
		t.Fatalf("hit returned %q", b)
	}
	if s.objects(t, "sccache") != 2 {
		t.Fatalf("bucket holds %d objects, want 2", s.objects(t, "sccache"))
	}
}

// Objects dedupe with every other key: two keys with the same body are one blob.
func TestObjectsAreCASBlobs(t *testing.T) {
	s := newServer(t, Options{})
	c := s.client(t, "k", "s")
	body := adaptertest.RandomBytes(t, 5000)
	mustPut(t, c, "b1", "x", body)
	mustPut(t, c, "b2", "y", body)
	_, objects := s.store.Usage()
	// One blob for the body, one for the (empty) bucket markers.
	if objects != 2 {
		t.Fatalf("store holds %d blobs, want 2 (the body once, the empty marker once)", objects)
	}
}

func TestUnsupportedIsRefusedAndStoresNothing(t *testing.T) {
	s := newServer(t, Options{})
	for _, tc := range []struct{ method, path string }{
		{"PUT", "/b/k?acl"}, {"PUT", "/b/k?tagging"}, {"POST", "/b/k"}, {"GET", "/b/k?versionId=3"},
	} {
		req, _ := http.NewRequest(tc.method, s.URL+tc.path, strings.NewReader("<AccessControlPolicy/>"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotImplemented {
			t.Errorf("%s %s: %d, want 501", tc.method, tc.path, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("PUT", s.URL+"/b/copy", nil)
	req.Header.Set("X-Amz-Copy-Source", "/b/k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented {
		t.Errorf("CopyObject: %d, want 501", resp.StatusCode)
	}
	if n := s.objects(t, "b"); n != 0 {
		t.Fatalf("%d objects stored by refused requests", n)
	}
}

// Virtual-host style: the bucket is the Host's first label.
func TestVirtualHostStyle(t *testing.T) {
	s := newServer(t, Options{VirtualHostDomain: "localhost"})
	do := func(method, host, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, _ := do("PUT", "vhost.localhost:5073", "/dir/key", "virtual"); st != 200 {
		t.Fatalf("virtual-host PUT: %d", st)
	}
	if st, body := do("GET", "127.0.0.1", "/vhost/dir/key", ""); st != 200 || body != "virtual" {
		t.Fatalf("path-style GET of a virtual-host PUT: %d %q", st, body)
	}
	if st, body := do("GET", "vhost.localhost", "/?list-type=2", ""); st != 200 || !strings.Contains(body, "<Key>dir/key</Key>") {
		t.Fatalf("virtual-host list: %d %s", st, body)
	}
	// DeleteBucket refuses a bucket with objects, then deletes an empty one.
	if st, body := do("DELETE", "vhost.localhost", "/", ""); st != 409 || !strings.Contains(body, "BucketNotEmpty") {
		t.Fatalf("DeleteBucket of a full bucket: %d %s", st, body)
	}
	do("DELETE", "vhost.localhost", "/dir/key", "")
	if st, _ := do("DELETE", "vhost.localhost", "/", ""); st != 204 {
		t.Fatalf("DeleteBucket: %d", st)
	}
	if st, _ := do("HEAD", "vhost.localhost", "/", ""); st != 404 {
		t.Fatalf("HeadBucket after DeleteBucket: %d", st)
	}
}

func TestPutObjectTooLarge(t *testing.T) {
	s := newServer(t, Options{MaxArtifactSize: 1000})
	c := s.client(t, "k", "s")
	_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("big"), Body: bytes.NewReader(make([]byte, 1001))})
	if errorCode(err) != "EntityTooLarge" {
		t.Fatalf("PUT over max_artifact_size: %v, want EntityTooLarge", err)
	}
	if s.objects(t, "b") != 0 || s.stagingFiles(t) != 0 {
		t.Fatal("a refused PUT left an object or a staging file")
	}
}

func TestConditionalRequests(t *testing.T) {
	s := newServer(t, Options{})
	c := s.client(t, "k", "s")
	ctx := context.Background()
	put := mustPut(t, c, "b", "k", []byte("first"))
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), Body: strings.NewReader("second"), IfNoneMatch: aws.String("*")})
	if errorCode(err) != "PreconditionFailed" {
		t.Fatalf("PUT If-None-Match: * over an existing key: %v, want PreconditionFailed", err)
	}
	if got := s.mustGet(t, c, "b", "k"); string(got) != "first" {
		t.Fatalf("conditional PUT overwrote: %q", got)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), IfNoneMatch: put.ETag})
	var st interface{ HTTPStatusCode() int }
	if !errors.As(err, &st) || st.HTTPStatusCode() != http.StatusNotModified {
		t.Fatalf("GET If-None-Match: its ETag: %v, want 304", err)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), IfMatch: aws.String(`"other"`)})
	if !errors.As(err, &st) || st.HTTPStatusCode() != http.StatusPreconditionFailed {
		t.Fatalf("GET If-Match: another ETag: %v, want 412", err)
	}
}

// SigV2 is accepted as well-formed without a key pair, refused with one.
func TestSigV2(t *testing.T) {
	for _, keys := range []bool{false, true} {
		opts := Options{}
		if keys {
			opts = keyed()
		}
		s := newServer(t, opts)
		st, _ := rawPut(t, s.URL+"/b/v2", "x", map[string]string{"Authorization": "AWS AKID:c2lnbmF0dXJl", "Date": time.Now().UTC().Format(http.TimeFormat)})
		if want := map[bool]int{false: 200, true: 403}[keys]; st != want {
			t.Errorf("SigV2 PUT with key pair %v: %d, want %d", keys, st, want)
		}
	}
}
