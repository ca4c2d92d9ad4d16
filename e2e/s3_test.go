package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/tuist/fabrik-node/e2e/harness"
)

// The key pair the S3 tests' edges verify signatures with.
const (
	s3KeyID  = "AKIAFABRIKE2E"
	s3Secret = "fabrik-e2e-secret"
)

// awsCLI is Debian's awscli 2.x; a pip awscli 1.x may come first on PATH.
const awsCLI = "/usr/bin/aws"

// s3Edge starts an edge whose S3 API verifies signatures against the test
// key pair.
func s3Edge(t *testing.T, extraTOML string) *harness.Node {
	t.Helper()
	return harness.StartNodeWith(t, harness.NodeOptions{
		Args: []string{"--config-build-tools-sccache-access-key-id", s3KeyID,
			"--config-build-tools-sccache-secret-access-key", s3Secret},
		ExtraTOML: extraTOML,
	})
}

// awsEnv isolates awscli from the machine's configuration.
func awsEnv(t *testing.T) []string {
	home := t.TempDir()
	return []string{"HOME=" + home, "AWS_ACCESS_KEY_ID=" + s3KeyID, "AWS_SECRET_ACCESS_KEY=" + s3Secret,
		"AWS_DEFAULT_REGION=us-east-1", "AWS_REGION=us-east-1", "AWS_CONFIG_FILE=" + filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"), "AWS_EC2_METADATA_DISABLED=true",
		"AWS_PAGER="}
}

func randomFile(t *testing.T, dir, name string, size int) (string, [32]byte) {
	t.Helper()
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, sha256.Sum256(b)
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// awscli: mb, cp up and down (a 50 MB file goes multipart), ls,
// s3api head-object, presign then a plain HTTP GET.
func TestS3AwsCli(t *testing.T) {
	t.Parallel()
	aws := harness.RequireTool(t, awsCLI)
	edge := s3Edge(t, "")
	env := awsEnv(t)
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		out, err := harness.Run(t, dir, env, aws, append([]string{"--endpoint-url", edge.S3URL()}, args...)...)
		if err != nil {
			t.Fatalf("aws %v: %v\n%s", args, err, out)
		}
		return out
	}
	run("s3", "mb", "s3://e2e-bucket")
	small, smallSum := randomFile(t, dir, "small.bin", 3000)
	big, bigSum := randomFile(t, dir, "big.bin", 50<<20)
	run("s3", "cp", small, "s3://e2e-bucket/dir/small.bin")
	run("s3", "cp", big, "s3://e2e-bucket/dir/big.bin")

	ls := run("s3", "ls", "s3://e2e-bucket/dir/")
	mustContain(t, ls, "3000 small.bin", fmt.Sprintf("%d big.bin", 50<<20))
	mustContain(t, run("s3", "ls"), "e2e-bucket")
	mustContain(t, run("s3", "ls", "s3://e2e-bucket/"), "PRE dir/")

	var head struct {
		ContentLength int64
		ETag          string
	}
	if err := json.Unmarshal([]byte(run("s3api", "head-object", "--bucket", "e2e-bucket", "--key", "dir/big.bin")), &head); err != nil {
		t.Fatal(err)
	}
	if head.ContentLength != 50<<20 || !strings.HasSuffix(head.ETag, `-7"`) {
		// awscli's 8 MiB parts: 50 MiB is 7 parts.
		t.Fatalf("head-object of the multipart upload: %+v, want 52428800 bytes and a 7-part ETag", head)
	}
	run("s3", "cp", "s3://e2e-bucket/dir/big.bin", filepath.Join(dir, "big.down"))
	run("s3", "cp", "s3://e2e-bucket/dir/small.bin", filepath.Join(dir, "small.down"))
	if fileSum(t, filepath.Join(dir, "big.down")) != bigSum || fileSum(t, filepath.Join(dir, "small.down")) != smallSum {
		t.Fatal("downloaded files differ from the uploaded ones")
	}

	url := strings.TrimSpace(run("s3", "presign", "s3://e2e-bucket/dir/small.bin", "--expires-in", "300"))
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || sha256.Sum256(body) != smallSum {
		t.Fatalf("GET of the presigned URL: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, err = http.Get(strings.Replace(url, "small.bin", "big.bin", 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("presigned URL for another key: %d, want 403", resp.StatusCode)
	}

	run("s3", "rm", "s3://e2e-bucket/dir/small.bin")
	if out := run("s3", "ls", "s3://e2e-bucket/dir/"); strings.Contains(out, "small.bin") {
		t.Fatalf("small.bin listed after rm:\n%s", out)
	}
	// A wrong secret is refused.
	bad := append(awsEnv(t), "AWS_SECRET_ACCESS_KEY=wrong")
	out, err := harness.Run(t, dir, bad, aws, "--endpoint-url", edge.S3URL(), "s3", "cp", small, "s3://e2e-bucket/refused")
	if err == nil || !strings.Contains(out, "SignatureDoesNotMatch") {
		t.Fatalf("cp with a wrong secret: %v\n%s", err, out)
	}
}

// s3cmd: mb, put, ls, get, del; each PUT is sent once (s3cmd re-sends a
// PUT whose answer has no or a wrong ETag).
func TestS3Cmd(t *testing.T) {
	t.Parallel()
	s3cmd := harness.RequireTool(t, "s3cmd")
	edge := s3Edge(t, "")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "s3cfg")
	conf := fmt.Sprintf("[default]\naccess_key = %s\nsecret_key = %s\nhost_base = %s\nhost_bucket = %s\nuse_https = False\nsignature_v2 = False\nbucket_location = us-east-1\ncheck_ssl_certificate = False\n",
		s3KeyID, s3Secret, edge.S3Addr, edge.S3Addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := harness.Run(t, dir, []string{"HOME=" + dir}, s3cmd, append([]string{"-c", cfg}, args...)...)
		if err != nil {
			t.Fatalf("s3cmd %v: %v\n%s", args, err, out)
		}
		return out
	}
	run("mb", "s3://cmd-bucket")
	file, sum := randomFile(t, dir, "obj.bin", 100_000)
	run("put", file, "s3://cmd-bucket/a/obj.bin")
	run("put", file, "s3://cmd-bucket/a/copy.bin")
	m := scrape(t, edge, "")
	if got := m[`fabrik_request_duration_seconds_count{build_system="sccache",op="put"}`]; got != 2 {
		t.Fatalf("the node saw %v PUTs for 2 s3cmd puts: s3cmd re-sent them", got)
	}
	mustContain(t, run("ls", "s3://cmd-bucket/a/"), "s3://cmd-bucket/a/obj.bin", "s3://cmd-bucket/a/copy.bin")
	run("get", "s3://cmd-bucket/a/obj.bin", filepath.Join(dir, "down.bin"))
	if fileSum(t, filepath.Join(dir, "down.bin")) != sum {
		t.Fatal("s3cmd get returned other bytes")
	}
	run("del", "s3://cmd-bucket/a/obj.bin")
	if out := run("ls", "s3://cmd-bucket/a/"); strings.Contains(out, "obj.bin") {
		t.Fatalf("obj.bin listed after del:\n%s", out)
	}
}

func sdkClient(endpoint string) *s3.Client {
	return s3.New(s3.Options{BaseEndpoint: aws.String(endpoint), Region: "us-east-1", UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s3KeyID, s3Secret, ""), Retryer: aws.NopRetryer{}})
}

func s3Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// sccache's own sequence against a real edge (Debian's sccache has no S3
// support, so the SDK replays it): GET .sccache_check (404), PUT it, then
// a compile's GET miss, PUT, and GET hit.
func TestS3SccacheSequence(t *testing.T) {
	t.Parallel()
	edge := s3Edge(t, "")
	c := sdkClient(edge.S3URL())
	ctx := context.Background()
	get := func(key string) ([]byte, error) {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("sccache"), Key: aws.String(key)})
		if err != nil {
			return nil, err
		}
		defer out.Body.Close()
		return io.ReadAll(out.Body)
	}
	put := func(key string, body []byte) {
		t.Helper()
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("sccache"), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatalf("PUT %s: %v", key, err)
		}
	}
	if _, err := get(".sccache_check"); s3Code(err) != "NoSuchKey" {
		t.Fatalf("first GET .sccache_check: %v, want NoSuchKey (404)", err)
	}
	put(".sccache_check", []byte("Hello, World!"))
	key := "rust/a/b/c/abcdef0123456789"
	if _, err := get(key); s3Code(err) != "NoSuchKey" {
		t.Fatalf("GET of an uncached compile: %v, want NoSuchKey", err)
	}
	put(key, []byte("compiled object"))
	if b, err := get(key); err != nil || string(b) != "compiled object" {
		t.Fatalf("GET hit: %v %q", err, b)
	}
	m := scrape(t, edge, "")
	if m.hitsOf("sccache") != 1 || m.missesOf("sccache") != 2 {
		t.Fatalf("hits %v misses %v, want 1 and 2", m.hitsOf("sccache"), m.missesOf("sccache"))
	}
}

// An object written through edge A's S3 API is read through edge B's,
// which shares A's regional but starts empty.
func TestS3AcrossEdges(t *testing.T) {
	t.Parallel()
	regional := harness.StartNode(t, []string{"--role", "regional"}, nil)
	upstream := fmt.Sprintf("[[upstream]]\nurl = %q\n", "grpc://"+regional.FabrikAddr)
	edgeA := s3Edge(t, upstream)
	ctx := context.Background()
	a := sdkClient(edgeA.S3URL())
	body := make([]byte, 200_000)
	_, _ = rand.Read(body)
	put, err := a.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("shared"), Key: aws.String("x/y/z/obj"), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool { return scrape(t, regional, "")["fabrik_cache_objects"] >= 1 }) {
		t.Fatal("the regional never received edge A's object")
	}
	edgeB := s3Edge(t, upstream)
	b := sdkClient(edgeB.S3URL())
	// A range first (awscli downloads large objects in ranges): edge B
	// serves it from the regional and keeps the whole object.
	rng, err := b.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("shared"), Key: aws.String("x/y/z/obj"), Range: aws.String("bytes=100-199")})
	if err != nil {
		t.Fatalf("ranged GET through edge B: %v", err)
	}
	part, _ := io.ReadAll(rng.Body)
	rng.Body.Close()
	if !bytes.Equal(part, body[100:200]) {
		t.Fatalf("edge B's range: %d bytes, not body[100:200]", len(part))
	}
	if !waitFor(10*time.Second, func() bool { return scrape(t, edgeB, "")["fabrik_cache_objects"] >= 1 }) {
		t.Fatal("edge B did not keep the object it served a range of")
	}
	out, err := b.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("shared"), Key: aws.String("x/y/z/obj")})
	if err != nil {
		t.Fatalf("GET through edge B: %v", err)
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if !bytes.Equal(got, body) {
		t.Fatalf("edge B served %d bytes, not edge A's %d", len(got), len(body))
	}
	if aws.ToString(out.ETag) != aws.ToString(put.ETag) {
		t.Fatalf("edge B's ETag %s, edge A's %s", aws.ToString(out.ETag), aws.ToString(put.ETag))
	}
}
