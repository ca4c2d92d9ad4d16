package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tuist/fabrik-node/e2e/harness"
	"github.com/tuist/fabrik-node/internal/minio"
)

// haproxy is a real HAProxy in front of regional nodes, as configs/haproxy.cfg
// describes: gRPC over h2c to each Fabrik port, health checks against each
// node's /health.
type haproxy struct {
	Addr string
	cmd  *exec.Cmd
	log  string
}

func startHAProxy(t *testing.T, regionals []*harness.Node) *haproxy {
	t.Helper()
	bin := harness.RequireTool(t, "haproxy")
	dir := t.TempDir()
	h := &haproxy{Addr: fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)), log: filepath.Join(dir, "haproxy.log")}
	// configs/haproxy.cfg itself, on this test's ports and with checks
	// every 250 ms so a dead regional is out within half a second: the
	// example is what the test proves.
	example, err := os.ReadFile(filepath.Join(harness.RepoRoot(t), "configs", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	for line := range strings.Lines(string(example)) {
		switch trimmed := strings.TrimSpace(line); {
		case strings.HasPrefix(trimmed, "server "):
			continue
		case strings.HasPrefix(trimmed, "maxconn "):
			line = "    maxconn 1000\n" // within a test runner's open-file limit
		case strings.HasPrefix(trimmed, "bind :7070 "):
			line = "    bind " + h.Addr + " proto h2\n"
		case strings.HasPrefix(trimmed, "default-server "):
			line = strings.Replace(line, "inter 2s", "inter 250ms", 1)
		}
		cfg.WriteString(line)
	}
	for i, r := range regionals {
		_, healthPort, _ := strings.Cut(r.HealthAddr, ":")
		fmt.Fprintf(&cfg, "    server regional%d %s proto h2 check-proto h1 port %s\n", i+1, r.FabrikAddr, healthPort)
	}
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(h.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	h.cmd = exec.Command(bin, "-db", "-f", path)
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	t.Cleanup(func() {
		syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
		h.cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(h.log)
			t.Logf("haproxy log:\n%s", b)
		}
	})
	if !waitFor(10*time.Second, func() bool {
		c, err := (&http.Client{Timeout: time.Second}).Get("http://" + h.Addr)
		if err == nil {
			c.Body.Close()
		}
		return err == nil || !strings.Contains(err.Error(), "refused")
	}) {
		t.Fatalf("haproxy did not listen within 10s; config:\n%s", cfg.String())
	}
	return h
}

// lbArtifact is one artifact of the load-balancer test's client loop.
type lbArtifact struct {
	key  string
	seed uint64
	size int
	hash string
	edge int // the edge it was written through
}

func (a lbArtifact) body() []byte {
	b := make([]byte, a.size)
	rand.NewChaCha8([32]byte{byte(a.seed), byte(a.seed >> 8), 'l', 'b'}).Read(b)
	return b
}

// lbSize spreads artifacts from 4 KiB to 16 MiB: mostly small ones, as build
// caches see, and every twentieth between 4 and 16 MiB.
func lbSize(i int) int {
	if i%20 == 19 {
		return 4<<20 + (i*7919)%(12<<20)
	}
	return 4 << 10 << (i % 8) // 4 KiB .. 512 KiB
}

// Three regionals behind a real HAProxy, one MinIO as their shared S3, two
// edges whose upstream is HAProxy. While a client loop writes and reads
// through both edges, one regional is killed with SIGKILL, then a second,
// then both come back. No client request may fail; a cross-edge read may
// miss only while the artifact had not reached S3 yet (checked by asking
// MinIO before the read, counted and reported); at the end every artifact
// is readable byte-identical through the edge it was not written through.
// Bounded: 200 artifacts (~130 MiB), about 40 s on two cores.
func TestLoadBalancedRegionalsSurviveKills(t *testing.T) {
	harness.RequireTool(t, "haproxy")
	srv := minio.Start(t)
	srv.CreateBucket(t, "shared")
	s3up := fmt.Sprintf(`[[upstream]]
url = "s3://shared/fabrik/"
endpoint = %q
region = "us-east-1"
access_key = %q
secret_key = %q
permanent = true
timeout = "10s"

[runtime]
drain_delay = "1s"
`, srv.Endpoint, srv.AccessKey, srv.SecretKey)
	regionals := make([]*harness.Node, 3)
	for i := range regionals {
		regionals[i] = harness.StartNodeWith(t, harness.NodeOptions{Args: []string{"--role", "regional"}, ExtraTOML: s3up})
	}
	lb := startHAProxy(t, regionals)
	edgeUp := harness.NodeOptions{ExtraTOML: fmt.Sprintf("[[upstream]]\nurl = %q\ntimeout = \"10s\"\n", "grpc://"+lb.Addr)}
	edges := []*harness.Node{harness.StartNodeWith(t, edgeUp), harness.StartNodeWith(t, edgeUp)}

	const total = 200
	artifacts := make([]lbArtifact, total)
	for i := range artifacts {
		a := lbArtifact{key: fmt.Sprintf("%064x", 0x1b0000+i), seed: uint64(i), size: lbSize(i), edge: i % 2}
		sum := sha256.Sum256(a.body())
		a.hash = hex.EncodeToString(sum[:])
		artifacts[i] = a
	}
	s3c := srv.Client()
	// inS3 reports whether the S3 tier holds a's key entry, which it writes
	// after the blob: from then on a regional's read through S3 finds it.
	inS3 := func(a lbArtifact) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("shared"), Key: aws.String("fabrik/keys/gradle/" + a.key)})
		return err == nil
	}
	client := &http.Client{Timeout: 60 * time.Second}
	// get reads a through edge e: (found, error). A wrong body is an error.
	get := func(e int, a lbArtifact) (bool, error) {
		res, err := client.Get(edges[e].HTTPURL() + "/cache/" + a.key)
		if err != nil {
			return false, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		switch {
		case err != nil:
			return false, fmt.Errorf("read body: %w", err)
		case res.StatusCode == http.StatusNotFound:
			return false, nil
		case res.StatusCode != http.StatusOK:
			return false, fmt.Errorf("status %d: %s", res.StatusCode, b)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != a.hash {
			return false, fmt.Errorf("body of %d bytes is not the %d written", len(b), a.size)
		}
		return true, nil
	}
	put := func(a lbArtifact) error {
		req, _ := http.NewRequest(http.MethodPut, edges[a.edge].HTTPURL()+"/cache/"+a.key, bytes.NewReader(a.body()))
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusCreated {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	}

	var (
		mu        sync.Mutex
		failures  []string
		done      atomic.Int32
		crossHits atomic.Int32
		notYetS3  atomic.Int32 // misses of artifacts that had not reached S3
		next      atomic.Int32
		wg        sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				a := artifacts[i]
				if err := put(a); err != nil {
					fail("put %d (%d bytes) through edge %d: %v", i, a.size, a.edge, err)
				}
				if found, err := get(a.edge, a); err != nil || !found {
					fail("read-back %d through edge %d: found=%v err=%v", i, a.edge, found, err)
				}
				// A cross-edge read of an earlier artifact, through the
				// regionals while they die.
				if i >= 8 {
					b := artifacts[i-8]
					was := inS3(b)
					found, err := get(1-b.edge, b)
					switch {
					case err != nil:
						fail("cross read %d through edge %d: %v", i-8, 1-b.edge, err)
					case found:
						crossHits.Add(1)
					case was:
						fail("cross read %d through edge %d missed though S3 held it", i-8, 1-b.edge)
					default:
						notYetS3.Add(1)
					}
				}
				done.Add(1)
			}
		}()
	}

	// Chaos from the test goroutine (the harness may call t.Fatal): kill
	// one regional, then a second, then bring both back, at fixed points
	// of the client loop's progress.
	start := time.Now()
	waitDone := func(n int32) {
		for done.Load() < n && time.Since(start) < 80*time.Second {
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitDone(total / 5)
	regionals[0].Kill()
	t.Logf("%v: killed regional 1 after %d artifacts", time.Since(start).Round(time.Millisecond), done.Load())
	waitDone(total * 2 / 5)
	regionals[1].Kill()
	t.Logf("%v: killed regional 2 after %d artifacts", time.Since(start).Round(time.Millisecond), done.Load())
	waitDone(total * 3 / 5)
	regionals[0].Start()
	regionals[1].Start()
	t.Logf("%v: restarted regionals 1 and 2 after %d artifacts", time.Since(start).Round(time.Millisecond), done.Load())
	// A graceful stop: /health says "draining" for drain_delay (1 s, twice
	// the checks' fall x inter) so HAProxy takes regional 3 out before its
	// connections close.
	waitDone(total * 4 / 5)
	regionals[2].Stop()
	t.Logf("%v: stopped regional 3 gracefully after %d artifacts", time.Since(start).Round(time.Millisecond), done.Load())
	wg.Wait()
	t.Logf("%v: client loop done: %d cross-edge hits, %d misses of artifacts not yet in S3", time.Since(start).Round(time.Millisecond), crossHits.Load(), notYetS3.Load())
	for _, f := range failures {
		t.Error(f)
	}
	if b, _ := os.ReadFile(lb.log); !strings.Contains(string(b), "regional3 is DOWN, reason: Layer7 wrong status, code: 503") {
		t.Errorf("HAProxy did not take the draining regional 3 out on its 503:\n%s", b)
	}

	// Write-through is asynchronous (edge -> regional -> S3, with retries):
	// wait until everything is readable through the other edge.
	pending := artifacts
	deadline := time.Now().Add(40 * time.Second)
	for len(pending) > 0 {
		var still []lbArtifact
		for _, a := range pending {
			found, err := get(1-a.edge, a)
			if err != nil {
				t.Errorf("final read of %s through edge %d: %v", a.key, 1-a.edge, err)
			} else if !found {
				still = append(still, a)
			}
		}
		pending = still
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(pending) > 0 {
		t.Fatalf("%d of %d artifacts not readable through the other edge 40s after the loop (first: %s, %d bytes, via edge %d)",
			len(pending), total, pending[0].key, pending[0].size, pending[0].edge)
	}
	t.Logf("%v: all %d artifacts readable byte-identical through the other edge", time.Since(start).Round(time.Millisecond), total)
	// Behind the balancer, the kills never looked like a dead upstream to
	// the edges for long: their breakers are closed at the end.
	for i, e := range edges {
		var h struct {
			Upstreams []struct{ Name, Breaker string }
		}
		res, err := http.Get(e.HealthURL())
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(res.Body).Decode(&h)
		res.Body.Close()
		if len(h.Upstreams) != 1 || h.Upstreams[0].Breaker != "closed" {
			t.Errorf("edge %d /health upstreams after the run: %+v, want one closed breaker", i, h.Upstreams)
		}
	}
	// The S3 check above must be able to see artifacts, or every cross-edge
	// miss would pass as "not in S3 yet".
	for _, a := range artifacts {
		if !inS3(a) {
			t.Fatalf("artifact %s is readable but its key entry is not where the test looks in S3", a.key)
		}
	}
}
