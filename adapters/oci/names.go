package oci

import (
	"regexp"
	"strings"
)

// The repository name grammar of the distribution spec: path components of
// lower-case alphanumerics joined by ".", "_", "__" or runs of "-".
var nameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)

// tagRE is the spec's tag grammar.
var tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// maxNameLength bounds a repository name; the spec lets registries refuse
// names longer than 255 characters (host included).
const maxNameLength = 255

func validName(name string) bool { return len(name) <= maxNameLength && nameRE.MatchString(name) }

func validTag(tag string) bool { return tagRE.MatchString(tag) }

// digestPrefix is the one algorithm stored: a sha256 digest is the blob's
// key in the content-addressed store, shared with every other protocol.
const digestPrefix = "sha256:"

// parseDigest returns the hex of a "sha256:<64 lower-case hex>" digest.
// supported is false for a well-formed digest of another algorithm.
func parseDigest(d string) (hex string, ok bool) {
	h, found := strings.CutPrefix(d, digestPrefix)
	if !found || len(h) != 64 {
		return "", false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return h, true
}

// digestOf renders a blob hash as a digest.
func digestOf(hex string) string { return digestPrefix + hex }

// Namespaces: per repository, blob links (which blobs were pushed or
// mounted to it; the bytes are the CAS blob with the same SHA-256),
// manifests by digest, and tags (mutable pointers to a manifest).
func blobsNS(repo string) string     { return "oci/" + repo + "/blobs" }
func manifestsNS(repo string) string { return "oci/" + repo + "/manifests" }
func tagsNS(repo string) string      { return "oci/" + repo + "/tags" }

// endpoint is what a /v2/ path addresses.
type endpoint int

const (
	epNone endpoint = iota
	epBase
	epBlob
	epUploads // POST /v2/<name>/blobs/uploads/
	epUpload  // /v2/<name>/blobs/uploads/<id>
	epManifest
	epTags
	epReferrers
)

// route is a parsed /v2/ path.
type route struct {
	ep   endpoint
	name string
	// arg is the digest, upload id, or tag-or-digest reference.
	arg string
}

// parseRoute splits a /v2/ path. Repository names contain slashes (and may
// contain components such as "blobs"), so the endpoint is the suffix that
// starts furthest to the right and whose remainder fits that endpoint.
func parseRoute(path string) route {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{}
	}
	if rest == "" {
		return route{ep: epBase}
	}
	best, bestAt := route{}, -1
	try := func(marker string, parse func(name, tail string) (route, bool)) {
		i := strings.LastIndex(rest, marker)
		if i <= bestAt || i <= 0 {
			return
		}
		if r, ok := parse(rest[:i], rest[i+len(marker):]); ok {
			best, bestAt = r, i
		}
	}
	try("/blobs/", func(name, tail string) (route, bool) {
		switch {
		case tail == "uploads" || tail == "uploads/":
			return route{ep: epUploads, name: name}, true
		case strings.HasPrefix(tail, "uploads/"):
			id := tail[len("uploads/"):]
			return route{ep: epUpload, name: name, arg: id}, !strings.Contains(id, "/")
		}
		return route{ep: epBlob, name: name, arg: tail}, tail != "" && !strings.Contains(tail, "/")
	})
	try("/manifests/", func(name, tail string) (route, bool) {
		return route{ep: epManifest, name: name, arg: tail}, tail != "" && !strings.Contains(tail, "/")
	})
	try("/referrers/", func(name, tail string) (route, bool) {
		return route{ep: epReferrers, name: name, arg: tail}, tail != "" && !strings.Contains(tail, "/")
	})
	try("/tags/", func(name, tail string) (route, bool) {
		return route{ep: epTags, name: name}, tail == "list"
	})
	return best
}
