package node

// Layer 2 end to end: edges in front of a regional node that backs onto a
// real MinIO. Every node and MinIO listen on 127.0.0.1; artifacts travel
// through the Gradle adapter, the Fabrik protocol and the S3 tier exactly as
// in production.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/internal/minio"
	"github.com/tuist/fabrik-node/messages"
	s3tier "github.com/tuist/fabrik-node/tier/s3"
)

const s3Prefix = "tenant-acme/"

// s3Upstream is an upstream entry for bucket on srv under the test prefix.
func s3Upstream(srv *minio.Server, bucket string) config.UpstreamConfig {
	u := upstream("s3://" + bucket + "/" + s3Prefix)
	u.Endpoint, u.AccessKey, u.SecretKey, u.Region = srv.Endpoint, srv.AccessKey, srv.SecretKey, "us-east-1"
	u.Timeout = config.Duration(3 * time.Second)
	return u
}

// s3Has reports whether bucket holds object key (HEAD with the raw client,
// so the check does not depend on the tier under test).
func s3Has(t *testing.T, srv *minio.Server, bucket, key string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := srv.Client().HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	return err == nil
}

// s3Keys lists every object in bucket.
func s3Keys(t *testing.T, srv *minio.Server, bucket string) []string {
	t.Helper()
	out, err := srv.Client().ListObjectsV2(t.Context(), &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list %s: %v", bucket, err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// gradleObjects are the two objects an S3 tier writes for a Gradle key.
func gradleObjects(key, hash string) []string {
	return []string{s3Prefix + "keys/gradle/" + key, s3Prefix + "cas/" + hash[:2] + "/" + hash}
}

// seeded is a reproducible byte stream, so large artifacts are generated
// and verified without holding them in memory.
func seeded(seed uint64, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}), n)
}

func hashOf(t *testing.T, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// putDirect stores a stream in n's cache through its router (as the Fabrik
// server would), so it is also queued for n's writable upstreams.
func putDirect(t *testing.T, n *Node, key string, r io.Reader, size int64) {
	t.Helper()
	st, err := n.Cache().Stage("", size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(st, r); err != nil {
		st.Discard()
		t.Fatal(err)
	}
	if err := st.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := n.Cache().Put(t.Context(), messages.Ref{Namespace: "gradle", Key: key}, messages.Meta{}, st); err != nil {
		t.Fatal(err)
	}
}

// edgeOf starts a fresh edge (empty dir) whose only upstream is addr.
func edgeOf(t *testing.T, fabrikAddr string) *Node {
	t.Helper()
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Upstream = []config.UpstreamConfig{upstream("grpc://" + fabrikAddr)}
	return startNode(t, config.RoleEdge, c)
}

// TestLayer2EdgeRegionalS3: edge A -> regional -> S3 on write; a fresh edge
// reads through the regional; after the regional loses its whole local
// store, the artifact comes back from S3 and is cached on the regional again.
func TestLayer2EdgeRegionalS3(t *testing.T) {
	srv := minio.Start(t)
	srv.CreateBucket(t, "cache")
	rdir := t.TempDir()
	rc := testConfig(t, config.RoleRegional, rdir)
	rc.Upstream = []config.UpstreamConfig{s3Upstream(srv, "cache")}
	regional := startNode(t, config.RoleRegional, rc)
	addr := regional.Addr("fabrik")
	ref := messages.Ref{Namespace: "gradle", Key: key1}

	a := edgeOf(t, addr)
	body := randomBytes(t, 1<<20+3)
	gradlePut(t, a, key1, body)
	eventually(t, "write-through edge -> regional", func() bool { return localHas(regional, ref) })
	for _, obj := range gradleObjects(key1, sha(body)) {
		eventually(t, "write-through regional -> S3 of "+obj, func() bool { return s3Has(t, srv, "cache", obj) })
	}

	b := edgeOf(t, addr)
	if got := gradleGet(t, b, key1); sha(got) != sha(body) {
		t.Fatalf("edge B served %d bytes (sha %s), want %d (sha %s)", len(got), sha(got), len(body), sha(body))
	}

	// The regional loses its disk: only S3 still has the artifact.
	if err := regional.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(rdir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		t.Fatal(err)
	}
	rc.Fabrik.Bind = addr
	regional = startNode(t, config.RoleRegional, rc)
	if localHas(regional, ref) {
		t.Fatal("wiped regional still has the artifact")
	}
	c := edgeOf(t, addr)
	if got := gradleGet(t, c, key1); sha(got) != sha(body) {
		t.Fatalf("edge C served %d bytes (sha %s) from S3 via the regional, want %d", len(got), sha(got), len(body))
	}
	eventually(t, "write-back of the S3 hit on the regional", func() bool { return localHas(regional, ref) })
	if hits := regional.Metrics().Counter(`fabrik_upstream_requests_total{upstream="upstream-0",result="hit"}`).Get(); hits != 1 {
		t.Fatalf("regional counted %d S3 hits, want 1", hits)
	}
}

// TestLayer2RegionalKilledMidRead: the regional dies while edge B streams a
// large artifact from it. B's client sees a short transfer, B keeps nothing
// partial, the next GET is a clean 404 and a restarted regional serves hits.
func TestLayer2RegionalKilledMidRead(t *testing.T) {
	const size = 64 << 20
	rc := testConfig(t, config.RoleRegional, t.TempDir())
	rc.Runtime.GracefulShutdownTimeout = config.Duration(500 * time.Millisecond)
	regional := startNode(t, config.RoleRegional, rc)
	addr := regional.Addr("fabrik")
	putDirect(t, regional, key1, seeded(1, size), size)
	want := hashOf(t, seeded(1, size))
	ref := messages.Ref{Namespace: "gradle", Key: key1}

	b := edgeOf(t, addr)
	resp, err := http.Get("http://" + b.Addr("http") + "/cache/" + key1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET before the kill: %s", resp.Status)
	}
	if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
		t.Fatalf("first MiB: %v", err)
	}
	// The client stops reading, so the stream is in flight when the
	// regional goes: graceful stop gives up after 500ms and cuts it.
	if err := regional.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && n+1<<20 == size {
		t.Fatal("the whole artifact arrived although the regional was stopped mid-read")
	}
	t.Logf("client got %d of %d bytes, then %v", n+1<<20, size, err)

	// Give a (wrong) write-back time to land before checking there is none.
	time.Sleep(300 * time.Millisecond)
	if localHas(b, ref) {
		t.Fatal("edge B stored the artifact from a cut transfer")
	}
	if got := gradleGet(t, b, key1); got != nil {
		t.Fatalf("edge B served %d bytes with the regional down", len(got))
	}

	rc.Fabrik.Bind = addr
	startNode(t, config.RoleRegional, rc)
	eventually(t, "hits after the regional restarted", func() bool {
		resp, err := http.Get("http://" + b.Addr("http") + "/cache/" + key1)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && hashOf(t, resp.Body) == want
	})
	eventually(t, "write-back of the full artifact on edge B", func() bool { return localHas(b, ref) })
}

// TestLayer2ReplicatedAndReadOnlyS3: a regional with two writable S3
// upstreams writes every artifact to both; its read_only S3 upstream is read
// (and its hits replicated to the writable ones) but never written.
func TestLayer2ReplicatedAndReadOnlyS3(t *testing.T) {
	srv := minio.Start(t)
	for _, b := range []string{"eu-cache", "us-cache", "golden"} {
		srv.CreateBucket(t, b)
	}
	// The read-only bucket is seeded by someone else (a golden cache).
	golden := randomBytes(t, 40<<10)
	const goldenKey = "fedcba9876543210fedcba9876543210"
	seedTier, err := s3tier.New(t.Context(), "seed", s3tier.Options{
		Bucket: "golden", Prefix: s3Prefix, Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := seedTier.Put(t.Context(), messages.Ref{Namespace: "gradle", Key: goldenKey},
		messages.Meta{Size: int64(len(golden)), Hash: sha(golden)}, bytesReader(golden)); err != nil {
		t.Fatal(err)
	}
	goldenObjects := s3Keys(t, srv, "golden")

	rc := testConfig(t, config.RoleRegional, t.TempDir())
	ro := s3Upstream(srv, "golden")
	ro.ReadOnly = true
	rc.Upstream = []config.UpstreamConfig{s3Upstream(srv, "eu-cache"), s3Upstream(srv, "us-cache"), ro}
	regional := startNode(t, config.RoleRegional, rc)
	edge := edgeOf(t, regional.Addr("fabrik"))

	body := randomBytes(t, 200<<10)
	gradlePut(t, edge, key1, body)
	for _, bucket := range []string{"eu-cache", "us-cache"} {
		for _, obj := range gradleObjects(key1, sha(body)) {
			eventually(t, "write-through to "+bucket+"/"+obj, func() bool { return s3Has(t, srv, bucket, obj) })
		}
	}

	if got := gradleGet(t, edge, goldenKey); sha(got) != sha(golden) {
		t.Fatalf("read through the read-only upstream: got %d bytes, want %d", len(got), len(golden))
	}
	// The hit from the last tier is queued for the writable tiers above it.
	for _, bucket := range []string{"eu-cache", "us-cache"} {
		for _, obj := range gradleObjects(goldenKey, sha(golden)) {
			eventually(t, "replication of the golden hit to "+bucket, func() bool { return s3Has(t, srv, bucket, obj) })
		}
	}
	// Uploads to eu and us are done; any to golden would have been queued
	// with them.
	time.Sleep(300 * time.Millisecond)
	if got := s3Keys(t, srv, "golden"); len(got) != len(goldenObjects) {
		t.Fatalf("read-only bucket was written: has %v, was %v", got, goldenObjects)
	}
}

// TestLayer2S3DownAtStart: a regional whose S3 is down serves its local
// cache, answers misses for the rest promptly, and completes the uploads it
// queued once S3 is back.
func TestLayer2S3DownAtStart(t *testing.T) {
	srv := minio.Start(t)
	srv.CreateBucket(t, "cache")
	srv.Stop()

	rc := testConfig(t, config.RoleRegional, t.TempDir())
	rc.Upstream = []config.UpstreamConfig{s3Upstream(srv, "cache")}
	regional := startNode(t, config.RoleRegional, rc)
	body := randomBytes(t, 300<<10)
	putDirect(t, regional, key1, bytesReader(body), int64(len(body)))

	edge := edgeOf(t, regional.Addr("fabrik"))
	if got := gradleGet(t, edge, key1); sha(got) != sha(body) {
		t.Fatalf("local hit on the regional with S3 down: got %d bytes, want %d", len(got), len(body))
	}
	start := time.Now()
	if got := gradleGet(t, edge, "00000000000000000000000000000bad"); got != nil {
		t.Fatal("a key nobody stored was served")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a miss with S3 down took %s", took)
	}
	// The regional's own S3 read is still running when the edge's shorter
	// timeout gives up, so its error is counted a little later.
	eventually(t, "an S3 error counted on the regional", func() bool {
		return regional.Metrics().Counter(`fabrik_upstream_requests_total{upstream="upstream-0",result="error"}`).Get() > 0
	})
	start = time.Now()
	if res, err := regional.Cache().Get(t.Context(), messages.Ref{Namespace: "gradle", Key: "00000000000000000000000000000bae"}); err != nil || res.Found {
		t.Fatalf("regional read of an unknown key with S3 down: found=%v err=%v", res.Found, err)
	}
	t.Logf("regional miss with S3 down took %s", time.Since(start))

	srv.Restart(t)
	// Retries back off 1s, 2s, 4s, 8s...: allow for several of them.
	deadline := time.Now().Add(45 * time.Second)
	for _, obj := range gradleObjects(key1, sha(body)) {
		for !s3Has(t, srv, "cache", obj) {
			if time.Now().After(deadline) {
				t.Fatalf("queued upload of %s did not complete after S3 came back", obj)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b: b} }

// sliceReader is bytes.Reader without Seek, so the tier under test cannot
// take a shortcut a network body would not offer.
type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
