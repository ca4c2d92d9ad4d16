package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/e2e/harness"
)

// The overhead of `fabrik-node run` on a trivial cached script: one
// process start, the key, a hit and the replay, through a running edge
// (the daemon case, FABRIK_HTTP_URL) and in-process (no daemon: the CLI
// opens the store itself). Target: under 50 ms.
//
//	go test ./e2e -run '^$' -bench RecipeRunHit -benchtime 20x
func BenchmarkRecipeRunHit(b *testing.B) {
	bin := harness.BuildBinary(b)
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "t.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	edge := harness.StartNode(b, nil, nil)
	for _, c := range []struct {
		name string
		env  []string
	}{
		{"edge", recipeEnv(filepath.Join(b.TempDir(), "unused"), "FABRIK_HTTP_URL="+edge.HTTPURL())},
		{"in-process", recipeEnv(filepath.Join(b.TempDir(), "cache"))},
	} {
		b.Run(c.name, func(b *testing.B) {
			run := func() string {
				cmd := exec.Command(bin, "run", "t.sh")
				cmd.Dir, cmd.Env = dir, append(os.Environ(), c.env...)
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("%v\n%s", err, out)
				}
				return string(out)
			}
			run()
			b.ResetTimer()
			for range b.N {
				if out := run(); !strings.Contains(out, "HIT ✓") {
					b.Fatalf("not a hit:\n%s", out)
				}
			}
		})
	}
}
