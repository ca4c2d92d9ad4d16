package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/e2e/harness"
)

// opendalPropfind is the body OpenDAL's webdav service sends with PROPFIND.
const opendalPropfind = `<?xml version="1.0" encoding="utf-8" ?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>`

// davDo sends one WebDAV request and returns the status and body.
func davDo(t *testing.T, method, url string, body []byte, header ...string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func davMust(t *testing.T, want int, method, url string, body []byte, header ...string) []byte {
	t.Helper()
	status, b := davDo(t, method, url, body, header...)
	if status != want {
		t.Fatalf("%s %s: %d %q, want %d", method, url, status, b, want)
	}
	return b
}

// sccache's own sequence through OpenDAL, replayed against real nodes with
// SCCACHE_WEBDAV_ENDPOINT=<edge>/webdav/ and SCCACHE_WEBDAV_KEY_PREFIX=
// sccache (OpenDAL joins endpoint and path with another "/"): start-up GET
// of .sccache_check and its write (PROPFIND, MKCOL, PUT); a read miss; the write of a/b/c/<key> (PROPFIND
// Depth 0 on each parent upward until one exists, MKCOL the missing ones,
// PUT); the read hit. Then a fresh edge B sharing edge A's regional serves
// the same entry and its directory.
func TestWebDAVSccacheSequence(t *testing.T) {
	t.Parallel()
	regional := harness.StartNode(t, []string{"--role", "regional"}, nil)
	upstream := harness.NodeOptions{
		ExtraTOML: fmt.Sprintf("[[upstream]]\nurl = %q\n", "grpc://"+regional.FabrikAddr),
	}
	edgeA := harness.StartNodeWith(t, upstream)
	endpoint := edgeA.HTTPURL() + "/webdav/"
	url := func(p string) string { return endpoint + "/sccache" + p }

	propfind0 := func(want int, p string) {
		t.Helper()
		davMust(t, want, "PROPFIND", url(p), []byte(opendalPropfind), "Depth", "0", "Content-Type", "application/xml")
	}
	// Start-up: the check object may be missing; writing it goes through
	// OpenDAL's write path (the prefix collection is missing, so MKCOL it).
	davMust(t, 404, "GET", url("/.sccache_check"), nil)
	propfind0(404, "/")
	davMust(t, 201, "MKCOL", url("/"), nil)
	davMust(t, 201, "PUT", url("/.sccache_check"), []byte("Hello, World!"))

	const key = "/f/0/0/f00dfeed0123456789"
	davMust(t, 404, "GET", url(key), nil)
	parents := []string{"/f/0/0/", "/f/0/", "/f/"}
	for _, p := range parents {
		propfind0(404, p)
	}
	propfind0(207, "/")
	for i := len(parents) - 1; i >= 0; i-- {
		davMust(t, 201, "MKCOL", url(parents[i]), nil)
	}
	body := make([]byte, 200<<10)
	rand.Read(body)
	davMust(t, 201, "PUT", url(key), body, "Content-Type", "application/octet-stream")
	if got := davMust(t, 200, "GET", url(key), nil); !bytes.Equal(got, body) {
		t.Fatalf("GET served %d bytes, not the %d written", len(got), len(body))
	}
	// A second object in the same directory: its parent is found at once.
	davMust(t, 207, "PROPFIND", url("/f/0/0/"), []byte(opendalPropfind), "Depth", "0")
	davMust(t, 201, "PUT", url("/f/0/0/f00dfeed9876543210"), []byte("second"))
	if a := scrape(t, edgeA, ""); a.hitsOf("sccache") != 1 || a.missesOf("sccache") != 2 {
		t.Fatalf(`edge A: hits/misses{build_system="sccache"} = %v/%v, want 1/2`, a.hitsOf("sccache"), a.missesOf("sccache"))
	}

	// Write-through is asynchronous: wait until edge A's queue has
	// delivered every file and collection it acknowledged. (Counting the
	// regional's objects was not enough: blobs are deduplicated, so the
	// counts could match while a key was still on its way, and edge B's
	// listing then lacked it under load.)
	if u, ok := drained(t, edgeA, 30*time.Second); !ok {
		t.Fatalf("edge A's write-through after 30s: %+v, want every upload delivered", u)
	}
	edgeB := harness.StartNodeWith(t, upstream)
	urlB := func(p string) string { return edgeB.HTTPURL() + "/webdav//sccache" + p }
	davMust(t, 207, "PROPFIND", urlB("/f/0/0/"), []byte(opendalPropfind), "Depth", "0")
	if got := davMust(t, 200, "GET", urlB(key), nil); !bytes.Equal(got, body) {
		t.Fatalf("edge B served %d bytes, not the %d written on edge A", len(got), len(body))
	}
	listing := string(davMust(t, 207, "PROPFIND", urlB("/f/0/0/"), []byte(opendalPropfind), "Depth", "1"))
	for _, want := range []string{"/webdav/sccache/f/0/0/f00dfeed0123456789<", "/webdav/sccache/f/0/0/f00dfeed9876543210<", "<D:getcontentlength>204800<"} {
		if !strings.Contains(listing, want) {
			t.Fatalf("edge B's Depth 1 listing lacks %q:\n%s", want, listing)
		}
	}
}

// rcloneTree writes a small tree: a file at the top, a larger one below, a
// name with a space two levels down.
func rcloneTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	big := make([]byte, 300<<10)
	rand.Read(big)
	for name, body := range map[string][]byte{
		"a.txt":                 []byte("hello\n"),
		"sub/big.bin":           big,
		"sub/deep/my file.txt":  []byte("deep\n"),
		"sub/deep/other.c":      []byte("int x;\n"),
		"second/level/empty.md": nil,
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// rclone runs rclone with an empty config against the edge's WebDAV.
func rclone(t *testing.T, davURL string, extra []string, args ...string) (string, error) {
	t.Helper()
	harness.RequireTool(t, "rclone")
	conf := filepath.Join(t.TempDir(), "rclone.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	all := append([]string{"--config", conf, "--webdav-url", davURL, "--webdav-vendor", "other",
		"--retries", "1", "--low-level-retries", "1"}, extra...)
	return harness.Run(t, t.TempDir(), nil, "rclone", append(all, args...)...)
}

func rcloneMust(t *testing.T, davURL string, extra []string, args ...string) string {
	t.Helper()
	out, err := rclone(t, davURL, extra, args...)
	if err != nil {
		t.Fatalf("rclone %v: %v\n%s", args, err, out)
	}
	return out
}

// sameTree fails unless every file under want is under got with the same
// bytes, and got holds nothing else.
func sameFiles(t *testing.T, want, got string) {
	t.Helper()
	files := func(root string) map[string][]byte {
		m := map[string][]byte{}
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(root, p)
				m[rel], _ = os.ReadFile(p)
			}
			return nil
		})
		return m
	}
	w, g := files(want), files(got)
	if len(w) != len(g) {
		t.Fatalf("copied back %d files, want %d", len(g), len(w))
	}
	for name, b := range w {
		if !bytes.Equal(g[name], b) {
			t.Fatalf("%s differs after the round trip", name)
		}
	}
}

// rclone, a real WebDAV client, against an edge: copy a tree up (PROPFIND,
// MKCOL, PUT), list it (PROPFIND Depth 1 all the way down), check it, copy
// it back byte for byte, purge a directory (a recursive DELETE).
func TestWebDAVRclone(t *testing.T) {
	t.Parallel()
	n := harness.StartNode(t, nil, nil)
	dav := n.HTTPURL() + "/webdav/"
	src := rcloneTree(t)
	rcloneMust(t, dav, nil, "copy", src, ":webdav:proj")
	ls := rcloneMust(t, dav, nil, "ls", ":webdav:proj")
	for _, want := range []string{"        6 a.txt", "   307200 sub/big.bin", "        5 sub/deep/my file.txt", "        7 sub/deep/other.c", "        0 second/level/empty.md"} {
		if !strings.Contains(ls, want+"\n") {
			t.Fatalf("rclone ls lacks %q:\n%s", want, ls)
		}
	}
	mustContain(t, rcloneMust(t, dav, nil, "check", src, ":webdav:proj"), "5 matching files")
	back := t.TempDir()
	rcloneMust(t, dav, nil, "copy", ":webdav:proj", back)
	sameFiles(t, src, back)

	rcloneMust(t, dav, nil, "purge", ":webdav:proj/sub")
	ls = rcloneMust(t, dav, nil, "ls", ":webdav:proj")
	mustNotContain(t, ls, "sub/")
	mustContain(t, ls, "a.txt", "second/level/empty.md")
}

// rclone behind [auth]: a Bearer token (--webdav-bearer-token) and the token
// as Basic password (--webdav-user/--webdav-pass) copy and read back; a
// read-only token lists and reads but its copy fails and stores nothing.
func TestWebDAVRcloneAuth(t *testing.T) {
	t.Parallel()
	keys := authtest.New(t)
	rw := keys.Token(t, authtest.Scopes("cache:read", "cache:write"))
	ro := keys.Token(t, authtest.Scopes("cache:read"))
	n := harness.StartNodeWith(t, harness.NodeOptions{
		ExtraTOML: fmt.Sprintf("[auth]\npublic_key_file = %q\n", keys.File()),
	})
	dav := n.HTTPURL() + "/webdav/"
	src := rcloneTree(t)

	if out, err := rclone(t, dav, nil, "copy", src, ":webdav:anon"); err == nil {
		t.Fatalf("anonymous rclone copy succeeded:\n%s", out)
	}
	bearer := []string{"--webdav-bearer-token", rw}
	rcloneMust(t, dav, bearer, "copy", src, ":webdav:bearer")
	obscured := strings.TrimSpace(rcloneMust(t, dav, nil, "obscure", rw))
	basic := []string{"--webdav-user", "rclone", "--webdav-pass", obscured}
	rcloneMust(t, dav, basic, "copy", src, ":webdav:basic")
	back := t.TempDir()
	rcloneMust(t, dav, basic, "copy", ":webdav:bearer", back)
	sameFiles(t, src, back)

	before := scrape(t, n, rw)["fabrik_cache_objects"]
	readOnly := []string{"--webdav-bearer-token", ro}
	mustContain(t, rcloneMust(t, dav, readOnly, "ls", ":webdav:basic"), "sub/deep/my file.txt")
	if out, err := rclone(t, dav, readOnly, "copy", src, ":webdav:readonly"); err == nil {
		t.Fatalf("read-only rclone copy succeeded:\n%s", out)
	}
	if after := scrape(t, n, rw)["fabrik_cache_objects"]; after != before {
		t.Fatalf("a read-only token stored %v objects", after-before)
	}
}
