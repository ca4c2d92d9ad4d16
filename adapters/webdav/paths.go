package webdav

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// maxPathLen bounds a resource path (sccache's are under 100 bytes).
const maxPathLen = 1024

// davPath is a resource path relative to /webdav/, without leading or
// trailing slash: "" is the root collection, "sccache/a/b/c/f00d" a file or
// a collection. Whether it is a file or a collection is decided by what the
// store holds, not by the path.
type davPath string

// parsePath turns a request's URL path into a davPath, and reports whether
// the client wrote a trailing slash (a collection, in OpenDAL's and rclone's
// spelling). The HTTP front has already collapsed repeated slashes.
func parsePath(urlPath string) (davPath, bool, error) {
	rest, ok := strings.CutPrefix(urlPath, strings.TrimSuffix(Prefix, "/"))
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false, fmt.Errorf("%q is not under %s", urlPath, Prefix)
	}
	slash := strings.HasSuffix(rest, "/")
	p := strings.Trim(rest, "/")
	if len(p) > maxPathLen {
		return "", false, fmt.Errorf("path longer than %d bytes", maxPathLen)
	}
	if p == "" {
		return "", true, nil
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", false, errors.New("empty, . or .. path segment")
		}
		for _, c := range seg {
			if c < 0x20 || c == 0x7f {
				return "", false, fmt.Errorf("control character %q in path", c)
			}
		}
	}
	return davPath(p), slash, nil
}

// isRoot reports whether p is the root collection.
func (p davPath) isRoot() bool { return p == "" }

// parent is the collection holding p ("" for a top-level name).
func (p davPath) parent() davPath {
	i := strings.LastIndexByte(string(p), '/')
	if i < 0 {
		return ""
	}
	return p[:i]
}

// name is p's last segment ("" for the root).
func (p davPath) name() string {
	return string(p[strings.LastIndexByte(string(p), '/')+1:])
}

// child is the path of name inside collection p.
func (p davPath) child(name string) davPath {
	if p.isRoot() {
		return davPath(name)
	}
	return p + "/" + davPath(name)
}

// fileKey is the key of a file at p: the path itself. File keys never end
// with a slash, collection keys always do, so the two never collide.
func (p davPath) fileKey() string { return string(p) }

// collectionKey is the key of the collection at p: its path and a slash
// ("/" for the root).
func (p davPath) collectionKey() string { return string(p) + "/" }

// href is the URL path a client sees for p, escaped per segment, with a
// trailing slash for a collection.
func (p davPath) href(collection bool) string {
	var b strings.Builder
	b.WriteString(Prefix)
	if !p.isRoot() {
		for i, seg := range strings.Split(string(p), "/") {
			if i > 0 {
				b.WriteByte('/')
			}
			b.WriteString(url.PathEscape(seg))
		}
		if collection {
			b.WriteByte('/')
		}
	}
	return b.String()
}
