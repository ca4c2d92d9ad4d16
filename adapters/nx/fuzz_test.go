package nx

import (
	"strings"
	"testing"
)

const keyAlphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"

// FuzzValidKey: accepted keys are 1 to maxKeyLen characters of letters,
// digits, '-' and '_', and nothing else (no '/', '.', control characters).
func FuzzValidKey(f *testing.F) {
	for _, s := range []string{"1234567890", "a-b_C", "../x", "", "a/b", "a.b", strings.Repeat("x", maxKeyLen+1), "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		want := k != "" && len(k) <= maxKeyLen && strings.Trim(k, keyAlphabet) == ""
		if got := validKey(k); got != want {
			t.Fatalf("validKey(%q) = %v, want %v", k, got, want)
		}
	})
}
