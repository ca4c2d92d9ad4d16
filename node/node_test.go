package node

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier/fabrik"
)

// testConfig is a node config on loopback with OS-chosen ports.
func testConfig(t *testing.T, role config.Role, dir string) config.Config {
	t.Helper()
	c := config.Default(role)
	c.Cache.Dir = dir
	c.Cache.Fsync = false
	c.BuildTools.HTTPBind = "127.0.0.1:0"
	c.BuildTools.GRPCBind = "127.0.0.1:0"
	c.BuildTools.Sccache.Bind = "127.0.0.1:0"
	c.Observability.HealthBind = "127.0.0.1:0"
	c.Observability.APIBind = "127.0.0.1:0"
	c.Fabrik.Bind = "127.0.0.1:0"
	c.Runtime.GracefulShutdownTimeout = config.Duration(2 * time.Second)
	return c
}

func startNode(t *testing.T, role config.Role, c config.Config) *Node {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	n, err := New(Options{Role: role, Config: c, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatalf("start %s node: %v", role, err)
	}
	t.Cleanup(func() { n.Stop(t.Context()) })
	return n
}

func upstream(url string) config.UpstreamConfig {
	return config.UpstreamConfig{URL: url, Timeout: config.Duration(2 * time.Second), Workers: 2}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func gradlePut(t *testing.T, n *Node, key string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+n.Addr("http")+"/cache/"+key, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s: %s", key, resp.Status)
	}
}

// gradleGet returns the body, or nil on 404.
func gradleGet(t *testing.T, n *Node, key string) []byte {
	t.Helper()
	resp, err := http.Get("http://" + n.Addr("http") + "/cache/" + key)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return b
	case http.StatusNotFound:
		return nil
	}
	t.Fatalf("GET %s: %s %s", key, resp.Status, b)
	return nil
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// Long enough for a circuit breaker cooldown (5s) plus gRPC reconnect.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func localHas(n *Node, ref messages.Ref) bool {
	_, err := n.store.Stat(ref)
	return err == nil
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

const key1 = "0123456789abcdef0123456789abcdef"

// TestEdgeRegionalRoundTrip: a PUT through edge A is written through to the
// regional; a fresh edge B reads it through the regional, streams it to its
// client and keeps a local copy.
func TestEdgeRegionalRoundTrip(t *testing.T) {
	regional := startNode(t, config.RoleRegional, testConfig(t, config.RoleRegional, t.TempDir()))
	url := "grpc://" + regional.Addr("fabrik")

	ca := testConfig(t, config.RoleEdge, t.TempDir())
	ca.Upstream = []config.UpstreamConfig{upstream(url)}
	a := startNode(t, config.RoleEdge, ca)
	body := randomBytes(t, 3<<20+17)
	gradlePut(t, a, key1, body)
	ref := messages.Ref{Namespace: "gradle", Key: key1}
	eventually(t, "write-through to the regional", func() bool { return localHas(regional, ref) })

	cb := testConfig(t, config.RoleEdge, t.TempDir())
	cb.Upstream = []config.UpstreamConfig{upstream(url)}
	b := startNode(t, config.RoleEdge, cb)
	if localHas(b, ref) {
		t.Fatal("fresh edge already has the artifact")
	}
	got := gradleGet(t, b, key1)
	if !bytes.Equal(got, body) {
		t.Fatalf("edge B served %d bytes (sha %s), want %d (sha %s)", len(got), sha(got), len(body), sha(body))
	}
	eventually(t, "write-back into edge B's local tier", func() bool { return localHas(b, ref) })
	hits, _ := b.Metrics().HitsMisses()
	if hits != 1 {
		t.Fatalf("edge B counted %d hits, want 1", hits)
	}
}

// Small artifacts (the bulk of build traffic) are kept too: an upstream hit
// answered from a pooled buffer must still read its stream to EOF, which is
// what commits the write-back. Up to 64 KiB used to be served and dropped.
func TestSmallUpstreamHitIsWrittenBack(t *testing.T) {
	regional := startNode(t, config.RoleRegional, testConfig(t, config.RoleRegional, t.TempDir()))
	cb := testConfig(t, config.RoleEdge, t.TempDir())
	cb.Upstream = []config.UpstreamConfig{upstream("grpc://" + regional.Addr("fabrik"))}
	b := startNode(t, config.RoleEdge, cb)
	for i, size := range []int{1, 4096, 64 << 10} {
		key := fmt.Sprintf("%032x", i+1)
		ref := messages.Ref{Namespace: "gradle", Key: key}
		body := randomBytes(t, size)
		seedArtifact(t, regional, ref, body)
		if got := gradleGet(t, b, key); !bytes.Equal(got, body) {
			t.Fatalf("%d bytes: edge B served %d bytes", size, len(got))
		}
		eventually(t, fmt.Sprintf("write-back of a %d-byte hit", size), func() bool { return localHas(b, ref) })
	}
}

// TestRegionalDownIsAMiss: a dead upstream makes reads misses, never errors,
// and hits come back when it returns.
func TestRegionalDownIsAMiss(t *testing.T) {
	rdir := t.TempDir()
	rc := testConfig(t, config.RoleRegional, rdir)
	regional := startNode(t, config.RoleRegional, rc)
	addr := regional.Addr("fabrik")
	body := randomBytes(t, 64<<10)
	put, err := regional.Cache().Stage("", int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	put.Write(body)
	if err := put.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := regional.Cache().Put(t.Context(), messages.Ref{Namespace: "gradle", Key: key1}, messages.Meta{}, put); err != nil {
		t.Fatal(err)
	}

	ce := testConfig(t, config.RoleEdge, t.TempDir())
	ce.Upstream = []config.UpstreamConfig{upstream("grpc://" + addr)}
	edge := startNode(t, config.RoleEdge, ce)
	regional.Stop(t.Context())

	if got := gradleGet(t, edge, key1); got != nil {
		t.Fatal("edge served an artifact while the regional is down")
	}
	rc.Fabrik.Bind = addr
	startNode(t, config.RoleRegional, rc)
	eventually(t, "hits after the regional restarted", func() bool {
		return bytes.Equal(gradleGet(t, edge, key1), body)
	})
}

// TestPendingUploadsSurviveRestart: write-through jobs queued while the
// regional is down are persisted and completed by the restarted edge.
func TestPendingUploadsSurviveRestart(t *testing.T) {
	rc := testConfig(t, config.RoleRegional, t.TempDir())
	regional := startNode(t, config.RoleRegional, rc)
	addr := regional.Addr("fabrik")
	regional.Stop(t.Context())

	ce := testConfig(t, config.RoleEdge, t.TempDir())
	ce.Upstream = []config.UpstreamConfig{upstream("grpc://" + addr)}
	edge := startNode(t, config.RoleEdge, ce)
	keys := []string{}
	for i := range 5 {
		k := fmt.Sprintf("%032x", i+1)
		keys = append(keys, k)
		gradlePut(t, edge, k, randomBytes(t, 10<<10))
	}
	if err := edge.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}

	rc.Fabrik.Bind = addr
	regional = startNode(t, config.RoleRegional, rc)
	startNode(t, config.RoleEdge, ce)
	for _, k := range keys {
		ref := messages.Ref{Namespace: "gradle", Key: k}
		eventually(t, "queued upload of "+k, func() bool { return localHas(regional, ref) })
	}
}

// TestStopFlushesWriteThrough: a graceful stop delivers the write-through
// jobs still queued (uploadpool.Flush) before the node goes, so a node
// stopped for good leaves nothing it acknowledged on its own disk only.
func TestStopFlushesWriteThrough(t *testing.T) {
	regional := startNode(t, config.RoleRegional, testConfig(t, config.RoleRegional, t.TempDir()))
	ce := testConfig(t, config.RoleEdge, t.TempDir())
	up := upstream("grpc://" + regional.Addr("fabrik"))
	up.Workers = 1 // eight writers outpace one uploader: the queue is long at the stop
	ce.Upstream = []config.UpstreamConfig{up}
	edge := startNode(t, config.RoleEdge, ce)
	refs := make([]messages.Ref, 64)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(refs); i += 8 {
				k := fmt.Sprintf("%032x", 0xf1000+i)
				refs[i] = messages.Ref{Namespace: "gradle", Key: k}
				req, _ := http.NewRequest(http.MethodPut, "http://"+edge.Addr("http")+"/cache/"+k, bytes.NewReader(randomBytes(t, 256<<10)))
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Errorf("PUT %s: %s", k, res.Status)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if err := edge.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		if !localHas(regional, r) {
			t.Fatalf("%s acknowledged by the edge is not on the regional after the edge's graceful stop", r)
		}
	}
}

// TestReadOnlyUpstreamNeverWritten: a read_only upstream is read from but
// never receives a PUT, while a writable one does.
func TestReadOnlyUpstreamNeverWritten(t *testing.T) {
	ro := startNode(t, config.RoleRegional, testConfig(t, config.RoleRegional, t.TempDir()))
	rw := startNode(t, config.RoleRegional, testConfig(t, config.RoleRegional, t.TempDir()))
	ce := testConfig(t, config.RoleEdge, t.TempDir())
	roUp := upstream("grpc://" + ro.Addr("fabrik"))
	roUp.ReadOnly = true
	ce.Upstream = []config.UpstreamConfig{roUp, upstream("grpc://" + rw.Addr("fabrik"))}
	edge := startNode(t, config.RoleEdge, ce)
	gradlePut(t, edge, key1, randomBytes(t, 1000))
	ref := messages.Ref{Namespace: "gradle", Key: key1}
	eventually(t, "write-through to the writable upstream", func() bool { return localHas(rw, ref) })
	time.Sleep(200 * time.Millisecond)
	if localHas(ro, ref) {
		t.Fatal("read-only upstream received a PUT")
	}
}

func TestMain(m *testing.M) {
	// Keep stray temp dirs of killed runs out of the way.
	os.Setenv("TMPDIR", filepath.Clean(os.TempDir()))
	os.Exit(m.Run())
}

// TestReplicaUpstreamWrittenNeverRead: read_only with an explicit
// write_through = true is a cross-region replica: every new artifact is
// written to it, and reads never reach it, even when only it has the
// artifact.
func TestReplicaUpstreamWrittenNeverRead(t *testing.T) {
	home := startNode(t, config.RoleRegional, testConfig(t, config.RoleRegional, t.TempDir()))
	replica := startNode(t, config.RoleRegional, testConfig(t, config.RoleRegional, t.TempDir()))
	ce := testConfig(t, config.RoleEdge, t.TempDir())
	repUp := upstream("grpc://" + replica.Addr("fabrik"))
	repUp.ReadOnly, repUp.Permanent = true, true
	wt := true
	repUp.WriteThrough = &wt
	ce.Upstream = []config.UpstreamConfig{upstream("grpc://" + home.Addr("fabrik")), repUp}
	edge := startNode(t, config.RoleEdge, ce)

	gradlePut(t, edge, key1, randomBytes(t, 1000))
	ref := messages.Ref{Namespace: "gradle", Key: key1}
	eventually(t, "write-through to the home upstream", func() bool { return localHas(home, ref) })
	eventually(t, "write-through to the replica", func() bool { return localHas(replica, ref) })

	// An artifact only the replica holds stays a miss for the edge.
	const key2 = "00000000000000000000000000000002"
	direct, err := fabrik.New("direct", "grpc://"+replica.Addr("fabrik"), fabrik.Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	body := randomBytes(t, 1000)
	ref2 := messages.Ref{Namespace: "gradle", Key: key2}
	if err := direct.Put(t.Context(), ref2, messages.Meta{Hash: sha(body), Size: int64(len(body))}, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if !localHas(replica, ref2) {
		t.Fatal("the replica does not hold the artifact the test put there")
	}
	if b := gradleGet(t, edge, key2); b != nil {
		t.Fatal("the edge read an artifact from its replica upstream")
	}
}
