package bazel

import (
	"fmt"
	"strconv"
	"strings"
)

// resource is a parsed ByteStream resource name.
type resource struct {
	instance string
	// uuid is the client's upload id (writes only).
	uuid string
	// compressed is true for compressed-blobs/zstd/...: data on the wire is
	// a zstd stream, d is the digest of the uncompressed content.
	compressed bool
	d          digest
}

// parseReadResource parses `[instance/]blobs/{hash}/{size}` and
// `[instance/]compressed-blobs/zstd/{hash}/{size}`.
func parseReadResource(name string) (resource, error) {
	segs := strings.Split(name, "/")
	i := indexOf(segs, "blobs", "compressed-blobs")
	if i < 0 {
		return resource{}, invalid("resource name %q: want [instance/]blobs/{hash}/{size} or [instance/]compressed-blobs/zstd/{hash}/{size}", truncate(name))
	}
	r := resource{instance: strings.Join(segs[:i], "/")}
	if err := r.parseBlob(name, segs[i:], false); err != nil {
		return resource{}, err
	}
	return r, nil
}

// parseWriteResource parses `[instance/]uploads/{uuid}/blobs/{hash}/{size}[/...]`
// and `[instance/]uploads/{uuid}/compressed-blobs/zstd/{hash}/{size}[/...]`;
// the optional trailing metadata is ignored.
func parseWriteResource(name string) (resource, error) {
	segs := strings.Split(name, "/")
	i := indexOf(segs, "uploads")
	if i < 0 || len(segs) < i+3 || segs[i+1] == "" || (segs[i+2] != "blobs" && segs[i+2] != "compressed-blobs") {
		return resource{}, invalid("resource name %q: want [instance/]uploads/{uuid}/blobs/{hash}/{size} or [instance/]uploads/{uuid}/compressed-blobs/zstd/{hash}/{size}", truncate(name))
	}
	r := resource{instance: strings.Join(segs[:i], "/"), uuid: segs[i+1]}
	if err := r.parseBlob(name, segs[i+2:], true); err != nil {
		return resource{}, err
	}
	return r, nil
}

// parseBlob parses segs = ["blobs"|"compressed-blobs", ...] into r.
func (r *resource) parseBlob(name string, segs []string, trailing bool) error {
	if strings.HasPrefix(name, "/") {
		return invalid("resource name %q starts with '/'; the empty instance has no leading slash", truncate(name))
	}
	if err := checkInstance(r.instance); err != nil {
		return err
	}
	rest := segs[1:]
	if segs[0] == "compressed-blobs" {
		if len(rest) == 0 || rest[0] != "zstd" {
			c := ""
			if len(rest) > 0 {
				c = rest[0]
			}
			return invalid("resource name %q: compressor %q is not supported, only zstd", truncate(name), truncate(c))
		}
		r.compressed = true
		rest = rest[1:]
	}
	if len(rest) >= 3 && checkHash(rest[0]) != nil && isWord(rest[0]) {
		// The optional {digest_function/} segment: only SHA-256 exists here,
		// and the REAPI says SHA-256 is never named in a resource.
		return invalid("resource name %q: digest function %q is not supported, only SHA256", truncate(name), rest[0])
	}
	if len(rest) < 2 || (!trailing && len(rest) > 2) {
		return invalid("resource name %q: want .../{hash}/{size} after %q", truncate(name), segs[0])
	}
	if err := checkHash(rest[0]); err != nil {
		return invalid("resource name %q: %v", truncate(name), err)
	}
	size, err := strconv.ParseInt(rest[1], 10, 64)
	if err != nil {
		return invalid("resource name %q: size %q is not a number", truncate(name), truncate(rest[1]))
	}
	if size < 0 {
		return invalid("resource name %q: negative size %d", truncate(name), size)
	}
	r.d = digest{hash: rest[0], size: size}
	return nil
}

func (r resource) String() string {
	kind := "blob"
	if r.compressed {
		kind = "zstd blob"
	}
	return fmt.Sprintf("%s %s", kind, r.d)
}

// indexOf returns the index of the first segment equal to one of words, or -1.
// Instance names may not contain these words, so the first match is the one.
func indexOf(segs []string, words ...string) int {
	for i, s := range segs {
		for _, w := range words {
			if s == w {
				return i
			}
		}
	}
	return -1
}

func isWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return s != ""
}
