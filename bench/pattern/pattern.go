// Package pattern generates benchmark artifacts as streams: every key gets
// distinct content (so content-addressed stores cannot deduplicate it) of
// any size, without the artifact ever being held in memory.
package pattern

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
)

// chunk is the period of the pattern. Generating random bytes for every
// byte sent would cost the load generator more CPU than the node under test
// spends (the machine has two cores); a random chunk stamped with the key
// and the chunk index is just as unique and nearly free.
const chunk = 1 << 20

// Key names artifact i of a run: 32 hex characters, a valid Gradle key.
func Key(run uint64, i int) string { return fmt.Sprintf("%016x%016x", run, uint64(i)) }

// Reader streams the size bytes of artifact key.
type Reader struct {
	key  [16]byte
	size int64
	off  int64
}

// New returns the content of key (any string; Key's output in practice).
func New(key string, size int64) *Reader {
	r := &Reader{size: size}
	sum := sha256.Sum256([]byte(key))
	copy(r.key[:], sum[:16])
	return r
}

// base is the random part every chunk shares.
var base = func() []byte {
	b := make([]byte, chunk)
	rng := rand.NewChaCha8([32]byte{'f', 'a', 'b', 'r', 'i', 'k'})
	_, _ = rng.Read(b)
	return b
}()

// stampLen is the head of every chunk that differs from base: the key's
// 16 bytes and the chunk's index.
const stampLen = 24

// Read copies base straight into p and stamps the chunk heads p covers, so
// a request costs its load generator len(p) bytes of copying and nothing
// allocated: a reader that built each 1 MiB chunk in a buffer of its own
// cost a 4 KiB PUT more CPU on the client than the node spent serving it,
// and the two share the machine's cores.
func (r *Reader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.off < r.size {
		idx, in := r.off/chunk, r.off%chunk
		c := copy(p[n:], base[in:min(int64(chunk), in+r.size-r.off)])
		if in < stampLen {
			var stamp [stampLen]byte
			copy(stamp[:], r.key[:])
			binary.BigEndian.PutUint64(stamp[16:], uint64(idx))
			copy(p[n:n+c], stamp[in:])
		}
		n += c
		r.off += int64(c)
	}
	return n, nil
}

// Hash is the SHA-256 of key's content, computed by streaming it.
func Hash(key string, size int64) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, New(key, size)); err != nil {
		return "", fmt.Errorf("hash %s: %w", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ParseSize reads "4KiB", "1MiB", "256MiB", "1GiB" or plain bytes.
func ParseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("size %q: %w", s, err)
			}
			return v * u.mult, nil
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: want e.g. 4KiB, 1MiB or bytes: %w", s, err)
	}
	return v, nil
}

// FormatSize is ParseSize's inverse for round sizes.
func FormatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
