package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tuist/fabrik-node/internal/minio"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

func newTier(t testing.TB, srv *minio.Server, bucket, prefix string, timeout time.Duration) *Tier {
	t.Helper()
	tr, err := New(context.Background(), "s3-test", Options{
		Bucket: bucket, Prefix: prefix, Endpoint: srv.Endpoint,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Timeout: timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// content returns n pseudo-random bytes (seeded, so failures reproduce) and
// their meta.
func content(seed uint64, n int) ([]byte, messages.Meta) {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b)
	sum := sha256.Sum256(b)
	return b, messages.Meta{Hash: hex.EncodeToString(sum[:]), Size: int64(n)}
}

// onlyReader hides any Seek method, as a network body would.
type onlyReader struct{ io.Reader }

func readAll(t *testing.T, tr *Tier, ref messages.Ref) (messages.Meta, []byte) {
	t.Helper()
	meta, body, err := tr.Get(context.Background(), ref)
	if err != nil {
		t.Fatalf("get %s: %v", ref, err)
	}
	defer body.Close()
	got, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("read %s: %v", ref, err)
	}
	return meta, got
}

// countObjects lists what the tier really wrote, with a raw client.
func countObjects(t *testing.T, srv *minio.Server, bucket, prefix string) int {
	t.Helper()
	out, err := srv.Client().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{
		Bucket: aws.String(bucket), Prefix: aws.String(prefix),
	})
	if err != nil {
		t.Fatalf("list %s/%s: %v", bucket, prefix, err)
	}
	return len(out.Contents)
}

// TestTier runs the functional tests against one MinIO: starting a server
// costs seconds, the tests themselves milliseconds. Each subtest has its own
// bucket.
func TestTier(t *testing.T) {
	// Parallel: mostly waiting on MinIO and timeouts. TestLargeArtifactBoundedMemory
	// stays serial (parallel tests start after it) so its heap figures are its own.
	t.Parallel()
	srv := minio.Start(t)
	for _, tc := range []struct {
		name string
		run  func(*testing.T, *minio.Server)
	}{
		{"RoundTripCASAndKeys", testRoundTripCASAndKeys},
		{"MissIsNotFound", testMissIsNotFound},
		{"DedupeTwoKeysOneBlob", testDedupeTwoKeysOneBlob},
		{"TenantIsolation", testTenantIsolation},
		{"PutRejectsWrongContent", testPutRejectsWrongContent},
		{"TwoWritableBuckets", testTwoWritableBuckets},
		{"SmallBlobInKeyEntry", testSmallBlobInKeyEntry},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, srv) })
	}
}

// bucketFor names a subtest's bucket after the subtest.
func bucketFor(t *testing.T) string {
	name := t.Name()
	return strings.ToLower(name[strings.LastIndex(name, "/")+1:])
}

func testRoundTripCASAndKeys(t *testing.T, srv *minio.Server) {
	srv.CreateBucket(t, bucketFor(t))
	tr := newTier(t, srv, bucketFor(t), "tenant-a", 10*time.Second)
	ctx := context.Background()

	data, meta := content(1, 5<<20+123) // multi-MiB, not a multiple of any buffer
	cas := messages.Ref{Namespace: messages.CAS, Key: meta.Hash}
	// A non-seekable body takes the unsigned-payload path.
	if err := tr.Put(ctx, cas, meta, onlyReader{bytes.NewReader(data)}); err != nil {
		t.Fatalf("put cas: %v", err)
	}
	gotMeta, got := readAll(t, tr, cas)
	if !bytes.Equal(got, data) || gotMeta.Size != meta.Size || gotMeta.Hash != meta.Hash {
		t.Fatalf("cas round trip: got %d bytes meta %+v, want %d bytes %s", len(got), gotMeta, len(data), meta.Hash)
	}
	if st, err := tr.Stat(ctx, cas); err != nil || st.Size != meta.Size {
		t.Fatalf("stat cas: %+v %v", st, err)
	}

	small, smeta := content(2, 4096)
	smeta.BuildSystem = "turborepo"
	smeta.Attrs = map[string]string{"x-artifact-duration": "1234", "x-artifact-tag": "sig"}
	key := messages.Ref{Namespace: "turbo/team-1", Key: "f00d-task-hash"}
	if err := tr.Put(ctx, key, smeta, bytes.NewReader(small)); err != nil {
		t.Fatalf("put key: %v", err)
	}
	gotMeta, got = readAll(t, tr, key)
	if !bytes.Equal(got, small) {
		t.Fatalf("key round trip: content differs")
	}
	if gotMeta.Hash != smeta.Hash || gotMeta.Size != smeta.Size || gotMeta.BuildSystem != "turborepo" ||
		gotMeta.Attrs["x-artifact-duration"] != "1234" || gotMeta.Attrs["x-artifact-tag"] != "sig" || gotMeta.CreatedAt.IsZero() {
		t.Fatalf("key meta = %+v", gotMeta)
	}
	st, err := tr.Stat(ctx, key)
	if err != nil || st.Hash != smeta.Hash || st.Attrs["x-artifact-tag"] != "sig" {
		t.Fatalf("stat key: %+v %v", st, err)
	}
	// The blob of a key is also reachable by its hash.
	if _, got = readAll(t, tr, messages.Ref{Namespace: messages.CAS, Key: smeta.Hash}); !bytes.Equal(got, small) {
		t.Fatalf("blob of key not readable as CAS")
	}

	// An empty artifact (an empty output file) is a valid blob.
	_, emeta := content(0, 0)
	empty := messages.Ref{Namespace: "nx", Key: "empty"}
	if err := tr.Put(ctx, empty, emeta, bytes.NewReader(nil)); err != nil {
		t.Fatalf("put empty: %v", err)
	}
	if gotMeta, got = readAll(t, tr, empty); len(got) != 0 || gotMeta.Hash != emeta.Hash {
		t.Fatalf("empty round trip: %d bytes, meta %+v", len(got), gotMeta)
	}

	if err := tr.Delete(ctx, key); err != nil {
		t.Fatalf("delete key: %v", err)
	}
	if _, err := tr.Stat(ctx, key); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("stat after delete: %v, want ErrNotFound", err)
	}
	if err := tr.Delete(ctx, cas); err != nil {
		t.Fatalf("delete cas: %v", err)
	}
	if _, _, err := tr.Get(ctx, cas); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
	if err := tr.Delete(ctx, cas); err != nil {
		t.Fatalf("deleting a missing artifact: %v", err)
	}
}

func testMissIsNotFound(t *testing.T, srv *minio.Server) {
	srv.CreateBucket(t, bucketFor(t))
	tr := newTier(t, srv, bucketFor(t), "", 10*time.Second)
	ctx := context.Background()
	_, meta := content(3, 10)
	for _, ref := range []messages.Ref{{Namespace: messages.CAS, Key: meta.Hash}, {Namespace: "gradle", Key: "nope"}} {
		if _, _, err := tr.Get(ctx, ref); !errors.Is(err, tier.ErrNotFound) {
			t.Errorf("get %s: %v, want ErrNotFound", ref, err)
		}
		if _, err := tr.Stat(ctx, ref); !errors.Is(err, tier.ErrNotFound) {
			t.Errorf("stat %s: %v, want ErrNotFound", ref, err)
		}
	}
	// A missing bucket is misconfiguration: an error, but not a miss.
	other := newTier(t, srv, "no-such-bucket", "", 10*time.Second)
	_, _, err := other.Get(ctx, messages.Ref{Namespace: messages.CAS, Key: meta.Hash})
	if err == nil || errors.Is(err, tier.ErrNotFound) {
		t.Errorf("get from missing bucket: %v, want a non-miss error", err)
	}
}

func testDedupeTwoKeysOneBlob(t *testing.T, srv *minio.Server) {
	srv.CreateBucket(t, bucketFor(t))
	tr := newTier(t, srv, bucketFor(t), "t/", 10*time.Second)
	ctx := context.Background()
	data, meta := content(4, 100_000)
	for _, k := range []string{"key-1", "key-2"} {
		if err := tr.Put(ctx, messages.Ref{Namespace: "gradle", Key: k}, meta, bytes.NewReader(data)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	// Once the blob exists the body is not read at all: a second upload of
	// the same content costs one HEAD and the entry.
	if err := tr.Put(ctx, messages.Ref{Namespace: "gradle", Key: "key-3"}, meta, failingReader{}); err != nil {
		t.Fatalf("put of a stored blob read its body: %v", err)
	}
	if n := countObjects(t, srv, bucketFor(t), "t/cas/"); n != 1 {
		t.Fatalf("%d cas objects, want 1", n)
	}
	if n := countObjects(t, srv, bucketFor(t), "t/keys/gradle/"); n != 3 {
		t.Fatalf("%d key entries, want 3", n)
	}
	want := "t/cas/" + meta.Hash[:2] + "/" + meta.Hash
	if _, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucketFor(t)), Key: aws.String(want)}); err != nil {
		t.Fatalf("blob not at %s: %v", want, err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("body must not be read") }

func testTenantIsolation(t *testing.T, srv *minio.Server) {
	srv.CreateBucket(t, "shared")
	a := newTier(t, srv, "shared", "tenant-a/", 10*time.Second)
	// "tenant-a" is a prefix of "tenant-ab": the trailing slash keeps them apart.
	ab := newTier(t, srv, "shared", "tenant-ab", 10*time.Second)
	ctx := context.Background()
	data, meta := content(5, 2048)
	ref := messages.Ref{Namespace: "nx", Key: "task"}
	if err := a.Put(ctx, ref, meta, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ab.Get(ctx, ref); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("other tenant's key visible: %v", err)
	}
	if _, err := ab.Stat(ctx, messages.Ref{Namespace: messages.CAS, Key: meta.Hash}); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("other tenant's blob visible: %v", err)
	}
	if _, got := readAll(t, a, ref); !bytes.Equal(got, data) {
		t.Fatal("owner cannot read its artifact")
	}
}

func testPutRejectsWrongContent(t *testing.T, srv *minio.Server) {
	srv.CreateBucket(t, bucketFor(t))
	tr := newTier(t, srv, bucketFor(t), "", 10*time.Second)
	ctx := context.Background()
	_, meta := content(6, 4096)
	other, _ := content(7, 4096)
	ref := messages.Ref{Namespace: "gradle", Key: "k"}
	// The server checks the SHA-256 we declare against what it receives.
	if err := tr.Put(ctx, ref, meta, bytes.NewReader(other)); !errors.Is(err, tier.ErrInvalid) {
		t.Fatalf("put with wrong content: %v, want ErrInvalid", err)
	}
	// The entry is written after the blob, so nothing points at a missing blob.
	if _, err := tr.Stat(ctx, ref); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("stat after rejected put: %v, want ErrNotFound", err)
	}
	if n := countObjects(t, srv, bucketFor(t), ""); n != 0 {
		t.Fatalf("%d objects after rejected put, want 0", n)
	}
	// A body shorter than declared fails instead of storing a truncated blob.
	for _, short := range []io.Reader{onlyReader{bytes.NewReader(other[:100])}, bytes.NewReader(other[:100])} {
		if err := tr.Put(ctx, ref, meta, short); !errors.Is(err, tier.ErrInvalid) {
			t.Fatalf("short body %T: %v, want ErrInvalid", short, err)
		}
	}
	// A CAS key must be the content hash.
	_, m2 := content(8, 10)
	if err := tr.Put(ctx, messages.Ref{Namespace: messages.CAS, Key: m2.Hash}, meta, bytes.NewReader(other)); !errors.Is(err, tier.ErrInvalid) {
		t.Fatalf("cas key/hash mismatch: %v, want ErrInvalid", err)
	}
	if _, _, err := tr.Get(ctx, messages.Ref{Namespace: "gradle", Key: "../x"}); !errors.Is(err, tier.ErrInvalid) {
		t.Fatalf("dot-dot key: %v, want ErrInvalid", err)
	}
}

func testTwoWritableBuckets(t *testing.T, srv *minio.Server) {
	srv.CreateBucket(t, "us-cache")
	srv.CreateBucket(t, "eu-cache")
	us := newTier(t, srv, "us-cache", "tenant/", 10*time.Second)
	eu := newTier(t, srv, "eu-cache", "tenant/", 10*time.Second)
	ctx := context.Background()
	data, meta := content(9, 50_000)
	ref := messages.Ref{Namespace: "bazel-ac/main", Key: "action"}
	for _, tr := range []*Tier{us, eu} {
		if err := tr.Put(ctx, ref, meta, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	for _, bucket := range []string{"us-cache", "eu-cache"} {
		if n := countObjects(t, srv, bucket, "tenant/"); n != 2 {
			t.Fatalf("bucket %s holds %d objects, want blob + entry", bucket, n)
		}
	}
	if _, got := readAll(t, eu, ref); !bytes.Equal(got, data) {
		t.Fatal("eu copy differs")
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct{ in, bucket, prefix string }{
		{"s3://bucket/prefix/", "bucket", "prefix/"},
		{"s3://bucket/prefix", "bucket", "prefix/"},
		{"s3://bucket/a/b/", "bucket", "a/b/"},
		{"s3://bucket", "bucket", ""},
		{"s3://bucket/", "bucket", ""},
	} {
		b, p, err := ParseURL(tc.in)
		if err != nil || b != tc.bucket || p != tc.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", tc.in, b, p, err, tc.bucket, tc.prefix)
		}
	}
	for _, bad := range []string{"grpc://host:1", "s3:///prefix", "s3://b/p?x=1", "::"} {
		if _, _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
	if _, err := New(context.Background(), "x", Options{}); err == nil || !strings.Contains(err.Error(), "bucket") {
		t.Errorf("New without bucket: %v", err)
	}
}

// A key entry carries a small blob, so a key read is one request: it reads
// without the blob, and Stat needs no HEAD of it either. Entries without
// data (a large blob, one written before entries carried blobs) and entries
// whose data does not match send the read to the blob.
func testSmallBlobInKeyEntry(t *testing.T, srv *minio.Server) {
	bucket := bucketFor(t)
	srv.CreateBucket(t, bucket)
	tr := newTier(t, srv, bucket, "p/", 10*time.Second)
	ctx := context.Background()
	raw := srv.Client()
	entryOf := func(k string) keyEntry {
		out, err := raw.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("p/keys/gradle/" + k)})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Body.Close()
		var e keyEntry
		if err := json.NewDecoder(out.Body).Decode(&e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	putEntry := func(k string, e keyEntry) {
		b, _ := json.Marshal(e)
		if _, err := raw.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("p/keys/gradle/" + k), Body: bytes.NewReader(b)}); err != nil {
			t.Fatal(err)
		}
	}
	deleteBlob := func(hash string) {
		if _, err := raw.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("p/cas/" + hash[:2] + "/" + hash)}); err != nil {
			t.Fatal(err)
		}
	}
	key := func(k string) messages.Ref { return messages.Ref{Namespace: "gradle", Key: k} }

	small, smeta := content(20, inlineMax)
	if err := tr.Put(ctx, key("small"), smeta, bytes.NewReader(small)); err != nil {
		t.Fatal(err)
	}
	if e := entryOf("small"); !bytes.Equal(e.Data, small) {
		t.Fatalf("entry of a %d-byte blob carries %d bytes", len(small), len(e.Data))
	}
	deleteBlob(smeta.Hash) // from here on only the entry can answer
	if meta, got := readAll(t, tr, key("small")); !bytes.Equal(got, small) || meta.Hash != smeta.Hash || meta.Size != smeta.Size {
		t.Fatalf("inline read: %d bytes, meta %+v", len(got), meta)
	}
	if meta, err := tr.Stat(ctx, key("small")); err != nil || meta.Size != smeta.Size {
		t.Fatalf("stat of an inline entry: %+v %v", meta, err)
	}

	large, lmeta := content(21, inlineMax+1)
	if err := tr.Put(ctx, key("large"), lmeta, bytes.NewReader(large)); err != nil {
		t.Fatal(err)
	}
	if e := entryOf("large"); e.Data != nil {
		t.Fatalf("entry of a %d-byte blob carries data", len(large))
	}
	if _, got := readAll(t, tr, key("large")); !bytes.Equal(got, large) {
		t.Fatal("large key read differs")
	}

	// An entry as written before entries carried blobs, and one whose data
	// was tampered with: both read the blob.
	old, ometa := content(22, 1000)
	if err := tr.Put(ctx, key("old"), ometa, bytes.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	e := entryOf("old")
	e.Data = nil
	putEntry("old", e)
	e.Data = bytes.Repeat([]byte{'x'}, len(old))
	putEntry("tampered", e)
	for _, k := range []string{"old", "tampered"} {
		if _, got := readAll(t, tr, key(k)); !bytes.Equal(got, old) {
			t.Fatalf("%s entry: read differs from the blob", k)
		}
	}
	deleteBlob(ometa.Hash)
	for _, k := range []string{"old", "tampered"} {
		if _, _, err := tr.Get(ctx, key(k)); !errors.Is(err, tier.ErrNotFound) {
			t.Fatalf("%s entry without its blob: %v, want ErrNotFound", k, err)
		}
	}
}
