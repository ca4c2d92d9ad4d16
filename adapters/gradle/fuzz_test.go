package gradle

import (
	"strings"
	"testing"
)

// FuzzValidKey: a key is accepted only if it is 8 to 128 hex digits, so an
// accepted key can never name a path outside the namespace.
func FuzzValidKey(f *testing.F) {
	for _, s := range []string{"0123456789abcdef", strings.Repeat("a", 64), "../../etc/passwd", "", "ABCDEF01", "abc", strings.Repeat("f", 129), "abcdefg1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		ok := validKey(k)
		hex := len(k) >= 8 && len(k) <= 128 && strings.Trim(k, "0123456789abcdefABCDEF") == ""
		if ok != hex {
			t.Fatalf("validKey(%q) = %v, want %v", k, ok, hex)
		}
	})
}
