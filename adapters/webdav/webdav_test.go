package webdav

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/adapters/httpfront"
	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/internal/adaptertest"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
)

// propfindBody is what OpenDAL sends with every PROPFIND.
const propfindBody = `<?xml version="1.0" encoding="utf-8" ?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>`

// serve mounts the adapter on an HTTP front, as the node does (the front
// collapses the double slashes OpenDAL sends after an endpoint ending in /).
func serve(t *testing.T, opts Options) (*httptest.Server, adapters.Cache) {
	t.Helper()
	cache := cachetest.New(t)
	front := httpfront.New()
	front.Mount("sccache", New(cache, opts))
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	return srv, cache
}

type client struct {
	t     *testing.T
	base  string
	authz string
}

func (c client) do(method, path string, body []byte, header ...string) (*http.Response, []byte) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if c.authz != "" {
		req.Header.Set("Authorization", c.authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (c client) status(want int, method, path string, body []byte, header ...string) []byte {
	c.t.Helper()
	resp, b := c.do(method, path, body, header...)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: %s %q, want %d", method, path, resp.Status, b, want)
	}
	return b
}

// multistatus is the part of a 207 body the tests (and OpenDAL) read.
type multistatus struct {
	Responses []struct {
		Href     string `xml:"href"`
		Propstat []struct {
			Status string `xml:"status"`
			Prop   struct {
				DisplayName   *string `xml:"displayname"`
				ContentLength *string `xml:"getcontentlength"`
				LastModified  *string `xml:"getlastmodified"`
				ETag          *string `xml:"getetag"`
				ResourceType  *struct {
					Collection *struct{} `xml:"collection"`
				} `xml:"resourcetype"`
			} `xml:"prop"`
		} `xml:"propstat"`
	} `xml:"response"`
}

type entry struct {
	href       string
	collection bool
	length     string
	etag       string
}

// propfind sends OpenDAL's PROPFIND and checks every response the way
// OpenDAL parses it: exactly one propstat, a three-part "HTTP/1.1 200 OK"
// status, a displayname, an RFC 1123 getlastmodified and a resourcetype.
func (c client) propfind(path, depth string) []entry {
	c.t.Helper()
	resp, b := c.do("PROPFIND", path, []byte(propfindBody), "Depth", depth, "Content-Type", "application/xml")
	if resp.StatusCode != http.StatusMultiStatus {
		c.t.Fatalf("PROPFIND %s Depth %s: %s %q, want 207", path, depth, resp.Status, b)
	}
	var ms multistatus
	if err := xml.Unmarshal(b, &ms); err != nil {
		c.t.Fatalf("PROPFIND %s: %v\n%s", path, err, b)
	}
	var out []entry
	for _, r := range ms.Responses {
		if len(r.Propstat) != 1 {
			c.t.Fatalf("%s: %d propstats, OpenDAL reads exactly one\n%s", r.Href, len(r.Propstat), b)
		}
		ps := r.Propstat[0]
		if parts := strings.SplitN(ps.Status, " ", 3); len(parts) != 3 || parts[1] != "200" {
			c.t.Fatalf("%s: status %q", r.Href, ps.Status)
		}
		p := ps.Prop
		if p.DisplayName == nil || p.LastModified == nil || p.ResourceType == nil {
			c.t.Fatalf("%s lacks displayname, getlastmodified or resourcetype\n%s", r.Href, b)
		}
		if _, err := time.Parse(time.RFC1123, *p.LastModified); err != nil {
			c.t.Fatalf("%s: getlastmodified %q: %v", r.Href, *p.LastModified, err)
		}
		e := entry{href: r.Href, collection: p.ResourceType.Collection != nil}
		if p.ContentLength != nil {
			e.length = *p.ContentLength
		}
		if p.ETag != nil {
			e.etag = *p.ETag
		}
		if e.collection != strings.HasSuffix(e.href, "/") {
			c.t.Fatalf("%s: collection=%v but href slash says otherwise", e.href, e.collection)
		}
		out = append(out, e)
	}
	return out
}

func hrefs(es []entry) []string {
	var h []string
	for _, e := range es {
		h = append(h, e.href)
	}
	return h
}

// OpenDAL's write of sccache/a/b/c/key into an empty store, request by
// request, with the double slash an endpoint ending in "/" produces: PROPFIND
// Depth 0 on each parent upward until one exists (all 404 here but the
// root), MKCOL the missing ones top-down (201), PUT (201); then the read: GET
// (200), and a GET of another key (404 = miss). A second write into the same
// directory finds its parent at once.
func TestOpenDALWriteSequence(t *testing.T) {
	srv, _ := serve(t, Options{})
	c := client{t: t, base: srv.URL + "/webdav/"}
	dirs := []string{"/sccache/a/b/c/", "/sccache/a/b/", "/sccache/a/", "/sccache/"}
	for _, d := range dirs {
		c.status(404, "PROPFIND", d, []byte(propfindBody), "Depth", "0")
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		c.status(201, "MKCOL", dirs[i], nil)
	}
	c.status(405, "MKCOL", "/sccache/a/", nil)
	body := adaptertest.RandomBytes(t, 5000)
	c.status(201, "PUT", "/sccache/a/b/c/abc123", body, "Content-Type", "application/octet-stream")
	if got := c.status(200, "GET", "/sccache/a/b/c/abc123", nil); !bytes.Equal(got, body) {
		t.Fatalf("GET served %d bytes, not the body", len(got))
	}
	c.status(404, "GET", "/sccache/a/b/c/def456", nil)

	es := c.propfind("/sccache/a/b/c/", "0")
	if len(es) != 1 || !es[0].collection || es[0].href != "/webdav/sccache/a/b/c/" {
		t.Fatalf("PROPFIND Depth 0 of the parent: %+v", es)
	}
	c.status(201, "PUT", "/sccache/a/b/c/def456", []byte("second"))
	es = c.propfind("/sccache/a/b/c/", "1")
	if got := hrefs(es); !slices.Equal(got, []string{"/webdav/sccache/a/b/c/", "/webdav/sccache/a/b/c/abc123", "/webdav/sccache/a/b/c/def456"}) {
		t.Fatalf("PROPFIND Depth 1: %v", got)
	}
	if es[1].length != "5000" || es[1].etag == "" || es[1].collection {
		t.Fatalf("file entry %+v", es[1])
	}
}

// sccache's start-up check through OpenDAL: a GET of .sccache_check may
// miss; the PUT of it must succeed, or sccache goes read-only.
func TestSccacheCheck(t *testing.T) {
	srv, _ := serve(t, Options{})
	c := client{t: t, base: srv.URL + "/webdav"}
	c.status(404, "GET", "/.sccache_check", nil)
	c.status(201, "PUT", "/.sccache_check", []byte("Hello, World!"))
	if got := c.status(200, "GET", "/.sccache_check", nil); string(got) != "Hello, World!" {
		t.Fatalf("GET .sccache_check: %q", got)
	}
}

// A PUT without MKCOL creates its collections implicitly, and they answer
// PROPFIND (Depth 0 and 1) and refuse MKCOL like explicit ones.
func TestImplicitCollections(t *testing.T) {
	srv, _ := serve(t, Options{})
	c := client{t: t, base: srv.URL}
	c.status(201, "PUT", "/webdav/x/y/z.txt", []byte("zzz"))
	for _, d := range []string{"/webdav/x/", "/webdav/x/y/", "/webdav/x/y", "/webdav/"} {
		if es := c.propfind(d, "0"); len(es) != 1 || !es[0].collection {
			t.Fatalf("PROPFIND %s: %+v", d, es)
		}
	}
	if got := hrefs(c.propfind("/webdav/", "1")); !slices.Equal(got, []string{"/webdav/", "/webdav/x/"}) {
		t.Fatalf("root listing %v", got)
	}
	if got := hrefs(c.propfind("/webdav/x", "1")); !slices.Equal(got, []string{"/webdav/x/", "/webdav/x/y/"}) {
		t.Fatalf("x listing %v", got)
	}
	es := c.propfind("/webdav/x/y/z.txt", "1")
	if len(es) != 1 || es[0].collection || es[0].length != "3" {
		t.Fatalf("PROPFIND of a file: %+v", es)
	}
	c.status(405, "MKCOL", "/webdav/x/y/", nil)
	c.status(405, "MKCOL", "/webdav/x/y/z.txt", nil)
	c.status(405, "GET", "/webdav/x/y/", nil)
}

func TestMethodsAndRefusals(t *testing.T) {
	srv, _ := serve(t, Options{})
	c := client{t: t, base: srv.URL}
	// MKCOL needs its parent (RFC 4918 9.3.1) and takes no body.
	c.status(409, "MKCOL", "/webdav/no/such/parent/", nil)
	c.status(415, "MKCOL", "/webdav/withbody/", []byte("<x/>"))
	c.status(405, "MKCOL", "/webdav/", nil)
	// Depth infinity (and a missing Depth, which means infinity) is refused.
	if b := c.status(403, "PROPFIND", "/webdav/", []byte(propfindBody), "Depth", "infinity"); !bytes.Contains(b, []byte("propfind-finite-depth")) {
		t.Fatalf("infinity refusal body %q", b)
	}
	c.status(403, "PROPFIND", "/webdav/", []byte(propfindBody))
	c.status(400, "PROPFIND", "/webdav/", []byte("<not xml"), "Depth", "0")
	c.status(404, "PROPFIND", "/webdav/missing", nil, "Depth", "0")
	// Paths that could escape or smuggle control characters.
	c.status(400, "PUT", "/webdav/a%00b", []byte("x"))
	c.status(400, "PUT", "/webdav/a/%2e%2e/b", []byte("x"))
	c.status(400, "PUT", "/webdav/"+strings.Repeat("a", maxPathLen+1), []byte("x"))
	// Collections are not files.
	c.status(405, "PUT", "/webdav/", []byte("x"))
	c.status(405, "PUT", "/webdav/dir/", []byte("x"))
	c.status(405, "GET", "/webdav/", nil)
	c.status(403, "DELETE", "/webdav/", nil)
	// Methods outside the subset.
	for _, m := range []string{"LOCK", "MOVE", "COPY", "PROPPATCH", "POST"} {
		resp, _ := c.do(m, "/webdav/a", nil)
		if resp.StatusCode != 405 || !strings.Contains(resp.Header.Get("Allow"), "PROPFIND") {
			t.Fatalf("%s: %s, Allow %q", m, resp.Status, resp.Header.Get("Allow"))
		}
	}
	resp, _ := c.do("OPTIONS", "/webdav/", nil)
	if resp.StatusCode != 200 || resp.Header.Get("DAV") == "" {
		t.Fatalf("OPTIONS: %s DAV %q", resp.Status, resp.Header.Get("DAV"))
	}
	// HEAD answers a file's length and validators without a body.
	c.status(201, "PUT", "/webdav/h/file", []byte("12345"))
	resp, b := c.do("HEAD", "/webdav/h/file", nil)
	if resp.StatusCode != 200 || resp.ContentLength != 5 || len(b) != 0 || resp.Header.Get("ETag") == "" || resp.Header.Get("Last-Modified") == "" {
		t.Fatalf("HEAD: %s length %d etag %q", resp.Status, resp.ContentLength, resp.Header.Get("ETag"))
	}
	c.status(404, "HEAD", "/webdav/h/nothing", nil)
	// Spaces and unicode survive, escaped in hrefs.
	c.status(201, "PUT", "/webdav/h/my%20file%C3%A9", []byte("e"))
	if got := hrefs(c.propfind("/webdav/h/", "1")); !slices.Contains(got, "/webdav/h/my%20file%C3%A9") {
		t.Fatalf("listing %v lacks the escaped name", got)
	}
}

// DELETE removes a file (and its listing), or a collection with everything
// below it; a missing path is 404.
func TestDelete(t *testing.T) {
	srv, cache := serve(t, Options{})
	c := client{t: t, base: srv.URL + "/webdav"}
	c.status(201, "PUT", "/d/keep", []byte("k"))
	c.status(201, "PUT", "/d/gone", []byte("g"))
	c.status(201, "PUT", "/d/sub/deep/file", []byte("f"))
	c.status(204, "DELETE", "/d/gone", nil)
	c.status(404, "GET", "/d/gone", nil)
	c.status(404, "DELETE", "/d/gone", nil)
	if got := hrefs(c.propfind("/d/", "1")); !slices.Equal(got, []string{"/webdav/d/", "/webdav/d/keep", "/webdav/d/sub/"}) {
		t.Fatalf("listing after deleting a file: %v", got)
	}
	c.status(204, "DELETE", "/d/sub/", nil)
	c.status(404, "GET", "/d/sub/deep/file", nil)
	c.status(404, "PROPFIND", "/d/sub/", nil, "Depth", "0")
	for _, key := range []string{"d/sub/deep/file", "d/sub/deep/", "d/sub/"} {
		if st, _ := cache.Stat(t.Context(), messages.Ref{Namespace: Namespace, Key: key}); st.Found {
			t.Fatalf("%s survived the recursive DELETE", key)
		}
	}
	if got := hrefs(c.propfind("/d/", "1")); !slices.Equal(got, []string{"/webdav/d/", "/webdav/d/keep"}) {
		t.Fatalf("listing after deleting a collection: %v", got)
	}
}

// A listed member the cache no longer holds (evicted, deleted elsewhere)
// is left out of Depth 1.
func TestListingSkipsMissingMembers(t *testing.T) {
	srv, cache := serve(t, Options{})
	c := client{t: t, base: srv.URL + "/webdav"}
	c.status(201, "PUT", "/e/one", []byte("1"))
	c.status(201, "PUT", "/e/two", []byte("2"))
	if err := cache.Delete(t.Context(), messages.Ref{Namespace: Namespace, Key: "e/one"}); err != nil {
		t.Fatal(err)
	}
	if got := hrefs(c.propfind("/e/", "1")); !slices.Equal(got, []string{"/webdav/e/", "/webdav/e/two"}) {
		t.Fatalf("listing %v", got)
	}
}

// Every upload outcome of the shared write path answers with writeAnswers,
// and no refusal stores anything. The files' names are listed beforehand,
// so a stored upload is exactly one Put (its collection's listing already
// holds it).
func TestUploadOutcomes(t *testing.T) {
	cache := cachetest.New(t)
	path := func(i int) string { return fmt.Sprintf("/webdav/outcomes/file-%d", i) }
	seed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux := http.NewServeMux()
		New(cache, Options{}).Routes(mux)
		mux.ServeHTTP(w, r)
	}))
	defer seed.Close()
	c := client{t: t, base: seed.URL}
	for i := range adapters.Outcomes() {
		c.status(201, "PUT", path(i), []byte("seed"))
	}
	adaptertest.Outcomes{
		Table: writeAnswers,
		Cache: cache,
		Serve: func(c adapters.Cache, max int64) http.Handler {
			mux := http.NewServeMux()
			New(c, Options{MaxArtifactSize: max}).Routes(mux)
			return mux
		},
		Path: path,
	}.Run(t)
}

// Behind the node's guard: Basic with the token as password
// (SCCACHE_WEBDAV_USERNAME/_PASSWORD) and Bearer (SCCACHE_WEBDAV_TOKEN) read
// and write; a read-only token reads (GET, PROPFIND) but cannot PUT, MKCOL
// or DELETE; no token is 401 with a Basic challenge; refusals store nothing.
func TestAuth(t *testing.T) {
	keys := authtest.New(t)
	authn, err := auth.New(keys.Config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { authn.Close() })
	scopes := map[adapters.Access]auth.Scope{adapters.Read: auth.Read, adapters.Write: auth.Write}
	guard := adapters.Guard(func(acc adapters.Access, h http.Handler) http.Handler {
		return authn.Require(scopes[acc], h, auth.BasicChallenge())
	})
	srv, cache := serve(t, Options{Guard: guard})
	rw := keys.Token(t, authtest.Scopes("cache:read", "cache:write"))
	ro := keys.Token(t, authtest.Scopes("cache:read"))
	basic := func(tok string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte("sccache:"+tok))
	}
	anon := client{t: t, base: srv.URL + "/webdav"}
	resp, _ := anon.do("PUT", "/a/f", []byte("x"))
	if resp.StatusCode != 401 || !strings.Contains(strings.Join(resp.Header.Values("WWW-Authenticate"), " "), "Basic") {
		t.Fatalf("anonymous PUT: %s, challenges %q", resp.Status, resp.Header.Values("WWW-Authenticate"))
	}
	anon.status(401, "PROPFIND", "/", nil, "Depth", "0")
	readOnly := client{t: t, base: anon.base, authz: "Bearer " + ro}
	readOnly.status(403, "PUT", "/a/f", []byte("x"))
	readOnly.status(403, "MKCOL", "/a/", nil)
	if st, _ := cache.Stat(t.Context(), messages.Ref{Namespace: Namespace, Key: "a/f"}); st.Found {
		t.Fatal("a refused PUT stored the file")
	}
	writer := client{t: t, base: anon.base, authz: basic(rw)}
	writer.status(201, "MKCOL", "/a/", nil)
	writer.status(201, "PUT", "/a/f", []byte("basic"))
	bearer := client{t: t, base: anon.base, authz: "Bearer " + rw}
	bearer.status(201, "PUT", "/a/g", []byte("bearer"))
	if got := readOnly.status(200, "GET", "/a/f", nil); string(got) != "basic" {
		t.Fatalf("read-only GET: %q", got)
	}
	roBasic := client{t: t, base: anon.base, authz: basic(ro)}
	if got := hrefs(roBasic.propfind("/a/", "1")); len(got) != 3 {
		t.Fatalf("read-only PROPFIND: %v", got)
	}
	readOnly.status(403, "DELETE", "/a/f", nil)
	anon.status(401, "GET", "/a/f", nil)
}

// Concurrent PUTs into one new directory (sccache writes in parallel) each
// get listed: listing updates of one collection are serialised.
func TestConcurrentPutsAreAllListed(t *testing.T) {
	srv, _ := serve(t, Options{})
	c := client{t: t, base: srv.URL + "/webdav"}
	const n = 24
	errs := make(chan error, n)
	for i := range n {
		go func() {
			req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/par/a/b/f%02d", c.base, i), strings.NewReader("x"))
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 201 {
					err = fmt.Errorf("PUT f%02d: %s", i, resp.Status)
				}
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := c.propfind("/par/a/b/", "1"); len(got) != n+1 {
		t.Fatalf("listing holds %d entries after %d concurrent PUTs, want %d: %v", len(got), n, n+1, hrefs(got))
	}
	if got := hrefs(c.propfind("/par/", "1")); !slices.Equal(got, []string{"/webdav/par/", "/webdav/par/a/"}) {
		t.Fatalf("ancestor listing %v", got)
	}
}
