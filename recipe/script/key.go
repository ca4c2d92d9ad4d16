package script

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// keyVersion changes whenever the key's layout changes, so old entries
// become misses instead of wrong hits.
const keyVersion = "fabrik-script-key-v1"

// Part is one thing the key was computed from, for --dry-run.
type Part struct {
	Kind  string // script, runtime, runtime-version, input, env, key, arg, output, exec
	Name  string
	Value string
}

// Key is a script's cache key and its ingredients.
type Key struct {
	// Hex is the lower-case hex SHA-256.
	Hex   string
	Parts []Part
}

// Short is the key as the run line prints it: "script-" + 16 hex digits.
func (k Key) Short() string { return "script-" + k.Hex[:16] }

// KeyOptions are the parts of a key that are not in the script file.
type KeyOptions struct {
	// Args are the arguments after "--".
	Args []string
	// Getenv looks up an environment variable (os.LookupEnv by default).
	Getenv func(string) (string, bool)
	// Extra are further inputs, content-hashed: the outputs of dependencies
	// declared with use-outputs=#true, relative to the script's directory.
	Extra []string
	// RuntimeVersion returns the runtime's version when the script asks for
	// it (`<runtime> --version` by default).
	RuntimeVersion func(runtime string) (string, error)
}

// ComputeKey hashes, in this order: the key version, the script's content,
// the runtime and its arguments (and version), the exec settings, every
// input pattern with the sorted list of its files' hashes, dependency
// outputs, every declared output path, env values, the custom key and the
// arguments. Every field is length-prefixed so no two different inputs
// write the same byte stream.
func ComputeKey(s *Script, o KeyOptions) (Key, error) {
	if o.Getenv == nil {
		o.Getenv = os.LookupEnv
	}
	if o.RuntimeVersion == nil {
		o.RuntimeVersion = RuntimeVersion
	}
	var parts []Part
	add := func(kind, name, value string) { parts = append(parts, Part{kind, name, value}) }
	sum := sha256.Sum256(s.Content)
	// The content, not the path: the same script is the same step wherever
	// it is checked out and however it is invoked.
	add("script", "", hex.EncodeToString(sum[:]))
	add("runtime", s.Runtime, strings.Join(s.RuntimeArgs, " "))
	if s.RuntimeVersion {
		v, err := o.RuntimeVersion(s.Runtime)
		if err != nil {
			return Key{}, fmt.Errorf("runtime-version: %w", err)
		}
		add("runtime-version", s.Runtime, v)
	}
	add("exec", "cwd", s.Cwd)
	add("exec", "shell", strconv.FormatBool(s.Shell))
	for _, in := range s.Inputs {
		files, err := Glob(s.Dir, in.Pattern)
		if err != nil {
			return Key{}, fmt.Errorf("input %q: %w", in.Pattern, err)
		}
		add("input-pattern", in.Pattern, string(in.Hash))
		hashes, err := HashFiles(s.Dir, files, in.Hash)
		if err != nil {
			return Key{}, fmt.Errorf("input %q: %w", in.Pattern, err)
		}
		for i, f := range files {
			add("input", f, hashes[i])
		}
	}
	for _, e := range s.Extra(o.Extra) {
		files, err := Glob(s.Dir, e)
		if err != nil {
			return Key{}, fmt.Errorf("dependency output %q: %w", e, err)
		}
		hashes, err := HashFiles(s.Dir, files, HashContent)
		if err != nil {
			return Key{}, fmt.Errorf("dependency output %q: %w", e, err)
		}
		add("dependency-output", e, "")
		for i, f := range files {
			add("input", f, hashes[i])
		}
	}
	for _, out := range s.Outputs {
		add("output", out, "")
	}
	env := append([]string(nil), s.Env...)
	sort.Strings(env)
	for _, name := range env {
		if v, ok := o.Getenv(name); ok {
			add("env", name, "="+v)
		} else {
			add("env", name, "(unset)")
		}
	}
	if s.CustomKey != "" {
		add("key", "", s.CustomKey)
	}
	for i, a := range o.Args {
		add("arg", strconv.Itoa(i), a)
	}
	return Key{Hex: HashParts(keyVersion, parts), Parts: parts}, nil
}

// Extra returns the dependency outputs to hash, sorted and without
// duplicates.
func (s *Script) Extra(extra []string) []string {
	out := append([]string(nil), extra...)
	sort.Strings(out)
	return dedupe(out)
}

// HashParts hashes a version tag and parts, each field length-prefixed.
func HashParts(version string, parts []Part) string {
	h := sha256.New()
	field := func(s string) {
		fmt.Fprintf(h, "%d:", len(s))
		io.WriteString(h, s)
	}
	field(version)
	for _, p := range parts {
		field(p.Kind)
		field(p.Name)
		field(p.Value)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// HashFiles hashes files (relative to dir) by mode, in parallel: content
// hashing of thousands of inputs is I/O- and SHA-bound, and a key must be
// cheap next to the step it guards. A symlink contributes its target, not
// the file it points to (restores recreate links, not copies).
func HashFiles(dir string, files []string, mode HashMode) ([]string, error) {
	out := make([]string, len(files))
	errs := make([]error, len(files))
	workers := min(runtime.GOMAXPROCS(0)*2, len(files))
	var wg sync.WaitGroup
	next := make(chan int, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64*1024)
			for i := range next {
				out[i], errs[i] = hashFile(filepath.Join(dir, filepath.FromSlash(files[i])), mode, buf)
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", files[i], err)
		}
	}
	return out, nil
}

func hashFile(p string, mode HashMode, buf []byte) (string, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return "", err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		return "symlink:" + target, nil
	}
	perm := strconv.FormatUint(uint64(fi.Mode().Perm()), 8)
	switch mode {
	case HashMtime:
		return "mtime:" + strconv.FormatInt(fi.ModTime().UnixNano(), 10), nil
	case HashSize:
		return "size:" + strconv.FormatInt(fi.Size(), 10), nil
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// The struct hides *os.File's WriterTo, whose fallback allocates a
	// fresh 32 KiB buffer per file: with thousands of small inputs that
	// was a tenth of the key's time.
	h := sha256.New()
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)) + " mode:" + perm, nil
}

// RuntimeVersion runs `runtime --version` and returns its trimmed output.
func RuntimeVersion(rt string) (string, error) {
	out, err := exec.Command(rt, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", rt, err)
	}
	return strings.TrimSpace(string(out)), nil
}
