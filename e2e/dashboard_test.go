package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/e2e/harness"
)

// dashboardArtifacts is where the dashboard test keeps its screenshots:
// FABRIK_E2E_ARTIFACTS, else .cache/e2e-artifacts in the repository (ignored
// by git).
func dashboardArtifacts(t *testing.T) string {
	dir := os.Getenv("FABRIK_E2E_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(harness.RepoRoot(t), ".cache", "e2e-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromiumRun runs headless Chromium on url. --virtual-time-budget lets the
// page's script run to completion: virtual time does not advance while
// fetches are pending, so the DOM is dumped after the page's data arrived.
func chromiumRun(t *testing.T, bin, url string, extra ...string) string {
	t.Helper()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=10000", "--window-size=1280,2400",
	}, extra...)
	args = append(args, url)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, errOut.String())
	}
	return out.String()
}

func dumpDOM(t *testing.T, bin, url string) string {
	t.Helper()
	dom := chromiumRun(t, bin, url, "--dump-dom")
	if !strings.Contains(dom, "</html>") {
		t.Fatalf("chromium dumped no page for %s:\n%s", url, dom)
	}
	return dom
}

// figure reads the data-value of the element with id in a dumped DOM.
func figure(t *testing.T, dom, id string) string {
	t.Helper()
	re := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*data-value="([^"]*)"|data-value="([^"]*)"[^>]*id="` + regexp.QuoteMeta(id) + `"`)
	m := re.FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no #%s with a data-value in the page", id)
	}
	return m[1] + m[2]
}

func bodyState(dom string) string {
	m := regexp.MustCompile(`<body[^>]*data-state="([^"]*)"`).FindStringSubmatch(dom)
	if m == nil {
		return ""
	}
	return m[1]
}

// rowsOf returns the data-* attributes of each row of the table with id.
func rowsOf(dom, id string) []map[string]string {
	start := strings.Index(dom, `id="`+id+`"`)
	if start < 0 {
		return nil
	}
	end := strings.Index(dom[start:], "</table>")
	table := dom[start : start+end]
	var rows []map[string]string
	for _, m := range regexp.MustCompile(`<tr ([^>]*)>`).FindAllStringSubmatch(table, -1) {
		row := map[string]string{}
		for _, a := range regexp.MustCompile(`data-([a-z-]+)="([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
			row[a[1]] = a[2]
		}
		rows = append(rows, row)
	}
	return rows
}

func send(t *testing.T, method, url, token string, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// dashboardTraffic stores Gradle and Nx artifacts of varied sizes, reads
// some back (hits) and asks for absent ones (misses).
func dashboardTraffic(t *testing.T, n *harness.Node, token string) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 30 {
		body := make([]byte, 1000+r.IntN(300_000))
		for j := range body {
			body[j] = byte(r.UintN(256))
		}
		key := fmt.Sprintf("%032x", i+1)
		if c := send(t, http.MethodPut, n.HTTPURL()+"/cache/"+key, token, body); c/100 != 2 {
			t.Fatalf("gradle PUT: %d", c)
		}
		if i%3 == 0 {
			if c := send(t, http.MethodGet, n.HTTPURL()+"/cache/"+key, token, nil); c != http.StatusOK {
				t.Fatalf("gradle GET: %d", c)
			}
		}
	}
	for i := range 5 {
		body := bytes.Repeat([]byte{byte(i)}, 2000*(i+1))
		if c := send(t, http.MethodPut, fmt.Sprintf("%s/v1/cache/%d", n.HTTPURL(), 1000+i), token, body); c/100 != 2 {
			t.Fatalf("nx PUT: %d", c)
		}
	}
	for i := range 4 {
		send(t, http.MethodGet, n.HTTPURL()+"/cache/"+fmt.Sprintf("%032x", 900+i), token, nil)
	}
}

// TestDashboardInChromium loads /ui/ in headless Chromium against a node
// with traffic, with auth off and on, and checks that the figures the page
// shows are those of /api/v1/stats, that the explorer's search filters the
// table, and that with auth on the page asks for a token and shows nothing
// to a token that may not read. Screenshots land in dashboardArtifacts.
func TestDashboardInChromium(t *testing.T) {
	chromium := harness.RequireTool(t, "chromium")
	shots := dashboardArtifacts(t)
	for _, authOn := range []bool{false, true} {
		name := map[bool]string{false: "auth-off", true: "auth-on"}[authOn]
		t.Run(name, func(t *testing.T) {
			var opts harness.NodeOptions
			token, fragment := "", ""
			var keys *authtest.Keys
			if authOn {
				keys = authtest.New(t)
				token = keys.Token(t, authtest.Scopes("cache:read", "cache:write"))
				fragment = "#token=" + token
				opts.ExtraTOML = fmt.Sprintf("[auth]\npublic_key_file = %q\n", keys.File())
			}
			n := harness.StartNodeWith(t, opts)
			dashboardTraffic(t, n, token)
			ui := n.APIURL() + "/ui/"

			if authOn {
				dom := dumpDOM(t, chromium, ui)
				if s := bodyState(dom); s != "needs-token" || !regexp.MustCompile(`<form id="token-form" class="card">`).MatchString(dom) {
					t.Fatalf("without a token the page is in state %q, want needs-token with the token form shown", s)
				}
				if strings.Contains(dom, `id="total-objects" data-value="1`) {
					t.Fatal("figures shown without a token")
				}
				writeOnly := keys.Token(t, authtest.Scopes("cache:write"))
				if s := bodyState(dumpDOM(t, chromium, ui+"#token="+writeOnly)); s != "forbidden" {
					t.Fatalf("with a write-only token the page is in state %q, want forbidden", s)
				}
			}

			var st struct {
				Cache struct {
					TotalObjects   int64 `json:"total_objects"`
					TotalSizeBytes int64 `json:"total_size_bytes"`
				} `json:"cache"`
				Performance struct {
					CacheHits    uint64  `json:"cache_hits"`
					CacheMisses  uint64  `json:"cache_misses"`
					HitRatio     float64 `json:"hit_ratio"`
					LatencyP50Ms float64 `json:"latency_p50_ms"`
					LatencyP95Ms float64 `json:"latency_p95_ms"`
					LatencyP99Ms float64 `json:"latency_p99_ms"`
				} `json:"performance"`
				Bandwidth struct {
					Up   uint64 `json:"upload_bytes_total"`
					Down uint64 `json:"download_bytes_total"`
				} `json:"bandwidth"`
				Evictions struct {
					Total uint64 `json:"total"`
				} `json:"evictions"`
			}
			if err := json.Unmarshal(apiGet(t, n, token, "/api/v1/stats", http.StatusOK), &st); err != nil {
				t.Fatal(err)
			}
			dom := dumpDOM(t, chromium, ui+fragment)
			if s := bodyState(dom); s != "ready" {
				t.Fatalf("page state %q, want ready; DOM:\n%s", s, dom)
			}
			num := func(id string) float64 {
				v, err := strconv.ParseFloat(figure(t, dom, id), 64)
				if err != nil {
					t.Fatalf("#%s: %v", id, err)
				}
				return v
			}
			for id, want := range map[string]float64{
				"total-objects": float64(st.Cache.TotalObjects), "total-size": float64(st.Cache.TotalSizeBytes),
				"hits": float64(st.Performance.CacheHits), "misses": float64(st.Performance.CacheMisses),
				"hit-ratio": st.Performance.HitRatio, "evictions": float64(st.Evictions.Total),
				"p50": st.Performance.LatencyP50Ms, "p95": st.Performance.LatencyP95Ms, "p99": st.Performance.LatencyP99Ms,
				"upload-bytes": float64(st.Bandwidth.Up), "download-bytes": float64(st.Bandwidth.Down),
			} {
				if got := num(id); got != want {
					t.Errorf("page shows %s = %v, /api/v1/stats says %v", id, got, want)
				}
			}
			if st.Cache.TotalObjects != 35 || st.Performance.CacheHits != 10 || st.Performance.CacheMisses != 4 {
				t.Fatalf("traffic did not land as planned: %+v", st)
			}
			if got := rowsOf(dom, "build-systems"); len(got) != 2 {
				t.Errorf("per build system table has %d rows, want gradle and nx: %v", len(got), got)
			}
			if !regexp.MustCompile(`<svg[^>]*data-points="[1-9]`).MatchString(dom) {
				t.Error("hit ratio chart has no point")
			}
			if strings.Contains(dom, `<div id="p2p" class="card wide">`) {
				t.Error("P2P section shown on a node without P2P")
			}
			if rows := rowsOf(dom, "artifacts"); len(rows) != 25 {
				t.Errorf("unfiltered explorer shows %d rows, want a page of 25", len(rows))
			}
			// A search in the address is a link to it: the page opens with it.
			nx := dumpDOM(t, chromium, ui+"?build_system=nx"+fragment)
			if rows := rowsOf(nx, "artifacts"); len(rows) != 5 || figure(t, nx, "result-total") != "5" {
				t.Fatalf("/ui/?build_system=nx shows %d rows, want 5", len(rows))
			}

			// The explorer, used as a person would: type into the search
			// fields, press Search, page on, open an artifact. Chromium is
			// driven over the DevTools protocol (e2e/cdp_test.go).
			b := startBrowser(t, chromium)
			b.navigate(ui + fragment)
			b.waitFor("the page's data", `document.body.dataset.state === 'ready'`)
			rowsWhere := func(cond string) bool {
				var ok bool
				b.eval(`(() => { const rows = [...document.querySelectorAll('#artifacts tbody tr')]; return rows.length > 0 && rows.every(r => `+cond+`) })()`, &ok)
				return ok
			}
			count := func() (rows, total int) {
				var r struct{ Rows, Total int }
				b.eval(`({rows: document.querySelectorAll('#artifacts tbody tr').length, total: +document.querySelector('#result-total').dataset.value})`, &r)
				return r.Rows, r.Total
			}
			if rows, total := count(); rows != 25 || total != 35 {
				t.Fatalf("first page: %d rows of %d, want 25 of 35", rows, total)
			}
			b.click("#next")
			b.waitFor("page 2", `document.querySelector('#page-number').textContent === '2' && document.querySelectorAll('#artifacts tbody tr').length === 10`)
			b.click("#prev")
			b.waitFor("page 1", `document.querySelector('#page-number').textContent === '1' && document.querySelectorAll('#artifacts tbody tr').length === 25`)

			b.typeInto(`#search [name=build_system]`, "nx")
			b.click(`#search button[type=submit]`)
			b.waitFor("the nx search", `document.querySelector('#result-total').dataset.value === '5'`)
			if rows, _ := count(); rows != 5 || !rowsWhere(`r.dataset.buildSystem === 'nx'`) {
				t.Fatalf("build system nx: %d rows, or rows of another build system", rows)
			}
			var loc string
			b.eval(`location.search`, &loc)
			if !strings.Contains(loc, "build_system=nx") {
				t.Errorf("the search is not in the address (%q), so it cannot be shared", loc)
			}

			b.typeInto(`#search [name=build_system]`, "gradle")
			b.typeInto(`#search [name=min_size]`, "100KB")
			b.click(`#search button[type=submit]`)
			b.waitFor("the size search", `location.search.includes('min_size=100KB') && [...document.querySelectorAll('#artifacts tbody tr')].every(r => +r.dataset.size >= 100000)`)
			if rows, total := count(); rows == 0 || total >= 30 || !rowsWhere(`+r.dataset.size >= 100000 && r.dataset.buildSystem === 'gradle'`) {
				t.Fatalf("gradle >= 100KB: %d rows of %d", rows, total)
			}

			var first string
			b.eval(`document.querySelector('#artifacts tbody tr').dataset.hash`, &first)
			prefix := first[:3]
			b.eval(`document.querySelector('#search [name=min_size]').value = ''`, nil)
			b.eval(`document.querySelector('#search [name=build_system]').value = ''`, nil)
			b.typeInto(`#search [name=hash_prefix]`, prefix)
			b.click(`#search button[type=submit]`)
			b.waitFor("the hash prefix search", `location.search.includes('hash_prefix=`+prefix+`') && !location.search.includes('min_size')`)
			b.waitFor("rows with the prefix", `[...document.querySelectorAll('#artifacts tbody tr')].every(r => r.dataset.hash.startsWith('`+prefix+`'))`)
			if rows, _ := count(); rows == 0 {
				t.Fatalf("hash prefix %s: no row", prefix)
			}

			b.click(`#artifacts tbody tr a`)
			b.waitFor("the artifact's detail", `!document.querySelector('#detail').hidden && document.querySelector('#detail').dataset.hash.startsWith('`+prefix+`')`)

			shot := filepath.Join(shots, "dashboard-"+name+".png")
			b.navigate(ui + fragment)
			b.waitFor("the page's data", `document.body.dataset.state === 'ready'`)
			b.screenshot(shot)
			if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
				t.Fatalf("screenshot %s: %v", shot, err)
			}
			t.Logf("screenshot: %s", shot)
		})
	}
}
