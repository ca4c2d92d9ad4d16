package hexhash

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// reference is what Valid and Decode must agree with: encoding/hex on
// exactly 64 characters, none of them upper-case.
func reference(s string) ([]byte, bool) {
	if len(s) != Len || strings.ToLower(s) != s {
		return nil, false
	}
	b, err := hex.DecodeString(s)
	return b, err == nil
}

func check(t *testing.T, s string) {
	t.Helper()
	want, ok := reference(s)
	if Valid(s) != ok {
		t.Fatalf("Valid(%q) = %v, want %v", s, !ok, ok)
	}
	var h [32]byte
	if Decode(&h, s) != ok {
		t.Fatalf("Decode(%q) reports %v, want %v", s, !ok, ok)
	}
	if ok && !bytes.Equal(h[:], want) {
		t.Fatalf("Decode(%q) = %x", s, h)
	}
}

func seeds() []string {
	sum := sha256.Sum256([]byte("x"))
	h := hex.EncodeToString(sum[:])
	out := []string{h, strings.Repeat("0", 64), strings.Repeat("f", 64), "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		strings.ToUpper(h), h[:63], h + "0", ""}
	// Every byte value at every position of one word.
	for _, c := range []byte{'/', ':', '@', 'A', 'F', 'G', '`', 'g', 'z', 0, 0x7f, 0x80, 0xff, 0xb0, 0xe1} {
		for _, at := range []int{0, 7, 8, 31, 63} {
			b := []byte(h)
			b[at] = c
			out = append(out, string(b))
		}
	}
	return out
}

func TestAgainstEncodingHex(t *testing.T) {
	for _, s := range seeds() {
		check(t, s)
	}
	// Every byte at one position, the rest valid.
	for c := 0; c < 256; c++ {
		b := []byte(strings.Repeat("a", 64))
		b[13] = byte(c)
		check(t, string(b))
	}
}

func FuzzHexHash(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		check(t, s)
		// Random strings are seldom 64 bytes long: also the first 64,
		// padded with valid characters.
		check(t, (s + strings.Repeat("a", Len))[:Len])
	})
}

func BenchmarkDecode(b *testing.B) {
	sum := sha256.Sum256([]byte("x"))
	s := hex.EncodeToString(sum[:])
	var h [32]byte
	for b.Loop() {
		if !Decode(&h, s) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkValid(b *testing.B) {
	sum := sha256.Sum256([]byte("x"))
	s := hex.EncodeToString(sum[:])
	for b.Loop() {
		if !Valid(s) {
			b.Fatal("invalid")
		}
	}
}
