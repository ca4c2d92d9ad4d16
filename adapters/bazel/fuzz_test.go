package bazel

import (
	"strconv"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
)

const fuzzHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// FuzzResourceName: read and write resource names either parse to a valid
// digest and instance (re-rendering the name parses to the same resource:
// a round trip) or are refused; never a panic.
func FuzzResourceName(f *testing.F) {
	for _, s := range []string{
		"blobs/" + fuzzHash + "/0",
		"main/blobs/" + fuzzHash + "/12",
		"compressed-blobs/zstd/" + fuzzHash + "/5",
		"uploads/u-1/blobs/" + fuzzHash + "/3/meta/data",
		"inst/uploads/u/compressed-blobs/zstd/" + fuzzHash + "/7",
		"blobs/sha256/" + fuzzHash + "/1",
		"/blobs/" + fuzzHash + "/1",
		"a//b/blobs/" + fuzzHash + "/1",
		"blobs/blobs/" + fuzzHash + "/-1",
		"compressed-blobs/gzip/x/1",
		"uploads//blobs/x/1",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if r, err := parseReadResource(name); err == nil {
			checkResource(t, name, r)
			again, err := parseReadResource(render(r, ""))
			if err != nil || again != r {
				t.Fatalf("read %q -> %+v, re-rendered %q -> %+v, %v", name, r, render(r, ""), again, err)
			}
		}
		if r, err := parseWriteResource(name); err == nil {
			checkResource(t, name, r)
			if r.uuid == "" || strings.Contains(r.uuid, "/") {
				t.Fatalf("write %q: bad uuid %q", name, r.uuid)
			}
			again, err := parseWriteResource(render(r, r.uuid))
			if err != nil || again != r {
				t.Fatalf("write %q -> %+v, re-rendered -> %+v, %v", name, r, again, err)
			}
		}
	})
}

func checkResource(t *testing.T, name string, r resource) {
	t.Helper()
	if checkHash(r.d.hash) != nil || r.d.size < 0 || checkInstance(r.instance) != nil {
		t.Fatalf("%q parsed to invalid %+v", name, r)
	}
}

// render writes r back as a resource name.
func render(r resource, uuid string) string {
	var b strings.Builder
	if r.instance != "" {
		b.WriteString(r.instance + "/")
	}
	if uuid != "" {
		b.WriteString("uploads/" + uuid + "/")
	}
	if r.compressed {
		b.WriteString("compressed-blobs/zstd/")
	} else {
		b.WriteString("blobs/")
	}
	b.WriteString(r.d.hash + "/" + strconv.FormatInt(r.d.size, 10))
	return b.String()
}

// FuzzDigest: a digest is accepted exactly when its hash is 64 lower-case
// hex digits and its size is not negative, and the accepted digest is the
// client's unchanged.
func FuzzDigest(f *testing.F) {
	f.Add(fuzzHash, int64(0))
	f.Add(strings.ToUpper(fuzzHash), int64(1))
	f.Add(fuzzHash[:63], int64(1))
	f.Add(fuzzHash, int64(-1))
	f.Add("", int64(0))
	f.Fuzz(func(t *testing.T, hash string, size int64) {
		d, err := parseDigest(&repb.Digest{Hash: hash, SizeBytes: size})
		want := len(hash) == 64 && strings.Trim(hash, "0123456789abcdef") == "" && size >= 0
		if (err == nil) != want {
			t.Fatalf("parseDigest(%q, %d) err=%v, want accepted=%v", hash, size, err, want)
		}
		if err == nil && (d.hash != hash || d.size != size) {
			t.Fatalf("parseDigest changed the digest: %+v", d)
		}
	})
}
