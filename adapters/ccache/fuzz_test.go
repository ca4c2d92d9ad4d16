package ccache

import (
	"path"
	"strings"
	"testing"
)

// FuzzValidKey: an accepted ccache path is bounded, made of plain segments
// of a safe alphabet, and already clean (path.Clean leaves it unchanged, so
// it cannot climb out of the namespace or alias another key).
func FuzzValidKey(f *testing.F) {
	for _, s := range []string{
		"a/b/c0ffee1234R", "prefix/ab/cdef0123456789abcdef0123456789ab-9", "../x", "a//b", "a/./b", "/a", "a/",
		"", strings.Repeat("a", maxKeyLen+1), "a\x00b", "ccache/ab/c.result",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		if err := validKey(k); err != nil {
			return
		}
		if len(k) == 0 || len(k) > maxKeyLen {
			t.Fatalf("validKey accepted %q of length %d", k, len(k))
		}
		if path.Clean(k) != k || strings.HasPrefix(k, "/") || k == ".." || strings.HasPrefix(k, "../") {
			t.Fatalf("validKey accepted unclean path %q", k)
		}
		if strings.Trim(k, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_./") != "" {
			t.Fatalf("validKey accepted a character outside the alphabet in %q", k)
		}
	})
}
