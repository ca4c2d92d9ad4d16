package gomodule

import (
	"os/exec"
	"testing"
)

// The generated module builds and vets with the real go command, with and
// without the standard library, and its tests pass.
func TestWriteBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	for name, o := range map[string]Options{
		"std free": {Packages: 5},
		"full":     {Packages: 4, Tests: true, Main: true, Std: true},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			pkgs, err := Write(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			if want := o.Packages; o.Main && len(pkgs) != want+1 || !o.Main && len(pkgs) != want {
				t.Fatalf("%d packages, want %d (+1 with Main)", len(pkgs), want)
			}
			args := []string{"vet", "./..."}
			if o.Tests {
				args = []string{"test", "-count=1", "./..."}
			}
			cmd := exec.Command("go", args...)
			cmd.Dir = dir
			cmd.Env = append(cmd.Environ(), "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local", "GOPROXY=off")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go %v: %v\n%s", args, err, out)
			}
		})
	}
}
