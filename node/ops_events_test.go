package node

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tuist/fabrik-node/actors/events"
	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/e2e/harness"
)

// overflow pushes a node with a 100 kB max_size over its bound with ten
// 20 kB artifacts and returns the hashes written.
func overflow(t *testing.T, n *Node) map[string]bool {
	t.Helper()
	put := map[string]bool{}
	for i := range 10 {
		put[putBlob(t, n, "gradle", fmt.Sprintf("%032x", i), "gradle", randomBytes(t, 20_000))] = true
	}
	return put
}

// collectEvictions reads evict events until want arrived or 5 s passed.
func collectEvictions(t *testing.T, sub *nats.Subscription, want int) []events.Evict {
	t.Helper()
	var got []events.Evict
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < want && time.Now().Before(deadline) {
		msg, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			break
		}
		var e events.Evict
		if err := json.Unmarshal(msg.Data, &e); err != nil {
			t.Fatalf("evict event %q: %v", msg.Data, err)
		}
		got = append(got, e)
	}
	return got
}

func checkEvictions(t *testing.T, n *Node, put map[string]bool, got []events.Evict) {
	t.Helper()
	want := int(n.Metrics().Evictions())
	if want == 0 {
		t.Fatal("the node evicted nothing: the test did not push it over max_size")
	}
	if len(got) != want {
		t.Fatalf("received %d evict events, the node counted %d evictions", len(got), want)
	}
	for _, e := range got {
		if !put[e.Hash] || e.Reason != "size" || e.SizeBytes != 20_000 || e.Node != "edge-1" {
			t.Fatalf("unexpected evict event %+v", e)
		}
	}
}

func TestEvictionEventsEmbeddedNATS(t *testing.T) {
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Cache.MaxSize = 100_000
	c.Events.NATSURL = "embedded"
	c.Events.NodeName = "edge-1"
	n := startNode(t, config.RoleEdge, c)
	p := n.Events()
	if p == nil || p.Server() == nil {
		t.Fatal("no embedded NATS server")
	}
	if p.Server().Addr() != nil {
		t.Fatalf("embedded NATS listens on %v; it must not open a port", p.Server().Addr())
	}
	sub := subscribe(t, "", nats.InProcessServer(p.Server()))
	put := overflow(t, n)
	checkEvictions(t, n, put, collectEvictions(t, sub, int(n.Metrics().Evictions())))
}

// TestEvictionEventsRealNATS runs Debian's nats-server (scripts/install-tools.sh
// nats) on a free loopback port, then kills it: the node keeps serving.
func TestEvictionEventsRealNATS(t *testing.T) {
	// Missing nats-server fails under CI or FABRIK_E2E_REQUIRE=1 (the e2e
	// harness's rule); only a developer's machine without it skips.
	bin := harness.RequireTool(t, "nats-server")
	port := freePort(t)
	srv := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			srv.Process.Kill()
			srv.Wait()
		}
	}
	t.Cleanup(stop)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	eventually(t, "nats-server accepting connections", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Cache.MaxSize = 100_000
	c.Events.NATSURL = url
	c.Events.NodeName = "edge-1"
	n := startNode(t, config.RoleEdge, c)
	sub := subscribe(t, url)
	put := overflow(t, n)
	checkEvictions(t, n, put, collectEvictions(t, sub, int(n.Metrics().Evictions())))

	// NATS gone: writes, evictions and the API go on at full speed.
	stop()
	start := time.Now()
	for i := range 20 {
		gradlePut(t, n, fmt.Sprintf("%032x", 100+i), randomBytes(t, 20_000))
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("20 PUTs took %v with NATS down", took)
	}
	mustAPI(t, n, "GET", "/api/v1/stats", nil)
}

func subscribe(t *testing.T, url string, opts ...nats.Option) *nats.Subscription {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync("fabrik.edge-1.evict")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the subscription is live before any PUT
		t.Fatal(err)
	}
	return sub
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
