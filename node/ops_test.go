package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/messages"
)

// putBlob stores body under gradle/<key> (or CAS) through the node's router,
// labelled with a build system.
func putBlob(t *testing.T, n *Node, ns, key, buildSystem string, body []byte) string {
	t.Helper()
	st, err := n.Cache().Stage("", int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	st.Write(body)
	if err := st.Seal(); err != nil {
		t.Fatal(err)
	}
	h := st.Hash()
	if ns == messages.CAS {
		key = h
	}
	if err := n.Cache().Put(t.Context(), messages.Ref{Namespace: ns, Key: key}, messages.Meta{BuildSystem: buildSystem}, st); err != nil {
		t.Fatalf("put %s/%s: %v", ns, key, err)
	}
	return h
}

// api sends a request to the node's API port and decodes the JSON answer.
func api(t *testing.T, n *Node, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+n.Addr("api")+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: bad JSON %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, out
}

func mustAPI(t *testing.T, n *Node, method, path string, body any) map[string]any {
	t.Helper()
	code, out := api(t, n, method, path, "", body)
	if code != http.StatusOK {
		t.Fatalf("%s %s: %d %v", method, path, code, out)
	}
	return out
}

func artifacts(out map[string]any) []map[string]any {
	var res []map[string]any
	for _, a := range out["artifacts"].([]any) {
		res = append(res, a.(map[string]any))
	}
	return res
}

func sizes(out map[string]any) []int {
	var s []int
	for _, a := range artifacts(out) {
		s = append(s, int(a["size_bytes"].(float64)))
	}
	return s
}

func num(m map[string]any, path ...string) float64 {
	var v any = m
	for _, p := range path {
		v = v.(map[string]any)[p]
	}
	return v.(float64)
}

// fiveBlobs stores blobs of 1..5 KB: three gradle, two bazel (CAS).
func fiveBlobs(t *testing.T, n *Node) []string {
	var hashes []string
	for i := 1; i <= 5; i++ {
		ns, bs := "gradle", "gradle"
		if i%2 == 0 {
			ns, bs = messages.CAS, "bazel"
		}
		hashes = append(hashes, putBlob(t, n, ns, fmt.Sprintf("%032x", i), bs, randomBytes(t, i*1000)))
	}
	return hashes
}

func TestArtifactListing(t *testing.T) {
	n := startNode(t, config.RoleEdge, testConfig(t, config.RoleEdge, t.TempDir()))
	hashes := fiveBlobs(t, n)

	out := mustAPI(t, n, "GET", "/api/v1/artifacts", nil)
	if fmt.Sprint(sizes(out)) != "[5000 4000 3000 2000 1000]" || num(out, "total") != 5 || num(out, "limit") != 100 || num(out, "offset") != 0 {
		t.Fatalf("default listing: sizes %v, %v", sizes(out), out)
	}
	a := artifacts(out)[0]
	if a["hash"] != hashes[4] || a["metadata"].(map[string]any)["build_system"] != "gradle" {
		t.Fatalf("first artifact %v, want hash %s from gradle", a, hashes[4])
	}
	for _, f := range []string{"created_at", "last_accessed"} {
		if _, err := time.Parse(time.RFC3339, a[f].(string)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	cases := map[string]string{
		"?sort=size_asc":                   "[1000 2000 3000 4000 5000]",
		"?sort=size_desc&limit=2&offset=2": "[3000 2000]",
		"?offset=4":                        "[1000]",
		"?offset=5":                        "[]",
		"?offset=1000000":                  "[]",
		"?limit=0":                         "[]",
		"?sort=created_desc":               "[5000 4000 3000 2000 1000]",
	}
	for q, want := range cases {
		out := mustAPI(t, n, "GET", "/api/v1/artifacts"+q, nil)
		if got := fmt.Sprint(sizes(out)); got != want || num(out, "total") != 5 {
			t.Errorf("%s: sizes %s total %v, want %s total 5", q, got, out["total"], want)
		}
	}
	if out := mustAPI(t, n, "GET", "/api/v1/artifacts?limit=100000000", nil); num(out, "limit") != 1000 {
		t.Errorf("huge limit answered limit %v, want the cap 1000", out["limit"])
	}
	for _, q := range []string{"?limit=-1", "?limit=ten", "?offset=-5", "?offset=1.5", "?sort=random", "?limit=99999999999"} {
		code, out := api(t, n, "GET", "/api/v1/artifacts"+q, "", nil)
		if code != http.StatusBadRequest || out["message"] == "" || out["message"] == nil {
			t.Errorf("%s: %d %v, want 400 with a message", q, code, out)
		}
	}

	// Reads count as accesses: the most read artifact tops the list.
	for range 3 {
		res, err := n.Cache().Get(t.Context(), messages.Ref{Namespace: messages.CAS, Key: hashes[1]})
		if err != nil || !res.Found {
			t.Fatalf("get: %v %v", res, err)
		}
		res.Body.Close()
	}
	top := artifacts(mustAPI(t, n, "GET", "/api/v1/artifacts/top?limit=2", nil))
	if len(top) != 2 || top[0]["hash"] != hashes[1] || top[0]["access_count"].(float64) < 3 {
		t.Fatalf("top: %v, want %s first with 3+ accesses", top, hashes[1])
	}

	one := mustAPI(t, n, "GET", "/api/v1/artifacts/"+hashes[2], nil)
	if one["hash"] != hashes[2] || one["size_bytes"].(float64) != 3000 {
		t.Fatalf("artifact: %v", one)
	}
	if code, out := api(t, n, "GET", "/api/v1/artifacts/"+strings.Repeat("ab", 32), "", nil); code != http.StatusNotFound || out["error"] != "not_found" {
		t.Fatalf("absent artifact: %d %v", code, out)
	}
	if code, _ := api(t, n, "GET", "/api/v1/artifacts/not-a-hash", "", nil); code != http.StatusBadRequest {
		t.Fatalf("malformed hash: %d, want 400", code)
	}
}

func TestArtifactSearch(t *testing.T) {
	n := startNode(t, config.RoleEdge, testConfig(t, config.RoleEdge, t.TempDir()))
	hashes := fiveBlobs(t, n)
	cases := map[string]string{
		"?min_size=3KB":                  "[5000 4000 3000]",
		"?min_size=2KB&max_size=4000":    "[4000 3000 2000]",
		"?build_system=bazel":            "[4000 2000]",
		"?query=BAZEL&sort=size_asc":     "[2000 4000]",
		"?query=" + hashes[0][:12]:       "[1000]",
		"?query=gradle&min_size=1MB":     "[]",
		"?query=gradle&limit=1&offset=1": "[3000]",
	}
	for q, want := range cases {
		out := mustAPI(t, n, "GET", "/api/v1/artifacts/search"+q, nil)
		if got := fmt.Sprint(sizes(out)); got != want {
			t.Errorf("search%s: %s, want %s", q, got, want)
		}
	}
	if out := mustAPI(t, n, "GET", "/api/v1/artifacts/search?query=gradle&limit=1", nil); num(out, "total") != 3 {
		t.Errorf("search total %v, want 3 matches", out["total"])
	}
	for _, q := range []string{"?min_size=lots", "?max_size=-1KB", "?min_size=2MB&max_size=1MB", "?sort=nope"} {
		if code, out := api(t, n, "GET", "/api/v1/artifacts/search"+q, "", nil); code != http.StatusBadRequest {
			t.Errorf("search%s: %d %v, want 400", q, code, out)
		}
	}
}

// TestStatsAgreeWithTraffic drives the Gradle adapter and checks the stats
// body against what happened and against /metrics.
func TestStatsAgreeWithTraffic(t *testing.T) {
	n := startNode(t, config.RoleEdge, testConfig(t, config.RoleEdge, t.TempDir()))
	body := randomBytes(t, 70_000)
	gradlePut(t, n, key1, body)
	if got := gradleGet(t, n, key1); !bytes.Equal(got, body) {
		t.Fatal("gradle GET returned other bytes")
	}
	if gradleGet(t, n, strings.Repeat("f", 32)) != nil {
		t.Fatal("miss served bytes")
	}
	putBlob(t, n, messages.CAS, "", "bazel", randomBytes(t, 30_000))

	st := mustAPI(t, n, "GET", "/api/v1/stats", nil)
	checks := map[string][2]float64{
		"cache.total_objects":            {num(st, "cache", "total_objects"), 2},
		"cache.total_size_bytes":         {num(st, "cache", "total_size_bytes"), 100_000},
		"cache.size_by_type.gradle":      {num(st, "cache", "size_by_type", "gradle"), 70_000},
		"cache.size_by_type.bazel":       {num(st, "cache", "size_by_type", "bazel"), 30_000},
		"performance.cache_hits":         {num(st, "performance", "cache_hits"), 1},
		"performance.cache_misses":       {num(st, "performance", "cache_misses"), 1},
		"performance.hit_ratio":          {num(st, "performance", "hit_ratio"), 0.5},
		"bandwidth.upload_bytes_total":   {num(st, "bandwidth", "upload_bytes_total"), 70_000},
		"bandwidth.download_bytes_total": {num(st, "bandwidth", "download_bytes_total"), 70_000},
		"upstream.requests_total":        {num(st, "upstream", "requests_total"), 0},
		"evictions.total":                {num(st, "evictions", "total"), 0},
	}
	for k, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %v, want %v", k, c[0], c[1])
		}
	}
	p50, p99 := num(st, "performance", "latency_p50_ms"), num(st, "performance", "latency_p99_ms")
	if p50 <= 0 || p99 < p50 || p99 > 10_000 {
		t.Errorf("latency p50 %v ms, p99 %v ms: want 0 < p50 <= p99 < 10 s", p50, p99)
	}
	metrics := scrape(t, n, "")
	for _, line := range []string{"fabrik_cache_hits_total 1", "fabrik_cache_misses_total 1",
		`fabrik_bandwidth_bytes_total{direction="upload"} 70000`, "fabrik_cache_objects 2", "fabrik_cache_size_bytes 100000"} {
		if !strings.Contains(metrics, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

func scrape(t *testing.T, n *Node, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+n.Addr("api")+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	return string(b)
}

func TestAPIAuthScopes(t *testing.T) {
	keys := authtest.New(t)
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Auth.PublicKeyFile = keys.File()
	c.Observability.AdminAPIEnabled = true
	n := startNode(t, config.RoleEdge, c)
	read := keys.Token(t, authtest.Scopes("cache:read"))
	write := keys.Token(t, authtest.Scopes("cache:write"))
	admin := keys.Token(t, authtest.Scopes("admin"))
	for _, tc := range []struct {
		method, path, token string
		body                any
		want                int
	}{
		{"GET", "/api/v1/artifacts", "", nil, 401},
		{"GET", "/api/v1/artifacts", write, nil, 403},
		{"GET", "/api/v1/artifacts", read, nil, 200},
		{"GET", "/api/v1/stats", read, nil, 200},
		{"GET", "/api/v1/artifacts/top", read, nil, 200},
		{"GET", "/api/v1/artifacts/search?query=x", read, nil, 200},
		{"GET", "/api/v1/stats", admin, nil, 200},
		{"GET", "/api/v1/stats/timeseries", "", nil, 401},
		{"GET", "/api/v1/stats/timeseries", write, nil, 403},
		{"GET", "/api/v1/stats/timeseries", read, nil, 200},
		{"GET", "/api/v1/stats/detail", "", nil, 401},
		{"GET", "/api/v1/stats/detail", write, nil, 403},
		{"GET", "/api/v1/stats/detail", read, nil, 200},
		{"GET", "/api/v1/admin/config", "", nil, 401},
		{"GET", "/api/v1/admin/config", read, nil, 403},
		{"POST", "/api/v1/admin/evict", read, map[string]any{"target_size_bytes": 0}, 403},
		{"POST", "/api/v1/admin/clear", write, map[string]any{"confirm": true}, 403},
		{"POST", "/api/v1/admin/delete", write, map[string]any{"namespace": "gradle", "key": "k"}, 403},
		{"POST", "/api/v1/admin/delete", admin, map[string]any{"namespace": "gradle", "key": "k"}, 200},
		{"GET", "/api/v1/admin/config", admin, nil, 200},
		{"POST", "/api/v1/admin/evict", admin, map[string]any{"target_size_bytes": 0}, 200},
	} {
		if code, out := api(t, n, tc.method, tc.path, tc.token, tc.body); code != tc.want {
			t.Errorf("%s %s with token %.12q: %d %v, want %d", tc.method, tc.path, tc.token, code, out, tc.want)
		}
	}
	if !strings.Contains(scrape(t, n, read), "fabrik_cache_hits_total") {
		t.Error("/metrics with a read token lacks metrics")
	}
}

func TestAdminDisabledByDefault(t *testing.T) {
	n := startNode(t, config.RoleEdge, testConfig(t, config.RoleEdge, t.TempDir()))
	for _, p := range []string{"GET /api/v1/admin/config", "POST /api/v1/admin/clear", "POST /api/v1/admin/evict", "POST /api/v1/admin/delete"} {
		m, path, _ := strings.Cut(p, " ")
		if code, _ := api(t, n, m, path, "", map[string]any{"confirm": true}); code != http.StatusNotFound {
			t.Errorf("%s with the admin API off: %d, want 404", p, code)
		}
	}
}

func TestAdminEvictAndClear(t *testing.T) {
	rc := testConfig(t, config.RoleRegional, t.TempDir())
	rc.Upstream = nil
	regional := startNode(t, config.RoleRegional, rc)
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Observability.AdminAPIEnabled = true
	up := upstream("grpc://" + regional.Addr("fabrik"))
	up.Permanent = true
	c.Upstream = []config.UpstreamConfig{up}
	n := startNode(t, config.RoleEdge, c)
	for i := range 6 {
		gradlePut(t, n, fmt.Sprintf("%032x", i), randomBytes(t, 10_000))
	}
	// A blob still owed to the upstream is pinned against eviction: wait
	// until all six are written through, so the eviction below may take any.
	for i := range 6 {
		ref := messages.Ref{Namespace: "gradle", Key: fmt.Sprintf("%032x", i)}
		eventually(t, "write-through to the permanent upstream", func() bool { return localHas(regional, ref) })
	}
	mustAPI(t, n, "GET", "/api/v1/artifacts", nil) // warm the listing cache: eviction must invalidate it

	for _, body := range []any{map[string]any{}, map[string]any{"target_size_bytes": -1},
		map[string]any{"target_size_bytes": 1, "strategy": "fifo"}, map[string]any{"target": 1}} {
		if code, out := api(t, n, "POST", "/api/v1/admin/evict", "", body); code != http.StatusBadRequest {
			t.Errorf("evict %v: %d %v, want 400", body, code, out)
		}
	}
	out := mustAPI(t, n, "POST", "/api/v1/admin/evict", map[string]any{"target_size_bytes": 25_000, "strategy": "lru"})
	if num(out, "evicted_objects") != 4 || num(out, "freed_bytes") != 40_000 || num(out, "size_bytes") != 20_000 {
		t.Fatalf("evict: %v", out)
	}
	if l := mustAPI(t, n, "GET", "/api/v1/artifacts", nil); num(l, "total") != 2 {
		t.Fatalf("listing after eviction shows %v artifacts, want 2", l["total"])
	}
	if got := n.Metrics().Evictions(); got != 4 {
		t.Errorf("fabrik_evictions_total %d, want 4", got)
	}

	for _, body := range []any{map[string]any{}, map[string]any{"confirm": false}, nil} {
		if code, out := api(t, n, "POST", "/api/v1/admin/clear", "", body); code != http.StatusBadRequest || out["message"] == nil {
			t.Errorf("clear %v: %d %v, want 400 with a message", body, code, out)
		}
	}
	out = mustAPI(t, n, "POST", "/api/v1/admin/clear", map[string]any{"confirm": true})
	if out["cleared"] != true || num(out, "removed_objects") != 2 {
		t.Fatalf("clear: %v", out)
	}
	if b, o := n.store.Usage(); b != 0 || o != 0 {
		t.Fatalf("after clear the store holds %d bytes in %d objects", b, o)
	}
	for i := range 6 {
		if !localHas(regional, messages.Ref{Namespace: "gradle", Key: fmt.Sprintf("%032x", i)}) {
			t.Fatalf("clear on the edge removed artifact %d from its permanent upstream", i)
		}
	}
}

func TestAdminConfig(t *testing.T) {
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Observability.AdminAPIEnabled = true
	c.Auth.Token = "very-secret-machine-token"
	c.Auth.Required = new(bool) // keep the API open while a token is configured
	n := startNode(t, config.RoleEdge, c)

	out := mustAPI(t, n, "GET", "/api/v1/admin/config", nil)
	cfg := out["config"].(map[string]any)
	if cfg["auth.token"] != "[redacted]" || cfg["cache.max_size"] != "5GB" || cfg["cache.eviction_policy"] != "lfu" {
		t.Fatalf("config: token %v, max_size %v, policy %v", cfg["auth.token"], cfg["cache.max_size"], cfg["cache.eviction_policy"])
	}
	if raw, _ := json.Marshal(out); bytes.Contains(raw, []byte("very-secret")) {
		t.Fatal("GET /api/v1/admin/config leaks the token")
	}

	out = mustAPI(t, n, "POST", "/api/v1/admin/config", map[string]any{"max_cache_size": "100GB", "eviction_policy": "lru"})
	if n.store.MaxSize() != 100e9 || n.store.Policy() != "lru" {
		t.Fatalf("store runs with %d bytes, %s after the spec-shaped update", n.store.MaxSize(), n.store.Policy())
	}
	if a := out["applied"].(map[string]any); a["cache.max_size"] != "100GB" || a["cache.eviction_policy"] != "lru" {
		t.Fatalf("applied: %v", a)
	}
	mustAPI(t, n, "POST", "/api/v1/admin/config", map[string]any{"cache.max_size": 50_000_000, "cache.default_ttl": "2d"})
	if n.store.MaxSize() != 50e6 {
		t.Fatalf("max size %d after a numeric update", n.store.MaxSize())
	}

	for body, key := range map[string]string{
		`{"cache.dir":"/elsewhere"}`:                    "cache.dir",
		`{"nonsense.key":1}`:                            "nonsense.key",
		`{"cache.max_size":"lots"}`:                     "cache.max_size",
		`{"eviction_policy":"fifo"}`:                    "eviction_policy",
		`{"cache.max_size":"1GB","upstream.0.url":"x"}`: "upstream.0.url",
		`{"observability.log_level":"debug"}`:           "observability.log_level",
		`{"cache.max_size":[1]}`:                        "cache.max_size",
	} {
		var b any
		json.Unmarshal([]byte(body), &b)
		code, out := api(t, n, "POST", "/api/v1/admin/config", "", b)
		if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["message"]), key) {
			t.Errorf("%s: %d %v, want 400 naming %s", body, code, out, key)
		}
	}
	if n.store.MaxSize() != 50e6 {
		t.Fatalf("a refused update changed max size to %d", n.store.MaxSize())
	}

	level := new(slog.LevelVar)
	n.SetLogLevelFunc(level.Set)
	mustAPI(t, n, "POST", "/api/v1/admin/config", map[string]any{"observability.log_level": "debug"})
	if level.Level() != slog.LevelDebug {
		t.Fatalf("log level %v after the update, want debug", level.Level())
	}
	if cfg := mustAPI(t, n, "GET", "/api/v1/admin/config", nil)["config"].(map[string]any); cfg["observability.log_level"] != "debug" {
		t.Fatalf("config shows log level %v", cfg["observability.log_level"])
	}
}

func TestQueryAPIDisabled(t *testing.T) {
	c := testConfig(t, config.RoleEdge, t.TempDir())
	off := false
	c.Observability.CacheQueryAPIEnabled = &off
	n := startNode(t, config.RoleEdge, c)
	for _, p := range []string{"/api/v1/artifacts", "/api/v1/stats", "/api/v1/stats/detail", "/ui/"} {
		if code, _ := api(t, n, "GET", p, "", nil); code != http.StatusNotFound {
			t.Errorf("%s with the query API off: %d, want 404", p, code)
		}
	}
}

// The dashboard page is served without auth (it holds no data) and its
// figures come from endpoints that need cache:read; /api/v1/stats/detail
// knows the traffic per build system, the size bound and the upstreams.
func TestDashboardEndpoints(t *testing.T) {
	keys := authtest.New(t)
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Auth.PublicKeyFile = keys.File()
	c.Upstream = []config.UpstreamConfig{upstream("grpc://127.0.0.1:1")}
	n := startNode(t, config.RoleEdge, c)
	read := keys.Token(t, authtest.Scopes("cache:read", "cache:write"))
	resp, err := http.Get("http://" + n.Addr("api") + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `<script src="/ui/static/app.js">`) {
		t.Fatalf("GET /ui/: %d\n%s", resp.StatusCode, page)
	}
	for _, asset := range []string{"/ui/static/app.js", "/ui/static/style.css"} {
		resp, err := http.Get("http://" + n.Addr("api") + asset)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", asset, resp.StatusCode)
		}
	}

	req, _ := http.NewRequest(http.MethodPut, "http://"+n.Addr("http")+"/cache/"+key1, strings.NewReader("dashboard"))
	req.Header.Set("Authorization", "Bearer "+read)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("PUT: %v %v", resp, err)
	}
	req, _ = http.NewRequest(http.MethodGet, "http://"+n.Addr("http")+"/cache/"+key1, nil)
	req.Header.Set("Authorization", "Bearer "+read)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET: %v %v", resp, err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	code, d := api(t, n, "GET", "/api/v1/stats/detail", read, nil)
	if code != 200 {
		t.Fatalf("detail: %d %v", code, d)
	}
	g := d["build_systems"].(map[string]any)["gradle"].(map[string]any)
	if g["requests"].(float64) != 2 || g["hits"].(float64) != 1 || g["upload_bytes"].(float64) != 9 || g["download_bytes"].(float64) != 9 {
		t.Errorf("gradle traffic %v", g)
	}
	if d["max_size_bytes"].(float64) != float64(c.Cache.MaxSize) || d["p2p"] != nil {
		t.Errorf("detail %v", d)
	}
	ups := d["upstreams"].([]any)
	if len(ups) != 1 || ups[0].(map[string]any)["name"] != "upstream-0" || ups[0].(map[string]any)["state"] != "idle" {
		t.Errorf("upstreams %v (the local hit never asked upstream-0)", ups)
	}
	code, ts := api(t, n, "GET", "/api/v1/stats/timeseries", read, nil)
	var hits float64
	for _, p := range ts["points"].([]any) {
		hits += p.(map[string]any)["hits"].(float64)
	}
	if code != 200 || hits != 1 {
		t.Errorf("timeseries: %d, %v hits over the points, want 1: %v", code, hits, ts)
	}
}
