package main

import (
	"os"
	"testing"
)

// log_format = auto picks text only on a terminal: files, pipes and
// /dev/null (a detached daemon's stderr) get JSON.
func TestIsTerminalRefusesFilesPipesAndDevNull(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for name, file := range map[string]*os.File{"file": f, "pipe": w, "/dev/null": null} {
		if isTerminal(file) {
			t.Errorf("%s taken for a terminal", name)
		}
	}
}
