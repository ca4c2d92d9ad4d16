package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tuist/fabrik-node/e2e/harness"
	"github.com/tuist/fabrik-node/internal/minio"
)

// gradleBuildAsync runs a Gradle build against url in the background (no
// t.Fatal off the test goroutine); the channel yields its output and error.
func gradleBuildAsync(t *testing.T, dir, url string) <-chan error {
	gradle := harness.RequireTool(t, "gradle")
	env := append(harness.GradleEnv(t), "FABRIK_GRADLE_URL="+url)
	done := make(chan error, 1)
	go func() {
		out, err := harness.Run(t, dir, env, gradle, harness.GradleArgs()...)
		if err == nil && !strings.Contains(out, "BUILD SUCCESSFUL") {
			err = fmt.Errorf("no BUILD SUCCESSFUL")
		}
		if err != nil {
			err = fmt.Errorf("gradle build: %w\n%s", err, out)
		}
		done <- err
	}()
	return done
}

// Chaos under a real Gradle build through an edge -> regional -> MinIO
// chain: MinIO killed during one build, the regional killed during another.
// Both builds succeed (a dead upstream is a miss, and stores land in the
// edge); the uploads queued while an upstream was down are delivered after
// it returns, including across an edge restart. Bounded: two Gradle builds
// and at most 60 s of waiting for each queue (~60 s in all).
func TestEdgeChaosGradle(t *testing.T) {
	harness.RequireTool(t, "gradle")
	srv := minio.Start(t)
	srv.CreateBucket(t, "chaos")
	regional := harness.StartNodeWith(t, harness.NodeOptions{Args: []string{"--role", "regional"}, ExtraTOML: fmt.Sprintf(`[[upstream]]
url = "s3://chaos/fabrik/"
endpoint = %q
region = "us-east-1"
access_key = %q
secret_key = %q
permanent = true
timeout = "3s"
`, srv.Endpoint, srv.AccessKey, srv.SecretKey)})
	upstream := harness.NodeOptions{ExtraTOML: fmt.Sprintf("[[upstream]]\nurl = %q\ntimeout = \"3s\"\n", "grpc://"+regional.FabrikAddr)}
	keysInS3 := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := srv.Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("chaos"), Prefix: aws.String("fabrik/keys/gradle/")})
		if err != nil {
			return -1
		}
		return len(out.Contents)
	}

	// MinIO dies while the build runs.
	edge := harness.StartNodeWith(t, upstream)
	build := gradleBuildAsync(t, harness.CopyFixture(t, "gradle"), edge.HTTPURL()+"/cache/")
	midBuild(t, edge, build)
	srv.Stop()
	if err := <-build; err != nil {
		t.Fatalf("build with MinIO killed: %v", err)
	}
	if !waitFor(30*time.Second, func() bool { return scrape(t, regional, "")["fabrik_cache_objects"] >= gradleCacheable }) {
		t.Fatalf("the regional does not hold the build's %d artifacts", gradleCacheable)
	}
	srv.Restart(t)
	if !waitFor(60*time.Second, func() bool { return keysInS3() >= gradleCacheable }) {
		t.Fatalf("MinIO holds %d gradle keys 60s after it came back, want %d (queued uploads not delivered)\nregional log:\n%s", keysInS3(), gradleCacheable, regional.Logs())
	}

	// The regional dies while a build with new inputs runs on a fresh
	// edge; the edge restarts before the regional comes back.
	dir := harness.CopyFixture(t, "gradle")
	for _, f := range []string{"inputs/a.txt", "inputs/b.txt"} {
		appendFile(t, filepath.Join(dir, f), "\nchaos\n")
	}
	appendFile(t, filepath.Join(dir, "src/main/java/fabrik/e2e/Hello.java"), "\n// chaos\n")
	before := scrape(t, regional, "")["fabrik_cache_objects"]
	edge2 := harness.StartNodeWith(t, upstream)
	build = gradleBuildAsync(t, dir, edge2.HTTPURL()+"/cache/")
	midBuild(t, edge2, build)
	regional.Kill()
	if err := <-build; err != nil {
		t.Fatalf("build with the regional killed: %v", err)
	}
	edge2.Stop()
	regional.Start()
	edge2.Start()
	if !waitFor(60*time.Second, func() bool { return scrape(t, regional, "")["fabrik_cache_objects"] >= before+gradleCacheable }) {
		t.Fatalf("regional holds %v objects 60s after it and the edge came back, want >= %v (queued uploads lost)\nedge log:\n%s",
			scrape(t, regional, "")["fabrik_cache_objects"], before+gradleCacheable, edge2.Logs())
	}
	if !waitFor(60*time.Second, func() bool { return keysInS3() >= 2*gradleCacheable }) {
		t.Fatalf("MinIO holds %d gradle keys, want %d", keysInS3(), 2*gradleCacheable)
	}
}

// midBuild waits until the build's first cache request reached the edge
// (Gradle spends most of its run starting up), so what is killed next dies
// between the build's first lookup and the rest of its loads and stores.
func midBuild(t *testing.T, edge *harness.Node, build <-chan error) {
	t.Helper()
	if !waitFor(120*time.Second, func() bool {
		m := scrape(t, edge, "")
		return m.hits()+m.misses() >= 1 || len(build) > 0
	}) {
		t.Fatal("the build made no cache request within 120s")
	}
	if len(build) > 0 {
		t.Fatalf("the build ended before the kill: %v", <-build)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
