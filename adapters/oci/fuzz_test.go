package oci

import (
	"strings"
	"testing"
)

// FuzzRoute: a parsed /v2/ path re-renders to itself (round trip), its
// argument never contains '/', and a repository name the grammar accepts
// never contains "..", a leading '/' or an upper-case letter; tags and
// digests are accepted only in their grammar.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{
		"/v2/", "/v2/library/alpine/manifests/3.19", "/v2/a/b/blobs/sha256:" + strings.Repeat("a", 64),
		"/v2/x/blobs/uploads/", "/v2/x/blobs/uploads/abc-123", "/v2/x/tags/list", "/v2/x/referrers/sha256:00",
		"/v2/blobs/blobs/blobs/x", "/v2//manifests/x", "/v2/../manifests/x", "/v2/A/manifests/latest", "/v3/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		r := parseRoute(p)
		if r.ep == epNone {
			return
		}
		if strings.Contains(r.arg, "/") {
			t.Fatalf("parseRoute(%q) arg %q contains '/'", p, r.arg)
		}
		if got := renderRoute(r); got != p && !(r.ep == epUploads && got+"/" == p) {
			t.Fatalf("parseRoute(%q) = %+v renders %q", p, r, got)
		}
		if validName(r.name) && (strings.Contains(r.name, "..") || strings.HasPrefix(r.name, "/") || strings.ToLower(r.name) != r.name || strings.Contains(r.name, "//")) {
			t.Fatalf("validName accepted %q", r.name)
		}
		if validTag(r.arg) && (len(r.arg) > 128 || strings.ContainsAny(r.arg, ":/@")) {
			t.Fatalf("validTag accepted %q", r.arg)
		}
		if hex, ok := parseDigest(r.arg); ok && (digestOf(hex) != r.arg || len(hex) != 64) {
			t.Fatalf("parseDigest(%q) = %q does not round trip", r.arg, hex)
		}
	})
}

func renderRoute(r route) string {
	switch r.ep {
	case epBase:
		return "/v2/"
	case epBlob:
		return "/v2/" + r.name + "/blobs/" + r.arg
	case epUploads:
		return "/v2/" + r.name + "/blobs/uploads"
	case epUpload:
		return "/v2/" + r.name + "/blobs/uploads/" + r.arg
	case epManifest:
		return "/v2/" + r.name + "/manifests/" + r.arg
	case epTags:
		return "/v2/" + r.name + "/tags/list"
	case epReferrers:
		return "/v2/" + r.name + "/referrers/" + r.arg
	}
	return ""
}

// FuzzRange: an honoured Range is within the blob (0 <= first <= last <
// size); an error is returned only for a header that starts with "bytes=";
// a header without that prefix is ignored.
func FuzzRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=5-", "bytes=-3", "bytes=0-1,2-3", "bytes=9-1", "bytes=-0", "bytes=x-", "items=0-1", "", "bytes= 1-2 ", "bytes=-9223372036854775808"} {
		f.Add(s, int64(10))
	}
	f.Add("bytes=0-", int64(0))
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		first, last, ok, err := parseRange(h, size)
		if err != nil && !strings.HasPrefix(h, "bytes=") {
			t.Fatalf("parseRange(%q) refused a header it should ignore: %v", h, err)
		}
		if ok && (err != nil || first < 0 || first > last || last >= size) {
			t.Fatalf("parseRange(%q, %d) = %d-%d outside the blob", h, size, first, last)
		}
	})
}

// FuzzContentRange: an accepted Content-Range of an upload chunk has
// 0 <= first <= last.
func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"0-99", "bytes 0-99/100", "bytes=5-10", "10-5", "-1-2", "", "0-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if first, last, ok := parseContentRange(s); ok && (first < 0 || last < first) {
			t.Fatalf("parseContentRange(%q) = %d-%d", s, first, last)
		}
	})
}
