package turbo

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/internal/adaptertest"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/metrics"
)

// tokenGuard stands in for the JWT middleware: "Bearer bad" is rejected
// (401), "Bearer read" may only read (403 on writes), no header is open.
func tokenGuard(access adapters.Access, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "":
			h.ServeHTTP(w, r)
		case "Bearer read":
			if access != adapters.Read {
				WriteAuthError(w, http.StatusForbidden, "this token may not write")
				return
			}
			h.ServeHTTP(w, r)
		default:
			WriteAuthError(w, http.StatusUnauthorized, "invalid token")
		}
	})
}

type env struct {
	url     string
	addr    string
	cache   adapters.Cache
	metrics *metrics.Set
}

func start(t testing.TB, cache adapters.Cache, max int64) *env {
	t.Helper()
	if cache == nil {
		cache = cachetest.New(t)
	}
	m := metrics.New(nil, nil)
	mux := http.NewServeMux()
	New(cache, Options{Guard: tokenGuard, Metrics: m, MaxArtifactSize: max}).Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{url: srv.URL, addr: srv.Listener.Addr().String(), cache: cache, metrics: m}
}

// do sends one request; hdr holds extra headers as name, value pairs.
func (e *env) do(t *testing.T, method, path string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// raw sends a hand-made request to the adapter (see adaptertest.Raw).
func (e *env) raw(t *testing.T, head string, body []byte) *http.Response {
	return adaptertest.Raw(t, e.addr, head, body)
}

func randomBytes(t testing.TB, n int) []byte { return adaptertest.RandomBytes(t, n) }

func stored(t *testing.T, c adapters.Cache, ns, hash string) bool {
	t.Helper()
	st, err := c.Stat(context.Background(), messages.Ref{Namespace: ns, Key: hash})
	if err != nil {
		t.Fatal(err)
	}
	return st.Found
}

func (e *env) prometheus() string {
	var b bytes.Buffer
	e.metrics.WritePrometheus(&b)
	return b.String()
}

func TestStatus(t *testing.T) {
	e := start(t, nil, 0)
	resp, body := e.do(t, "GET", "/v8/artifacts/status?slug=acme", nil)
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"status":"enabled"}` {
		t.Fatalf("status: %d %s", resp.StatusCode, body)
	}
}

func TestPutGetHead(t *testing.T) {
	e := start(t, nil, 0)
	body := randomBytes(t, 200<<10)
	const path = "/v8/artifacts/0123456789abcdef?teamId=team_acme"
	resp, got := e.do(t, "PUT", path, body, "Content-Type", "application/octet-stream",
		"x-artifact-duration", "1234", "x-artifact-tag", "c2lnbmF0dXJl+/==")
	if resp.StatusCode != 202 {
		t.Fatalf("PUT: %d %s, want 202", resp.StatusCode, got)
	}
	var put struct{ URLs []string }
	if err := json.Unmarshal(got, &put); err != nil || len(put.URLs) != 1 || !strings.HasSuffix(put.URLs[0], path) {
		t.Fatalf("PUT answer %s (%v), want urls naming the artifact", got, err)
	}

	resp, got = e.do(t, "GET", path, nil)
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("GET: %d with %d bytes, want 200 with the %d stored", resp.StatusCode, len(got), len(body))
	}
	for name, want := range map[string]string{
		"x-artifact-duration": "1234", "x-artifact-tag": "c2lnbmF0dXJl+/==",
		"Content-Type": "application/octet-stream", "Content-Length": fmt.Sprint(len(body)),
		"Access-Control-Allow-Origin": "", // no wildcard: the node's browser policy decides
	} {
		if v := resp.Header.Get(name); v != want {
			t.Errorf("GET %s = %q, want %q", name, v, want)
		}
	}

	resp, got = e.do(t, "HEAD", path, nil)
	if resp.StatusCode != 200 || len(got) != 0 || resp.ContentLength != int64(len(body)) ||
		resp.Header.Get("x-artifact-duration") != "1234" || resp.Header.Get("x-artifact-tag") != "c2lnbmF0dXJl+/==" {
		t.Fatalf("HEAD: %d, %d body bytes, Content-Length %d, headers %v", resp.StatusCode, len(got), resp.ContentLength, resp.Header)
	}

	prom := e.prometheus()
	for _, want := range []string{
		`fabrik_cache_hits_by_build_system_total{build_system="turborepo"} 1`,
		fmt.Sprintf(`fabrik_bandwidth_bytes_total{direction="upload"} %d`, len(body)),
		fmt.Sprintf(`fabrik_bandwidth_bytes_total{direction="download"} %d`, len(body)),
		`fabrik_request_duration_seconds_count{build_system="turborepo",op="head"} 1`,
	} {
		if !strings.Contains(prom, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestMiss(t *testing.T) {
	e := start(t, nil, 0)
	resp, body := e.do(t, "GET", "/v8/artifacts/abcdef", nil)
	var apiErr apiError
	if resp.StatusCode != 404 || json.Unmarshal(body, &apiErr) != nil || apiErr.Error.Code != "not_found" {
		t.Fatalf("GET miss: %d %s", resp.StatusCode, body)
	}
	if resp, body := e.do(t, "HEAD", "/v8/artifacts/abcdef", nil); resp.StatusCode != 404 || len(body) != 0 {
		t.Fatalf("HEAD miss: %d %q", resp.StatusCode, body)
	}
	if !strings.Contains(e.prometheus(), `fabrik_cache_misses_by_build_system_total{build_system="turborepo"} 1`) {
		t.Error("GET miss not counted")
	}
}

// A team's artifacts are invisible to other teams and to clients that name
// no team; teamId and slug name the same team.
func TestTeamNamespaces(t *testing.T) {
	e := start(t, nil, 0)
	if resp, _ := e.do(t, "PUT", "/v8/artifacts/feed?teamId=team_a", []byte("team a")); resp.StatusCode != 202 {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "PUT", "/v8/artifacts/feed", []byte("no team")); resp.StatusCode != 202 {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	for path, want := range map[string]string{
		"/v8/artifacts/feed?teamId=team_a": "team a",
		"/v8/artifacts/feed?slug=team_a":   "team a",
		"/v8/artifacts/feed":               "no team",
		"/v8/artifacts/feed?teamId=team_b": "",
		"/v8/artifacts/feed?slug=other":    "",
	} {
		resp, body := e.do(t, "GET", path, nil)
		if want == "" && resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
		if want != "" && (resp.StatusCode != 200 || string(body) != want) {
			t.Errorf("GET %s: %d %q, want %q", path, resp.StatusCode, body, want)
		}
	}
	if !stored(t, e.cache, "turbo/team_a", "feed") || !stored(t, e.cache, "turbo", "feed") {
		t.Error("artifacts not under turbo/<team> and turbo")
	}
}

func TestReplaceKeepsLatest(t *testing.T) {
	e := start(t, nil, 0)
	e.do(t, "PUT", "/v8/artifacts/ab12", []byte("first"), "x-artifact-tag", "t1")
	if resp, _ := e.do(t, "PUT", "/v8/artifacts/ab12", []byte("second"), "x-artifact-tag", "t2"); resp.StatusCode != 202 {
		t.Fatalf("second PUT: %d", resp.StatusCode)
	}
	resp, body := e.do(t, "GET", "/v8/artifacts/ab12", nil)
	if string(body) != "second" || resp.Header.Get("x-artifact-tag") != "t2" {
		t.Fatalf("after replace: %q tag %q; body and tag must change together", body, resp.Header.Get("x-artifact-tag"))
	}
}

// turbo signs hash || teamId || body with a key the server never sees;
// the artifact must verify after a round trip through the cache.
func TestSignedArtifactRoundTrips(t *testing.T) {
	e := start(t, nil, 0)
	key, team, hash := []byte("signature-secret-key-long-enough"), "team_signed", "5eed5eed5eed5eed"
	body := randomBytes(t, 64<<10)
	sign := func(b []byte) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(hash))
		m.Write([]byte(team))
		m.Write(b)
		return base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	path := "/v8/artifacts/" + hash + "?teamId=" + team
	e.do(t, "PUT", path, body, "x-artifact-duration", "10", "x-artifact-tag", sign(body))
	resp, got := e.do(t, "GET", path, nil)
	if tag := resp.Header.Get("x-artifact-tag"); tag == "" || !hmac.Equal([]byte(tag), []byte(sign(got))) {
		t.Fatalf("signature does not verify after the round trip (tag %q)", tag)
	}
}

func TestQuery(t *testing.T) {
	e := start(t, nil, 0)
	e.do(t, "PUT", "/v8/artifacts/aaaa?slug=acme", []byte("12345"), "x-artifact-duration", "77", "x-artifact-tag", "tg")
	e.do(t, "PUT", "/v8/artifacts/bbbb", []byte("other team"))
	resp, body := e.do(t, "POST", "/v8/artifacts?slug=acme", []byte(`{"hashes":["aaaa","bbbb","bad!"]}`), "Content-Type", "application/json")
	if resp.StatusCode != 200 {
		t.Fatalf("query: %d %s", resp.StatusCode, body)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if s := string(got["aaaa"]); s != `{"size":5,"taskDurationMs":77,"tag":"tg"}` {
		t.Errorf("aaaa: %s", s)
	}
	if s := string(got["bbbb"]); s != "null" {
		t.Errorf("bbbb (another team's): %s, want null", s)
	}
	if !strings.Contains(string(got["bad!"]), `"error"`) {
		t.Errorf("malformed hash: %s, want an error", got["bad!"])
	}
	if resp, _ := e.do(t, "POST", "/v8/artifacts", []byte(`{"hashes":`)); resp.StatusCode != 400 {
		t.Errorf("invalid JSON: %d, want 400", resp.StatusCode)
	}
}

func TestEvents(t *testing.T) {
	e := start(t, nil, 0)
	batch := `[{"sessionId":"s1","source":"LOCAL","event":"HIT","hash":"this-is-my-hash","duration":58},
		{"source":"REMOTE","event":"MISS","hash":"abc","duration":21},
		{"sessionId":"s1","source":"REMOTE","event":"MISS","hash":"def","duration":0}]`
	if resp, body := e.do(t, "POST", "/v8/artifacts/events?slug=x", []byte(batch), "Content-Type", "application/json"); resp.StatusCode != 200 {
		t.Fatalf("events: %d %s", resp.StatusCode, body)
	}
	for _, bad := range []string{
		`[{"source":"CLOUD","event":"HIT","hash":"a","duration":1}]`,
		`[{"source":"LOCAL","event":"HIT","hash":"a","duration":1},{"source":"LOCAL","event":"SKIP","hash":"a"}]`,
		`[{"source":"LOCAL","event":"HIT","hash":"","duration":1}]`,
		`{"source":"LOCAL"}`,
	} {
		if resp, _ := e.do(t, "POST", "/v8/artifacts/events", []byte(bad)); resp.StatusCode != 400 {
			t.Errorf("events %s: %d, want 400", bad, resp.StatusCode)
		}
	}
	prom := e.prometheus()
	for _, want := range []string{
		`fabrik_turbo_events_total{source="local",event="hit"} 1`,
		`fabrik_turbo_events_total{source="remote",event="miss"} 2`,
	} {
		if !strings.Contains(prom, want) {
			t.Errorf("metrics lack %s in\n%s", want, prom)
		}
	}
}

func TestPreflight(t *testing.T) {
	e := start(t, nil, 0)
	for _, p := range []string{"/v8/artifacts/0123abcd?slug=x", "/v8/artifacts", "/v8/artifacts/events", "/v8/artifacts/status"} {
		resp, _ := e.do(t, "OPTIONS", p, nil, "Access-Control-Request-Method", "PUT",
			"Access-Control-Request-Headers", "Authorization, Content-Type, User-Agent, x-artifact-duration, x-artifact-tag",
			"Authorization", "Bearer bad")
		allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "PUT") {
			t.Errorf("OPTIONS %s: %d %v", p, resp.StatusCode, resp.Header)
		}
		for _, h := range []string{"authorization", "content-type", "x-artifact-duration", "x-artifact-tag", "x-artifact-client-ci", "x-artifact-client-interactive", "user-agent"} {
			if !strings.Contains(allowed, h) {
				t.Errorf("OPTIONS %s does not allow %s", p, h)
			}
		}
	}
}

func TestMalformedRequests(t *testing.T) {
	e := start(t, nil, 0)
	for _, c := range []struct {
		method, path string
		hdr          []string
	}{
		{"GET", "/v8/artifacts/bad.hash", nil},
		{"PUT", "/v8/artifacts/bad.hash", nil},
		{"PUT", "/v8/artifacts/" + strings.Repeat("a", maxKeyLen+1), nil},
		{"GET", "/v8/artifacts/abcd?teamId=../etc", nil},
		{"PUT", "/v8/artifacts/abcd?slug=a/b", nil},
		{"PUT", "/v8/artifacts/abcd", []string{"x-artifact-duration", "soon"}},
		{"HEAD", "/v8/artifacts/bad.hash", nil},
	} {
		if resp, _ := e.do(t, c.method, c.path, []byte("x"), c.hdr...); resp.StatusCode != 400 {
			t.Errorf("%s %s %v: %d, want 400", c.method, c.path, c.hdr, resp.StatusCode)
		}
	}
	if stored(t, e.cache, "turbo", "abcd") {
		t.Error("a refused upload was stored")
	}
}

func TestTruncatedUploadIsNotStored(t *testing.T) {
	e := start(t, nil, 0)
	head := "PUT /v8/artifacts/cafe HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
	if resp := e.raw(t, head, randomBytes(t, 30000)); resp.StatusCode < 400 {
		t.Fatalf("truncated PUT: %d, want a refusal", resp.StatusCode)
	}
	if stored(t, e.cache, "turbo", "cafe") {
		t.Fatal("a truncated body was stored")
	}
}

// The client below sends headers only: a handler that read the body before
// checking the size would wait for it until the deadline.
func TestOversizeRefusedBeforeBody(t *testing.T) {
	e := start(t, nil, 1<<20)
	head := "PUT /v8/artifacts/b16 HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n"
	if resp := e.raw(t, head, nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize PUT: %d, want 413", resp.StatusCode)
	}
	// A chunked body declares no size; it is cut off at the limit instead.
	req, _ := http.NewRequest("PUT", e.url+"/v8/artifacts/b17", io.MultiReader(bytes.NewReader(randomBytes(t, 1<<20+1))))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || stored(t, e.cache, "turbo", "b17") {
		t.Fatalf("oversize chunked PUT: %d (stored: %v), want 413 and nothing stored", resp.StatusCode, stored(t, e.cache, "turbo", "b17"))
	}
	if resp, _ := e.do(t, "PUT", "/v8/artifacts/b18", randomBytes(t, 1<<20)); resp.StatusCode != 202 {
		t.Fatalf("PUT at exactly the limit: %d", resp.StatusCode)
	}
}

func TestAuth(t *testing.T) {
	e := start(t, nil, 0)
	resp, body := e.do(t, "PUT", "/v8/artifacts/a1", []byte("x"), "Authorization", "Bearer read")
	var apiErr apiError
	if resp.StatusCode != 403 || json.Unmarshal(body, &apiErr) != nil || apiErr.Error.Code != "forbidden" || apiErr.Error.Message == "" {
		t.Fatalf("PUT with a read-only token: %d %s; want 403 with turbo's JSON error", resp.StatusCode, body)
	}
	if stored(t, e.cache, "turbo", "a1") {
		t.Fatal("a read-only token stored an artifact")
	}
	for _, p := range []string{"/v8/artifacts/a1", "/v8/artifacts/status"} {
		if resp, _ := e.do(t, "GET", p, nil, "Authorization", "Bearer read"); resp.StatusCode == 401 || resp.StatusCode == 403 {
			t.Errorf("GET %s with a read-only token: %d", p, resp.StatusCode)
		}
		resp, body := e.do(t, "GET", p, nil, "Authorization", "Bearer bad")
		if resp.StatusCode != 401 || json.Unmarshal(body, &apiErr) != nil {
			t.Errorf("GET %s with a bad token: %d %s, want 401 JSON", p, resp.StatusCode, body)
		}
	}
}

// A full cache is a 4xx: turbo pauses its remote cache after a few 5xx in a
// row, and a full store must cost one entry, not the cache for the run.
func TestFullCache(t *testing.T) {
	e := start(t, smallCache(t), 0)
	resp, body := e.do(t, "PUT", "/v8/artifacts/f011", randomBytes(t, 4096))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(body, []byte("full")) {
		t.Fatalf("PUT into a full cache: %d %s, want 413 saying the cache is full", resp.StatusCode, body)
	}
}

// Every team name turbo can send is accepted (TURBO_TEAM is free text), and
// when a request carries both teamId and slug, teamId names the team.
func TestTeamNames(t *testing.T) {
	e := start(t, nil, 0)
	for _, team := range []string{"acme.corp", "my%20team", "%C3%A9quipe", "team_x"} {
		path := "/v8/artifacts/0a0b?slug=" + team
		if resp, body := e.do(t, "PUT", path, []byte(team)); resp.StatusCode != 202 {
			t.Fatalf("PUT %s: %d %s", path, resp.StatusCode, body)
		}
		if resp, body := e.do(t, "GET", path, nil); resp.StatusCode != 200 || string(body) != team {
			t.Fatalf("GET %s: %d %q", path, resp.StatusCode, body)
		}
	}
	for _, bad := range []string{"a%2Fb", "a%00b", "%FF"} {
		if resp, _ := e.do(t, "GET", "/v8/artifacts/0a0b?slug="+bad, nil); resp.StatusCode != 400 {
			t.Errorf("team %s: %d, want 400", bad, resp.StatusCode)
		}
	}
	if resp, _ := e.do(t, "PUT", "/v8/artifacts/0c0d?teamId=team_a&slug=b", []byte("a")); resp.StatusCode != 202 {
		t.Fatal(resp.StatusCode)
	}
	if !stored(t, e.cache, "turbo/team_a", "0c0d") || stored(t, e.cache, "turbo/b", "0c0d") {
		t.Fatal("teamId must win over slug")
	}
}

// smallCache is a real cache whose whole capacity is smaller than a 4 KiB
// artifact, so storing one hits the hard size limit (tier.ErrFull).
func smallCache(t *testing.T) adapters.Cache {
	c, _ := cachetest.NewWithStore(t, cachetest.Options{MaxSize: 1024})
	return c
}
