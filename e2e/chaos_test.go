package e2e

import (
	"context"
	"fmt"
	"net/http"
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

// buildResult is the end of one build run in the background.
type buildResult struct {
	out string
	err error
}

// buildAsync runs a build in the background (no t.Fatal off the test
// goroutine); the channel yields its output and error once. The build is
// a success when it exits 0 and its output holds ok.
func buildAsync(name, ok string, run func() (string, error)) <-chan buildResult {
	done := make(chan buildResult, 1)
	go func() {
		out, err := run()
		if err == nil && !strings.Contains(out, ok) {
			err = fmt.Errorf("no %q", ok)
		}
		if err != nil {
			err = fmt.Errorf("%s build: %w\n%s", name, err, out)
		}
		done <- buildResult{out, err}
	}()
	return done
}

// chaosClient is what the chaos scenario (runEdgeChaos) needs of one build
// tool.
type chaosClient struct {
	// namespace holds the tool's key entries ("gradle", "bazel-ac"): S3
	// keeps them under keys/<namespace>/.
	namespace string
	// build starts round r's build through edge in the background: round
	// 0 builds the fixture as it is, round 1 after changing inputs so that
	// every cache key is new.
	build func(t *testing.T, edge *harness.Node, round int) <-chan buildResult
	// keys checks a finished build's output (every action ran locally:
	// a dead upstream is a miss) and returns how many key entries it
	// stored.
	keys func(t *testing.T, out string) int
}

// chaosChain is edge -> regional -> MinIO: a regional writing through to
// a MinIO bucket (permanent), and edges, started on demand, whose upstream
// is the regional. Upstream timeouts are 3 s so dead tiers cost little.
type chaosChain struct {
	s3       *minio.Server
	regional *harness.Node
	s3TOML   string
}

func startChaosChain(t *testing.T) *chaosChain {
	t.Helper()
	srv := minio.Start(t)
	srv.CreateBucket(t, "chaos")
	c := &chaosChain{s3: srv, s3TOML: fmt.Sprintf(`[[upstream]]
url = "s3://chaos/fabrik/"
endpoint = %q
region = "us-east-1"
access_key = %q
secret_key = %q
permanent = true
timeout = "3s"
`, srv.Endpoint, srv.AccessKey, srv.SecretKey)}
	c.regional = c.newRegional(t)
	return c
}

// newRegional starts a regional over the chain's bucket; a fresh one holds
// nothing locally, so what it serves came from S3.
func (c *chaosChain) newRegional(t *testing.T) *harness.Node {
	t.Helper()
	return harness.StartNodeWith(t, harness.NodeOptions{Args: []string{"--role", "regional"}, ExtraTOML: c.s3TOML})
}

// newEdge starts an edge whose upstream is regional.
func (c *chaosChain) newEdge(t *testing.T, regional *harness.Node) *harness.Node {
	t.Helper()
	return harness.StartNodeWith(t, harness.NodeOptions{ExtraTOML: fmt.Sprintf("[[upstream]]\nurl = %q\ntimeout = \"3s\"\n", "grpc://"+regional.FabrikAddr)})
}

// inS3 counts the objects under fabrik/<prefix> in the bucket: "cas/" for
// blobs, "keys/<namespace>/" for key entries; -1 while MinIO is down.
func (c *chaosChain) inS3(prefix string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pages := s3.NewListObjectsV2Paginator(c.s3.Client(), &s3.ListObjectsV2Input{Bucket: aws.String("chaos"), Prefix: aws.String("fabrik/" + prefix)})
	n := 0
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return -1
		}
		n += len(page.Contents)
	}
	return n
}

// uploads is a node's write-through queue towards its only upstream, from
// /metrics: jobs pending, delivered, given up and dropped since it started.
type uploads struct{ pending, completed, failed, dropped float64 }

func uploadsOf(t *testing.T, n *harness.Node) uploads {
	t.Helper()
	m := scrape(t, n, "")
	get := func(name string) float64 { return m[name+`{upstream="upstream-0"}`] }
	return uploads{get("fabrik_upload_queue_depth"), get("fabrik_upload_completed_total"), get("fabrik_upload_failures_total"), get("fabrik_upload_dropped_total")}
}

// drained waits until n's upload queue is empty with nothing given up or
// dropped, and returns its last reading.
func drained(t *testing.T, n *harness.Node, within time.Duration) (uploads, bool) {
	t.Helper()
	var u uploads
	ok := waitFor(within, func() bool {
		u = uploadsOf(t, n)
		return u.pending == 0
	})
	return u, ok && u.failed == 0 && u.dropped == 0
}

func objectsOf(t *testing.T, n *harness.Node) float64 {
	t.Helper()
	return scrape(t, n, "")["fabrik_cache_objects"]
}

// runEdgeChaos is the chaos scenario under a real build, through an edge
// -> regional -> MinIO chain:
//
//  1. MinIO is killed at the first cache request of a build on a fresh
//     edge. The build succeeds; the regional receives everything the edge
//     stored, and holds uploads for S3 it cannot deliver (so the kill was
//     mid-build); once MinIO is back its queue drains and S3 holds every
//     blob the regional holds and every key entry of the build.
//  2. The regional is killed at the first cache request of a build with
//     new inputs on a second edge. The build succeeds and the edge holds
//     uploads for the regional (so the kill was mid-build). The edge stops,
//     the regional restarts, then the edge: the queue persisted across the
//     restart is delivered (every job pending before the stop completes,
//     none given up), and reaches S3 too.
//
// It returns the chain for the tool's own checks. Bounded: two builds and
// at most 60 s of waiting for each queue.
func runEdgeChaos(t *testing.T, c chaosClient) *chaosChain {
	t.Helper()
	chain := startChaosChain(t)
	regional := chain.regional
	start := time.Now()
	logf := func(format string, args ...any) {
		t.Helper()
		t.Logf("%v: "+format, append([]any{time.Since(start).Round(time.Millisecond)}, args...)...)
	}

	edge := chain.newEdge(t, regional)
	build := c.build(t, edge, 0)
	midBuild(t, edge, build)
	chain.s3.Stop()
	logf("killed MinIO at the build's first cache request")
	res := <-build
	if res.err != nil {
		t.Fatalf("build with MinIO killed: %v", res.err)
	}
	keys := c.keys(t, res.out)
	logf("build done: %d key entries", keys)
	stored := objectsOf(t, edge)
	if !waitFor(30*time.Second, func() bool { return objectsOf(t, regional) >= stored }) {
		t.Fatalf("the regional holds %v blobs, the edge %v: the build's artifacts did not reach the regional\nedge log:\n%s", objectsOf(t, regional), stored, edge.Logs())
	}
	if u := uploadsOf(t, regional); u.pending == 0 {
		t.Fatalf("with MinIO dead the regional queues nothing for S3 (%+v): MinIO died after the build's last upload, not mid-build", u)
	}
	chain.s3.Restart(t)
	logf("restarted MinIO; the regional holds %v blobs, %v uploads queued for S3", objectsOf(t, regional), uploadsOf(t, regional).pending)
	if u, ok := drained(t, regional, 60*time.Second); !ok {
		t.Fatalf("the regional's S3 queue 60s after MinIO came back: %+v, want empty with nothing given up or dropped\nregional log:\n%s", u, regional.Logs())
	}
	blobs := objectsOf(t, regional)
	if got := chain.inS3("cas/"); got < int(blobs) {
		t.Fatalf("S3 holds %d blobs, the regional %v", got, blobs)
	}
	if got := chain.inS3("keys/" + c.namespace + "/"); got < keys {
		t.Fatalf("S3 holds %d %s key entries after MinIO came back, want %d", got, c.namespace, keys)
	}
	logf("the regional's S3 queue is drained: S3 holds its %v blobs and the build's key entries", blobs)

	edge2 := chain.newEdge(t, regional)
	build = c.build(t, edge2, 1)
	midBuild(t, edge2, build)
	regional.Kill()
	logf("killed the regional at the second build's first cache request")
	res = <-build
	if res.err != nil {
		t.Fatalf("build with the regional killed: %v", res.err)
	}
	keys += c.keys(t, res.out)
	queued := uploadsOf(t, edge2)
	if queued.pending == 0 {
		t.Fatalf("with the regional dead the edge queues nothing (%+v): the regional died after the build's last upload, not mid-build", queued)
	}
	// The edge restarts before the regional is back: what it delivers
	// next comes from the queue it persisted.
	edge2.Stop()
	regional.Start()
	edge2.Start()
	logf("second build done with %v uploads queued; restarted the edge and the regional", queued.pending)
	if u, ok := drained(t, edge2, 60*time.Second); !ok || u.completed < queued.pending {
		t.Fatalf("the restarted edge's queue 60s after the regional came back: %+v, want the %v jobs pending before the restart delivered, none given up or dropped\nedge log:\n%s",
			u, queued.pending, edge2.Logs())
	}
	if u, ok := drained(t, regional, 60*time.Second); !ok {
		t.Fatalf("the regional's S3 queue: %+v, want empty with nothing given up or dropped\nregional log:\n%s", u, regional.Logs())
	}
	blobs = objectsOf(t, regional)
	if got := chain.inS3("cas/"); got < int(blobs) {
		t.Fatalf("S3 holds %d blobs, the regional %v", got, blobs)
	}
	if got := chain.inS3("keys/" + c.namespace + "/"); got < keys {
		t.Fatalf("S3 holds %d %s key entries after both builds, want %d", got, c.namespace, keys)
	}
	logf("the edge's queue and the regional's are drained: S3 holds %v blobs and %d key entries", blobs, keys)
	return chain
}

// Chaos under a real Gradle build (runEdgeChaos): MinIO killed during one
// build, the regional during another; both builds succeed and the uploads
// queued while an upstream was down are delivered after it returns,
// including across an edge restart. Bounded: two Gradle builds and at most
// 60 s of waiting for each queue (~60 s in all).
func TestEdgeChaosGradle(t *testing.T) {
	gradle := harness.RequireTool(t, "gradle")
	runEdgeChaos(t, chaosClient{
		namespace: "gradle",
		build: func(t *testing.T, edge *harness.Node, round int) <-chan buildResult {
			dir := harness.CopyFixture(t, "gradle")
			if round == 1 {
				for _, f := range []string{"inputs/a.txt", "inputs/b.txt"} {
					appendFile(t, filepath.Join(dir, f), "\nchaos\n")
				}
				appendFile(t, filepath.Join(dir, "src/main/java/fabrik/e2e/Hello.java"), "\n// chaos\n")
			}
			env := append(harness.GradleEnv(t), "FABRIK_GRADLE_URL="+edge.HTTPURL()+"/cache/")
			return buildAsync("gradle", "BUILD SUCCESSFUL", func() (string, error) {
				return harness.Run(t, dir, env, gradle, harness.GradleArgs()...)
			})
		},
		keys: func(t *testing.T, out string) int {
			gradleMustMiss(t, out)
			return gradleCacheable
		},
	})
}

// bazelChaosActions is how many genrules the bazel-chaos fixture has.
const bazelChaosActions = 30

// Chaos under a real Bazel build (runEdgeChaos), on the bazel-chaos
// fixture (30 genrules that sleep briefly, so the kills land with most of
// the build ahead). Both builds run every action locally and succeed; the
// AC entries and CAS blobs reach the regional and S3, across MinIO's
// death and the regional's with an edge restart in between. Then, after
// `bazel clean --expunge`, a build through a fresh edge and a fresh
// regional over the same bucket, which can only have the artifacts from
// S3, gets every action as a remote cache hit. Bounded: one Bazel server
// start for the two chaos builds, one more after the expunge, at most 60 s
// of waiting for each queue (~60 s in all).
func TestEdgeChaosBazel(t *testing.T) {
	dir := harness.CopyFixture(t, "bazel-chaos")
	b := harness.NewBazel(t, dir)
	chain := runEdgeChaos(t, chaosClient{
		namespace: "bazel-ac",
		build: func(t *testing.T, edge *harness.Node, round int) <-chan buildResult {
			if round == 1 {
				appendFile(t, filepath.Join(dir, "input.txt"), "chaos\n")
			}
			return buildAsync("bazel", "Build completed successfully", func() (string, error) {
				return b.Run("build", "--remote_cache=grpc://"+edge.GRPCAddr, "//...")
			})
		},
		keys: func(t *testing.T, out string) int {
			bazelMustMiss(t, out)
			if _, kinds := bazelProcesses(t, out); kinds["local"] != bazelChaosActions {
				t.Fatalf("%d actions run locally, want the fixture's %d:\n%s", kinds["local"], bazelChaosActions, out)
			}
			return bazelChaosActions // one AC entry per action
		},
	})

	if out, err := b.Run("clean", "--expunge"); err != nil {
		t.Fatalf("clean --expunge: %v\n%s", err, out)
	}
	edge := chain.newEdge(t, chain.newRegional(t))
	out, err := b.Run("build", "--remote_cache=grpc://"+edge.GRPCAddr, "//...")
	if err != nil {
		t.Fatalf("build from S3 on a fresh output base: %v\n%s", err, out)
	}
	if hits := bazelMustHit(t, out); hits != bazelChaosActions {
		t.Fatalf("%d remote cache hits, want one per action of the fixture (%d):\n%s", hits, bazelChaosActions, out)
	}
	last := fmt.Sprintf("step%d.txt", bazelChaosActions-1)
	got, err := os.ReadFile(filepath.Join(dir, "bazel-bin", last))
	if want := fmt.Sprintf("chaos\nstep %d\n", bazelChaosActions-1); err != nil || !strings.HasSuffix(string(got), want) {
		t.Fatalf("%s restored from the cache: %q, %v; want the second build's output, ending %q", last, got, err, want)
	}
}

// midBuild waits until the build's first cache request reached the edge
// (Gradle and Bazel spend seconds starting up), so what is killed next dies
// between the build's first lookup and the rest of its loads and stores.
func midBuild(t *testing.T, edge *harness.Node, build <-chan buildResult) {
	t.Helper()
	if !waitFor(120*time.Second, func() bool {
		m := scrape(t, edge, "")
		return m.hits()+m.misses() >= 1 || len(build) > 0
	}) {
		t.Fatal("the build made no cache request within 120s")
	}
	if len(build) > 0 {
		t.Fatalf("the build ended before the kill: %v", (<-build).err)
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

// TestQueueDrainsWhenS3ReturnsWithoutTraffic: a regional whose S3 uploads
// have backed off to 32 s delivers them within seconds of MinIO coming
// back, with no new request to show it the outage ended: its upload pool
// probes the upstream while jobs wait (uploadpool.DefaultProbeInterval).
// Without the probes the first retry would come up to 32 s later. About
// 45 s: the outage must last long enough for the backoff to grow.
func TestQueueDrainsWhenS3ReturnsWithoutTraffic(t *testing.T) {
	chain := startChaosChain(t)
	regional := chain.regional
	edge := chain.newEdge(t, regional)
	chain.s3.Stop()
	const n = 3
	for i := range n {
		key := fmt.Sprintf("%032x", 0xfab00+i)
		req, _ := http.NewRequest(http.MethodPut, edge.HTTPURL()+"/cache/"+key, strings.NewReader(fmt.Sprintf("artifact %d written during an S3 outage", i)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT %s: %s", key, resp.Status)
		}
	}
	retries := func() float64 { return scrape(t, regional, "")[`fabrik_upload_retries_total{upstream="upstream-0"}`] }
	// Six failed attempts each: the next is 32 s away (1+2+4+8+16 s of
	// backoff behind them).
	if !waitFor(90*time.Second, func() bool { return retries() >= 6*n }) {
		t.Fatalf("the regional retried %v times, want every one of %d jobs to fail 6 times; uploads %+v\nregional log:\n%s", retries(), n, uploadsOf(t, regional), regional.Logs())
	}
	if u := uploadsOf(t, regional); u.pending != n {
		t.Fatalf("uploads before MinIO returns: %+v, want %d pending", u, n)
	}
	chain.s3.Restart(t)
	back := time.Now()
	if u, ok := drained(t, regional, 15*time.Second); !ok {
		t.Fatalf("15 s after MinIO came back the regional's queue is %+v, want drained by a probe (the backoff alone waits 32 s)\nregional log:\n%s", u, regional.Logs())
	}
	t.Logf("queue drained %v after MinIO came back", time.Since(back).Round(100*time.Millisecond))
	if !strings.Contains(regional.Logs(), "upstream reachable again") {
		t.Fatalf("no probe woke the queue\nregional log:\n%s", regional.Logs())
	}
	if got := chain.inS3("cas/"); got < n {
		t.Fatalf("S3 holds %d blobs, want %d", got, n)
	}
}
