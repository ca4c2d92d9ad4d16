package node

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/messages"
)

// trafficNode is an edge in front of a regional that has served a write,
// a hit, a miss (also an upstream miss) and an admin eviction, so that
// every series the node can export exists.
func trafficNode(t *testing.T) *Node {
	t.Helper()
	regional := startNode(t, config.RoleRegional, testConfig(t, config.RoleRegional, t.TempDir()))
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Upstream = []config.UpstreamConfig{upstream("grpc://" + regional.Addr("fabrik"))}
	c.Observability.AdminAPIEnabled = true
	n := startNode(t, config.RoleEdge, c)
	gradlePut(t, n, key1, randomBytes(t, 5000))
	gradleGet(t, n, key1)
	gradleGet(t, n, strings.Repeat("e", 32))
	eventually(t, "write-through", func() bool { return localHas(regional, messages.Ref{Namespace: "gradle", Key: key1}) })
	mustAPI(t, n, "POST", "/api/v1/admin/evict", map[string]any{"target_size_bytes": 0})
	return n
}

// exported maps every series name in a scrape to its # TYPE.
func exported(t *testing.T, n *Node) map[string]string {
	text := scrape(t, n, "")
	types := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
		}
	}
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		base := name
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(name, suf); ok && types[b] == "histogram" {
				base = b
			}
		}
		out[name] = types[base]
	}
	return out
}

// TestSpecMetrics checks each metric of the spec's Metrics API section,
// with its type and labels.
func TestSpecMetrics(t *testing.T) {
	n := trafficNode(t)
	got := exported(t, n)
	for name, typ := range map[string]string{
		"fabrik_cache_hits_total": "counter", "fabrik_cache_misses_total": "counter",
		"fabrik_cache_hit_ratio": "gauge", "fabrik_cache_size_bytes": "gauge", "fabrik_cache_objects": "gauge",
		"fabrik_request_duration_seconds_bucket": "histogram", "fabrik_bandwidth_bytes_total": "counter",
		"fabrik_upstream_requests_total": "counter", "fabrik_evictions_total": "counter",
	} {
		if got[name] != typ {
			t.Errorf("%s: type %q, want %q", name, got[name], typ)
		}
	}
	text := scrape(t, n, "")
	for _, re := range []string{
		`(?m)^fabrik_request_duration_seconds_bucket\{.*le="0.005"\} \d+$`,
		`(?m)^fabrik_bandwidth_bytes_total\{direction="upload"\} 5000$`,
		`(?m)^fabrik_bandwidth_bytes_total\{direction="download"\} 5000$`,
		`(?m)^fabrik_upstream_requests_total\{upstream="[^"]+",result="miss"\} 1$`,
		`(?m)^fabrik_evictions_total 1$`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("/metrics does not match %s", re)
		}
	}
}

// TestGrafanaDashboard parses configs/grafana-dashboard.json and checks
// that every metric its queries use is one the node exports.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../configs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if d.Title == "" || len(d.Panels) < 8 {
		t.Fatalf("dashboard %q has %d panels", d.Title, len(d.Panels))
	}
	got := exported(t, trafficNode(t))
	used := map[string]bool{}
	name := regexp.MustCompile(`fabrik_[a-z_]+`)
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				used[m] = true
				if _, ok := got[m]; !ok {
					t.Errorf("panel %q uses %s, which the node does not export", p.Title, m)
				}
			}
		}
	}
	for _, m := range []string{"fabrik_cache_hit_ratio", "fabrik_cache_hits_total", "fabrik_cache_misses_total",
		"fabrik_cache_size_bytes", "fabrik_cache_objects", "fabrik_request_duration_seconds_bucket",
		"fabrik_bandwidth_bytes_total", "fabrik_upstream_requests_total", "fabrik_evictions_total", "fabrik_upload_queue_depth"} {
		if !used[m] {
			t.Errorf("dashboard does not plot %s", m)
		}
	}
}
