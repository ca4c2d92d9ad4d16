// Package hexhash checks and decodes SHA-256 hashes written as 64
// lower-case hex characters, the form every content address takes in the
// node (CAS keys, REAPI digests). Bazel's FindMissingBlobs sends thousands
// per call, and each is checked by the adapter and decoded by the store, so
// both work on 8 characters at a time in a machine word rather than one
// byte at a time through a table.
package hexhash

import "encoding/binary"

// Len is the length of a hash in hex.
const Len = 64

const (
	ones = 0x0101010101010101
	high = 0x8080808080808080
)

// word loads s[i:i+8] little-endian (one load; the compiler combines it).
func word(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// classify returns, for the 8 characters in x, the high bit of each byte
// set where it is a decimal digit, and where it is 'a' to 'f', and whether
// every byte is one or the other. For a byte c below 0x80, c + (0x80 - lo)
// has its high bit set exactly when c >= lo, and c + (0x7f - hi) exactly
// when c > hi; no sum carries into the next byte, since each stays under
// 0x100.
func classify(x uint64) (alpha uint64, ok bool) {
	if x&high != 0 {
		return 0, false
	}
	digit := (x + ones*(0x80-'0')) &^ (x + ones*(0x7f-'9'))
	alpha = (x + ones*(0x80-'a')) &^ (x + ones*(0x7f-'f'))
	return alpha & high, (digit|alpha)&high == high
}

// Valid reports whether s is 64 lower-case hex characters.
func Valid(s string) bool {
	if len(s) != Len {
		return false
	}
	for i := 0; i < Len; i += 8 {
		if _, ok := classify(word(s, i)); !ok {
			return false
		}
	}
	return true
}

// Decode decodes s into h, reporting whether s is 64 lower-case hex
// characters (h is then undefined when not).
func Decode(h *[32]byte, s string) bool {
	if len(s) != Len {
		return false
	}
	for i := 0; i < Len; i += 8 {
		x := word(s, i)
		alpha, ok := classify(x)
		if !ok {
			return false
		}
		// Each byte's value: its low nibble, plus 9 for 'a'-'f'.
		nib := x&(ones*0x0f) + (alpha>>7)*9
		// Pairs of bytes (the first character is the high nibble) into
		// one byte in each 16-bit lane, then the four lanes together.
		y := (nib&0x00ff00ff00ff00ff)<<4 | (nib>>8)&0x00ff00ff00ff00ff
		y = (y | y>>8) & 0x0000ffff0000ffff
		y = (y | y>>16) & 0xffffffff
		// One 4-byte store: four byte stores into the same word cost
		// several times as much (measured).
		binary.LittleEndian.PutUint32(h[i/2:], uint32(y))
	}
	return true
}
