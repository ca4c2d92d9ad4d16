// Package e2e runs the real build clients (Gradle, Bazel, Nx, Turborepo)
// against real fabrik-node processes started by e2e/harness, and checks
// every remote hit twice: by the client's own hit markers and by the node's
// /metrics counters, so neither a client that quietly rebuilt nor a node
// that miscounts can pass. Commands and markers are those measured in
// e2e/testdata/CLIENTS.md.
package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/e2e/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

// mustContain fails the test unless out holds every marker.
func mustContain(t *testing.T, out string, markers ...string) {
	t.Helper()
	for _, m := range markers {
		if !strings.Contains(out, m) {
			t.Fatalf("output lacks %q:\n%s", m, out)
		}
	}
}

// mustNotContain fails the test if out holds any of the markers.
func mustNotContain(t *testing.T, out string, markers ...string) {
	t.Helper()
	for _, m := range markers {
		if strings.Contains(out, m) {
			t.Fatalf("output unexpectedly holds %q:\n%s", m, out)
		}
	}
}

// apiGet fetches path from the node's API port (with a bearer token when
// auth protects it) and returns the body, failing the test on anything but
// wantStatus.
func apiGet(t *testing.T, n *harness.Node, token, path string, wantStatus int) []byte {
	t.Helper()
	status, body := apiDo(t, n, token, path)
	if status != wantStatus {
		t.Fatalf("GET %s: status %d, want %d: %s", path, status, wantStatus, body)
	}
	return body
}

// apiDo is one GET on the API port; it returns the status and body.
func apiDo(t *testing.T, n *harness.Node, token, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, n.APIURL()+path, nil)
	if err != nil {
		t.Fatalf("request %s: %v", path, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp.StatusCode, body
}

// metrics is one scrape of /metrics: series (name with labels, exactly as
// exposed) to value.
type metrics map[string]float64

// scrape reads the node's /metrics.
func scrape(t *testing.T, n *harness.Node, token string) metrics {
	t.Helper()
	body := apiGet(t, n, token, "/metrics", http.StatusOK)
	m, err := parseMetrics(string(body))
	if err != nil {
		t.Fatalf("/metrics: %v\n%s", err, body)
	}
	return m
}

// parseMetrics reads the Prometheus text format: "series value" lines,
// comments skipped. Label values in this node's series hold no spaces, so
// the value is what follows the last space.
func parseMetrics(text string) (metrics, error) {
	m := metrics{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("metrics line without value: %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// Hits, Misses and the per-build-system counters, zero when not yet exposed
// (a counter appears with its first increment).
func (m metrics) hits() float64   { return m["fabrik_cache_hits_total"] }
func (m metrics) misses() float64 { return m["fabrik_cache_misses_total"] }
func (m metrics) hitsOf(buildSystem string) float64 {
	return m[fmt.Sprintf("fabrik_cache_hits_by_build_system_total{build_system=%q}", buildSystem)]
}
func (m metrics) missesOf(buildSystem string) float64 {
	return m[fmt.Sprintf("fabrik_cache_misses_by_build_system_total{build_system=%q}", buildSystem)]
}

// sumPrefix adds every series whose name (with labels) starts with prefix.
func (m metrics) sumPrefix(prefix string) float64 {
	var s float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			s += v
		}
	}
	return s
}

// stats is the part of GET /api/v1/stats the tests compare with /metrics.
type stats struct {
	Cache struct {
		TotalObjects   int64 `json:"total_objects"`
		TotalSizeBytes int64 `json:"total_size_bytes"`
	} `json:"cache"`
	Performance struct {
		CacheHits   uint64 `json:"cache_hits"`
		CacheMisses uint64 `json:"cache_misses"`
	} `json:"performance"`
	Bandwidth struct {
		UploadBytesTotal   uint64 `json:"upload_bytes_total"`
		DownloadBytesTotal uint64 `json:"download_bytes_total"`
	} `json:"bandwidth"`
}

// countLines counts the output lines ending with suffix, e.g. Gradle's
// ":concat FROM-CACHE".
func countLines(out, suffix string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(strings.TrimSpace(l), suffix) {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or timeout passes; it reports whether
// cond held.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// decodeJSON unmarshals body into v, failing the test with the body.
func decodeJSON(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, body)
	}
}
