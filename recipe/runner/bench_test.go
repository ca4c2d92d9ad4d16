package runner

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/recipe/backend"
)

// A hit that restores 1,000 output files of 10 KiB (10 MB of incompressible
// bytes) from the local tier: fetch the record and the archive, verify,
// decompress, write the files. Target: under 300 ms.
//
//	go test ./recipe/runner -run '^$' -bench HitRestore -benchtime 20x
func BenchmarkHitRestore1000Files(b *testing.B) {
	dir := b.TempDir()
	out := filepath.Join(dir, "out")
	for i := range 1000 {
		p := filepath.Join(out, fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%04d.bin", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		buf := make([]byte, 10*1024)
		rand.Read(buf)
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	// The script's outputs already exist: it only has to succeed once.
	os.WriteFile(filepath.Join(dir, "gen.sh"), []byte("#!/bin/sh\n#FABRIK output \"out\"\ntrue\n"), 0o755)
	be := &backend.Local{Cache: cachetest.New(b), Ledger: backend.OpenLedger(filepath.Join(b.TempDir(), "l")), Name: "bench"}
	run := func() string {
		var log bytesWriter
		code, err := New(Options{Backend: be, Log: &log, Stdout: io.Discard, Stderr: io.Discard}).RunScript(context.Background(), filepath.Join(dir, "gen.sh"), ScriptOptions{})
		if err != nil || code != 0 {
			b.Fatalf("run: %d %v", code, err)
		}
		return string(log)
	}
	run()
	b.SetBytes(10 * 1000 * 1024)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		os.RemoveAll(out)
		b.StartTimer()
		if l := run(); !contains(l, "HIT") {
			b.Fatalf("not a hit: %s", l)
		}
	}
	b.StopTimer()
	if n, _ := filepath.Glob(filepath.Join(out, "*", "*.bin")); len(n) != 1000 {
		b.Fatalf("restored %d files", len(n))
	}
}

type bytesWriter []byte

func (w *bytesWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
