package events

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/metrics"
)

func start(t *testing.T, opts Options) *Publisher {
	t.Helper()
	sys := actors.NewSystem()
	p, err := Start(sys, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(); sys.Shutdown() })
	return p
}

func dropped(m *metrics.Set) uint64 { return m.Counter("fabrik_events_dropped_total").Get() }

// TestStatsHitMissAggregated: the periodic messages carry the stats body
// and the hits and misses since the previous tick, not one per request.
func TestStatsHitMissAggregated(t *testing.T) {
	m := metrics.New(nil, nil)
	p := start(t, Options{URL: "embedded", Node: "n.1", StatsEvery: 50 * time.Millisecond, Metrics: m,
		Stats: func() (any, error) { return map[string]int{"total_objects": 42}, nil }})
	if p.Subject("stats") != "fabrik.n_1.stats" {
		t.Fatalf("subject %s: a dot in the node name must not split the subject", p.Subject("stats"))
	}
	nc, err := nats.Connect("", nats.InProcessServer(p.Server()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, _ := nc.SubscribeSync("fabrik.n_1.>")
	nc.Flush()
	for range 3 {
		m.Hit("gradle")
	}
	m.Miss("nx")
	seen := map[string]string{}
	deadline := time.Now().Add(5 * time.Second)
	for len(seen) < 3 && time.Now().Before(deadline) {
		msg, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			break
		}
		if _, ok := seen[msg.Subject]; !ok {
			seen[msg.Subject] = string(msg.Data)
		}
	}
	var hit HitMiss
	json.Unmarshal([]byte(seen["fabrik.n_1.hit"]), &hit)
	if hit.Count != 3 || hit.Total != 3 {
		t.Errorf("hit message %q, want count 3", seen["fabrik.n_1.hit"])
	}
	if !strings.Contains(seen["fabrik.n_1.miss"], `"count":1`) || !strings.Contains(seen["fabrik.n_1.stats"], `"total_objects":42`) {
		t.Errorf("messages: %v", seen)
	}
}

// TestNATSDownNeverBlocks: with the server unreachable, publishing far
// more than the buffer returns at once and the overflow is counted.
func TestNATSDownNeverBlocks(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close() // nothing listens here now
	m := metrics.New(nil, nil)
	p := start(t, Options{URL: "nats://" + addr, Node: "edge", Buffer: 16, StatsEvery: -1, Metrics: m})
	const n = 200_000
	start := time.Now()
	for i := range n {
		p.Evicted(fmt.Sprintf("%064x", i), 1000, "size")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("%d publishes took %v with NATS down", n, took)
	}
	// nats.go buffers up to 1 MiB while reconnecting; everything past it
	// and past the 16-event buffer is dropped and counted.
	deadline := time.Now().Add(5 * time.Second)
	for dropped(m) < n/2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if d := dropped(m); d < n/2 {
		t.Fatalf("dropped %d of %d events with NATS down", d, n)
	}
}

func TestBadURL(t *testing.T) {
	if _, err := Start(actors.NewSystem(), Options{URL: "http://localhost"}); err == nil {
		t.Fatal("an http:// URL was accepted")
	}
}
