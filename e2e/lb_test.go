package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	fabrikv1 "github.com/tuist/fabrik-node/proto/fabrik/v1"
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

// errCutMidBody marks a read whose answer was "found" and whose body then
// broke off.
var errCutMidBody = errors.New("body cut short")

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
// edges whose upstream is HAProxy, and the edges' circuit breakers
// (ARCHITECTURE.md, remote tier: 5 consecutive failures open it for 5 s,
// reads are then misses at once, one log line per outage) seen through it.
//
// Phase 1, HAProxy masks dead regionals: while a client loop writes and
// reads through both edges, one regional is killed with SIGKILL, then a
// second, then both come back, then the third stops gracefully (and must
// deliver its S3 queue before it exits: it never returns in phase 1). No
// client request may fail; a cross-edge read may miss only while the
// artifact had not reached S3 yet (checked by asking MinIO before the read,
// counted and reported), and may break off mid-body only if it was also
// larger than one chunk (its one regional copy may have died streaming it;
// a stream of an artifact in S3 is resumed on another regional); at the end
// every artifact is readable byte-identical through the edge it was not
// written through. The edges' breakers never open (/health sampled
// throughout, no "circuit open" log line, no read answered by an open
// breaker).
//
// Phase 2, every regional down: HAProxy has nobody to send a stream to and
// answers 503, so each edge's upstream reads fail and its breaker opens
// (/health "degraded", breaker "open"). Writes still succeed (stored
// locally, queued), reads are local hits or 404 misses, never errors, and
// reads made while the breaker is open never reach the upstream. The
// outage outlasts the cooldown: the breaker opens again after it, and
// each edge logs the outage once.
//
// Phase 3, the regionals return: the breakers close (one "upstream
// recovered" line, /health "healthy"), the uploads queued during the
// outage are delivered to S3 and readable byte-identical through the other
// edge, and the edges' queues are empty with nothing given up or dropped.
// Bounded: 200 artifacts (~130 MiB) in phase 1, 16 small ones after; 30 to
// 40 s on two cores (phases 2 and 3 wait out a breaker cooldown and the
// upload queue's retry backoff).
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
			return false, fmt.Errorf("%w: %w", errCutMidBody, err)
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
		lostCopy  atomic.Int32 // cuts of artifacts whose only regional copy died
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
					case err != nil && !was && b.size > fabrikv1.ChunkSize && errors.Is(err, errCutMidBody):
						// Not in S3 yet, its one regional copy was on the
						// regional killed while streaming it: nobody can
						// resume the stream. (A one-chunk artifact is
						// whole or a miss; one in S3 is resumed.)
						lostCopy.Add(1)
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

	// /health of both edges every 100 ms for the whole of phase 1: HAProxy
	// must keep every kill from looking like a dead upstream.
	sampling := make(chan struct{})
	sampled := make(chan []string, 1)
	go func() {
		var opened []string
		for {
			for i, e := range edges {
				if h, err := readHealth(e); err == nil && h.breaker() != "closed" {
					opened = append(opened, fmt.Sprintf("edge %d at %s: %+v", i, time.Now().Format(time.StampMilli), h))
				}
			}
			select {
			case <-sampling:
				sampled <- opened
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

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
	atStop := uploadsOf(t, regionals[2])
	regionals[2].Stop()
	t.Logf("%v: stopped regional 3 gracefully after %d artifacts (its S3 queue at SIGTERM: %+v)", time.Since(start).Round(time.Millisecond), done.Load(), atStop)
	wg.Wait()
	t.Logf("%v: client loop done: %d cross-edge hits, %d misses of artifacts not yet in S3, %d cut with their only regional copy",
		time.Since(start).Round(time.Millisecond), crossHits.Load(), notYetS3.Load(), lostCopy.Load())
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
		t.Fatalf("%d of %d artifacts not readable through the other edge 40s after the loop (first: %s, %d bytes, via edge %d); upload queues: edges %+v %+v, regionals 1 and 2 %+v %+v",
			len(pending), total, pending[0].key, pending[0].size, pending[0].edge,
			uploadsOf(t, edges[0]), uploadsOf(t, edges[1]), uploadsOf(t, regionals[0]), uploadsOf(t, regionals[1]))
	}
	t.Logf("%v: all %d artifacts readable byte-identical through the other edge", time.Since(start).Round(time.Millisecond), total)
	// Behind the balancer, the kills never looked like a dead upstream to
	// the edges: their breakers never opened.
	close(sampling)
	for _, o := range <-sampled {
		t.Errorf("breaker not closed while HAProxy had a live regional: %s", o)
	}
	for i, e := range edges {
		if h := mustHealth(t, e); h.breaker() != "closed" || h.Status != "healthy" {
			t.Errorf("edge %d /health after phase 1: %+v, want healthy with one closed breaker", i, h)
		}
		if n := strings.Count(e.Logs(), breakerOpenedLog); n != 0 {
			t.Errorf("edge %d logged %d breaker openings while HAProxy had a live regional", i, n)
		}
		if n := scrape(t, e, "")[breakerShortCut]; n != 0 {
			t.Errorf("edge %d answered %v reads from an open breaker while HAProxy had a live regional", i, n)
		}
	}
	// The S3 check above must be able to see artifacts, or every cross-edge
	// miss would pass as "not in S3 yet".
	for _, a := range artifacts {
		if !inS3(a) {
			t.Fatalf("artifact %s is readable but its key entry is not where the test looks in S3", a.key)
		}
	}
	if t.Failed() {
		return
	}

	// Phase 2: every regional down (regional 3 is stopped already).
	regionals[0].Kill()
	regionals[1].Kill()
	t.Logf("%v: killed regionals 1 and 2: none is left", time.Since(start).Round(time.Millisecond))
	outage := make([]lbArtifact, 16)
	for i := range outage {
		a := lbArtifact{key: fmt.Sprintf("%064x", 0x1c0000+i), seed: uint64(1000 + i), size: 4 << 10 << (i % 5), edge: i % 2}
		sum := sha256.Sum256(a.body())
		a.hash = hex.EncodeToString(sum[:])
		outage[i] = a
		if err := put(a); err != nil {
			t.Fatalf("put %d through edge %d with every regional down: %v", i, a.edge, err)
		}
		if found, err := get(a.edge, a); err != nil || !found {
			t.Fatalf("read-back %d through edge %d with every regional down: found=%v err=%v, want a local hit", i, a.edge, found, err)
		}
	}
	// crossMiss reads through edge e an outage artifact written through the
	// other edge: with no regional it can only be a miss.
	next.Store(0)
	crossMiss := func(e int) {
		t.Helper()
		a := outage[(2*int(next.Add(1))+1-e)%len(outage)]
		if found, err := get(e, a); err != nil || found {
			t.Fatalf("cross read of %s through edge %d with every regional down: found=%v err=%v, want a miss", a.key, e, found, err)
		}
	}
	firstOpen := make([]time.Time, len(edges))
	if !waitFor(30*time.Second, func() bool {
		for e := range edges {
			if firstOpen[e].IsZero() {
				crossMiss(e)
				if h := mustHealth(t, edges[e]); h.breaker() == "open" && h.Status == "degraded" {
					firstOpen[e] = *h.Upstreams[0].OpenUntil
				}
			}
		}
		return !firstOpen[0].IsZero() && !firstOpen[1].IsZero()
	}) {
		t.Fatalf("with every regional down the breakers did not open within 30s: %+v, %+v", mustHealth(t, edges[0]), mustHealth(t, edges[1]))
	}
	t.Logf("%v: both edges' breakers are open", time.Since(start).Round(time.Millisecond))
	for e, edge := range edges {
		// Reads while the breaker is open are misses that never reach the
		// upstream; a local artifact is still a hit.
		before := scrape(t, edge, "")[breakerShortCut]
		for range 5 {
			crossMiss(e)
		}
		if found, err := get(e, artifacts[e]); err != nil || !found {
			t.Fatalf("read of a local artifact through edge %d with its breaker open: found=%v err=%v", e, found, err)
		}
		absent := lbArtifact{key: fmt.Sprintf("%064x", 0x1d0000+e)}
		if found, err := get(e, absent); err != nil || found {
			t.Fatalf("read of a key nobody wrote through edge %d with its breaker open: found=%v err=%v, want a miss", e, found, err)
		}
		cut := scrape(t, edge, "")[breakerShortCut] - before
		if h := mustHealth(t, edge); h.breaker() == "open" && h.Upstreams[0].OpenUntil.Equal(firstOpen[e]) && cut != 6 {
			t.Fatalf("edge %d: %v of the 6 upstream reads made while its breaker stayed open were answered by the breaker", e, cut)
		} else if cut == 0 {
			t.Fatalf("edge %d: no read was answered by its open breaker", e)
		}
		t.Logf("edge %d: %v of 6 upstream reads answered by its open breaker", e, cut)
	}
	// The outage outlasts the cooldown: the first reads after it fail
	// again and open the breaker anew, without a second log line.
	if !waitFor(30*time.Second, func() bool {
		reopened := true
		for e := range edges {
			crossMiss(e)
			h := mustHealth(t, edges[e])
			reopened = reopened && h.breaker() == "open" && h.Upstreams[0].OpenUntil.After(firstOpen[e])
		}
		return reopened
	}) {
		t.Fatalf("the breakers did not open again after their cooldown with every regional still down: %+v, %+v", mustHealth(t, edges[0]), mustHealth(t, edges[1]))
	}
	for e, edge := range edges {
		if n := strings.Count(edge.Logs(), breakerOpenedLog); n != 1 {
			t.Errorf("edge %d logged %d breaker openings for one outage, want 1", e, n)
		}
		if u := uploadsOf(t, edge); u.pending == 0 {
			t.Errorf("edge %d queues no upload with every regional down: %+v", e, u)
		}
	}
	t.Logf("%v: the breakers opened again after their cooldown", time.Since(start).Round(time.Millisecond))

	// Phase 3: the regionals return.
	for _, r := range regionals {
		r.Start()
	}
	t.Logf("%v: restarted the three regionals", time.Since(start).Round(time.Millisecond))
	pending = outage
	if !waitFor(60*time.Second, func() bool {
		var still []lbArtifact
		for _, a := range pending {
			if !inS3(a) {
				still = append(still, a)
				continue
			}
			found, err := get(1-a.edge, a)
			if err != nil {
				t.Fatalf("read of outage artifact %s through edge %d after the regionals returned: %v", a.key, 1-a.edge, err)
			}
			if !found {
				still = append(still, a)
			}
		}
		pending = still
		return len(pending) == 0
	}) {
		t.Fatalf("%d of %d artifacts written during the outage not in S3 and readable through the other edge 60s after the regionals returned (first: %s via edge %d; queues %+v, %+v)",
			len(pending), len(outage), pending[0].key, pending[0].edge, uploadsOf(t, edges[0]), uploadsOf(t, edges[1]))
	}
	t.Logf("%v: every artifact written during the outage is in S3 and readable through the other edge", time.Since(start).Round(time.Millisecond))
	for e, edge := range edges {
		if h := mustHealth(t, edge); h.breaker() != "closed" || h.Status != "healthy" {
			t.Errorf("edge %d /health after the regionals returned: %+v, want healthy with one closed breaker", e, h)
		}
		if n := strings.Count(edge.Logs(), breakerRecoveredLog); n != 1 {
			t.Errorf("edge %d logged %d recoveries of its upstream, want 1", e, n)
		}
		if u, ok := drained(t, edge, 10*time.Second); !ok {
			t.Errorf("edge %d upload queue after the outage: %+v, want empty with nothing given up or dropped", e, u)
		}
	}
}

// What an edge says about its breaker: the remote tier actor's log lines
// (actors/remote) and the upstream reads an open breaker answered itself.
const (
	breakerOpenedLog    = "upstream failing: circuit open"
	breakerRecoveredLog = "upstream recovered"
	breakerShortCut     = `fabrik_upstream_requests_total{upstream="upstream-0",result="open"}`
)

// nodeHealth is the part of a node's /health JSON the tests read.
type nodeHealth struct {
	Status    string
	Upstreams []struct {
		Name, Breaker string
		OpenUntil     *time.Time `json:"open_until"`
	}
}

// breaker is the state of the node's only upstream's breaker ("" when it
// has not exactly one upstream).
func (h nodeHealth) breaker() string {
	if len(h.Upstreams) != 1 {
		return ""
	}
	return h.Upstreams[0].Breaker
}

// readHealth reads n's /health; safe off the test goroutine.
func readHealth(n *harness.Node) (nodeHealth, error) {
	var h nodeHealth
	res, err := (&http.Client{Timeout: 5 * time.Second}).Get(n.HealthURL())
	if err != nil {
		return h, err
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
		return h, fmt.Errorf("decode /health: %w", err)
	}
	return h, nil
}

func mustHealth(t *testing.T, n *harness.Node) nodeHealth {
	t.Helper()
	h, err := readHealth(n)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
