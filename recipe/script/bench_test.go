package script

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The key of a script over 10,000 input files of 1 KiB, content-hashed
// (glob walk, 10,000 opens and SHA-256s, the key itself). Target: under 1 s.
//
//	go test ./recipe/script -run '^$' -bench Key10000 -benchtime 5x
func BenchmarkKey10000Files(b *testing.B) {
	dir := b.TempDir()
	buf := make([]byte, 1024)
	for i := range 10000 {
		p := filepath.Join(dir, "src", fmt.Sprintf("m%02d", i%100), fmt.Sprintf("f%05d.txt", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		rand.Read(buf)
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	s, err := Parse("b.sh", filepath.Join(dir, "b.sh"), []byte("#!/bin/sh\n#FABRIK input \"src/**/*.txt\"\n"))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		k, err := ComputeKey(s, KeyOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if len(k.Parts) < 10000 {
			b.Fatalf("%d parts", len(k.Parts))
		}
	}
}
