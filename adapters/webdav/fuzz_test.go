package webdav

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/adapters/httpfront"
	"github.com/tuist/fabrik-node/internal/cachetest"
)

// FuzzPropfind sends PROPFIND requests with fuzzed paths, Depth headers and
// bodies to the adapter behind the HTTP front (no network): the answer is
// one of 207, 400, 403, 404, 405 or a path-cleaning redirect, never a 5xx
// or a panic, and a 207 is
// well-formed XML whose every href lies under /webdav/.
func FuzzPropfind(f *testing.F) {
	cache := cachetest.New(f)
	front := httpfront.New()
	front.Mount("sccache", New(cache, Options{}))
	put := httptest.NewRequest(http.MethodPut, "/webdav/dir/file", strings.NewReader("hello"))
	rec := httptest.NewRecorder()
	front.ServeHTTP(rec, put)
	if rec.Code >= 300 {
		f.Fatalf("seed PUT: %d %s", rec.Code, rec.Body)
	}
	f.Add("/webdav/", "1", propfindBody)
	f.Add("/webdav/dir/", "1", "")
	f.Add("/webdav/dir/file", "0", `<propfind xmlns="DAV:"><prop><getcontentlength/></prop></propfind>`)
	f.Add("/webdav/dir", "infinity", propfindBody)
	f.Add("/webdav/../x", "0", "")
	f.Add("/webdav/dir/", "1", `<!DOCTYPE x [<!ENTITY a "aaaa">]><propfind>&a;</propfind>`)
	f.Add("/webdav/x", "0", "<notpropfind/>")
	f.Add("/webdav/a%00b", "0", "<propfind")
	f.Fuzz(func(t *testing.T, path, depth, body string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest("PROPFIND", "http://127.0.0.1"+path, strings.NewReader(body))
		if err != nil {
			return // not a URL a client could send
		}
		req.RequestURI = req.URL.RequestURI()
		req.RemoteAddr = "127.0.0.1:1234"
		req.Header.Set("Depth", depth)
		rec := httptest.NewRecorder()
		front.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusMultiStatus:
			checkMultistatus(t, rec.Body.Bytes())
		case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusMisdirectedRequest:
		default:
			t.Fatalf("PROPFIND %q depth %q: status %d %s", path, depth, rec.Code, rec.Body)
		}
	})
}

func checkMultistatus(t *testing.T, b []byte) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	inHref := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("207 body is not well-formed XML: %v\n%s", err, b)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			inHref = x.Name.Local == "href"
		case xml.CharData:
			if inHref && !strings.HasPrefix(string(x), "/webdav/") {
				t.Fatalf("href %q outside /webdav/", x)
			}
		case xml.EndElement:
			inHref = false
		}
	}
}

// FuzzParsePath: an accepted path has no empty, "." or ".." segment and no
// control character, and its href parses back to the same path.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/webdav/", "/webdav", "/webdav/a/b", "/webdav/a/../b", "/webdav//a", "/webdavx/a", "/webdav/a\x7f", "/webdav/é/ü/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, urlPath string) {
		p, slash, err := parsePath(urlPath)
		if err != nil {
			return
		}
		for _, seg := range strings.Split(string(p), "/") {
			if p != "" && (seg == "" || seg == "." || seg == "..") {
				t.Fatalf("parsePath(%q) = %q has a bad segment", urlPath, p)
			}
		}
		if strings.ContainsFunc(string(p), func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("parsePath(%q) = %q has a control character", urlPath, p)
		}
		_ = slash
	})
}
