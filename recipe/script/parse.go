// Package script reads a script recipe: the `#FABRIK` annotations that make
// an ordinary script (bash, python, node, ...) cacheable, and the runtime
// that runs it. Unknown or malformed annotations are errors naming the file
// and line, never ignored: a typo in `#FABRIK inptu` must not silently turn
// caching of an input off.
package script

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tuist/fabrik-node/config"
)

// HashMode is how an input file contributes to the cache key.
type HashMode string

const (
	HashContent HashMode = "content"
	HashMtime   HashMode = "mtime"
	HashSize    HashMode = "size"
)

// Input is one `#FABRIK input "glob" [hash=...]`.
type Input struct {
	Pattern string
	Hash    HashMode
	Line    int
}

// Depend is one `#FABRIK depends "other.sh" [use-outputs=#true]`.
type Depend struct {
	Path       string
	UseOutputs bool
	Line       int
}

// Script is a parsed script recipe. Paths in it (inputs, outputs,
// dependencies, exec cwd) are relative to the script's directory.
type Script struct {
	// Path is the script's path as given; Abs its absolute path, Dir its
	// directory (the base of every relative path in the annotations).
	Path, Abs, Dir string
	// Content is the script's bytes, part of the cache key.
	Content []byte

	Inputs  []Input
	Outputs []string
	Env     []string
	Depends []Depend

	CacheDisabled bool
	TTL           time.Duration
	CustomKey     string

	// Runtime is the interpreter (from `#FABRIK runtime` or the shebang);
	// RuntimeArgs are the shebang's extra words then every runtime-arg.
	Runtime        string
	RuntimeArgs    []string
	RuntimeVersion bool

	Cwd     string
	Timeout time.Duration
	Shell   bool
}

// Error is a malformed annotation.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Load reads and parses the script at path.
func Load(path string) (*Script, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read script: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, abs, content)
}

// Parse parses content read from path (abs is its absolute path).
func Parse(path, abs string, content []byte) (*Script, error) {
	s := &Script{Path: path, Abs: abs, Dir: filepath.Dir(abs), Content: content}
	var shebangRuntime string
	var shebangArgs []string
	runtimeSet := false
	var extraArgs []string
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 && strings.HasPrefix(text, "#!") {
			shebangRuntime, shebangArgs = parseShebang(text[2:])
			continue
		}
		trimmed := strings.TrimSpace(text)
		rest, ok := strings.CutPrefix(trimmed, "#FABRIK")
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		errf := func(format string, a ...any) error {
			return &Error{File: path, Line: line, Msg: fmt.Sprintf(format, a...)}
		}
		toks, err := tokenize(rest)
		if err != nil {
			return nil, errf("%v", err)
		}
		if len(toks) == 0 {
			return nil, errf("empty #FABRIK annotation")
		}
		name, args := toks[0], toks[1:]
		if name.quoted || name.key != "" {
			return nil, errf("annotation name expected, got %q", name.text())
		}
		switch name.val {
		case "input":
			pos, props, err := split(args, 1, 1, "hash")
			if err != nil {
				return nil, errf("input: %v", err)
			}
			mode := HashContent
			if h, ok := props["hash"]; ok {
				switch HashMode(h) {
				case HashContent, HashMtime, HashSize:
					mode = HashMode(h)
				default:
					return nil, errf("input: hash=%q: want content, mtime or size", h)
				}
			}
			if pos[0] == "" || filepath.IsAbs(pos[0]) {
				return nil, errf("input %q: want a pattern relative to the script's directory (../ reaches outside it)", pos[0])
			}
			s.Inputs = append(s.Inputs, Input{Pattern: pos[0], Hash: mode, Line: line})
		case "output":
			pos, _, err := split(args, 1, 1)
			if err != nil {
				return nil, errf("output: %v", err)
			}
			p := filepath.Clean(pos[0])
			if err := relPath(p); err != nil || p == "." {
				if err == nil {
					err = fmt.Errorf("the script's own directory cannot be an output")
				}
				return nil, errf("output %q: %v", pos[0], err)
			}
			s.Outputs = append(s.Outputs, p)
		case "env":
			pos, _, err := split(args, 1, 1)
			if err != nil {
				return nil, errf("env: %v", err)
			}
			if pos[0] == "" || strings.ContainsAny(pos[0], "= \t") {
				return nil, errf("env: %q is not a variable name", pos[0])
			}
			s.Env = append(s.Env, pos[0])
		case "depends":
			pos, props, err := split(args, 1, 1, "use-outputs")
			if err != nil {
				return nil, errf("depends: %v", err)
			}
			d := Depend{Path: pos[0], Line: line}
			if v, ok := props["use-outputs"]; ok {
				b, err := kdlBool(v)
				if err != nil {
					return nil, errf("depends: use-outputs: %v", err)
				}
				d.UseOutputs = b
			}
			s.Depends = append(s.Depends, d)
		case "cache":
			pos, props, err := split(args, 0, 1, "ttl", "key")
			if err != nil {
				return nil, errf("cache: %v", err)
			}
			if len(pos) == 1 {
				if pos[0] != "disable" {
					return nil, errf("cache: unknown word %q (want disable, ttl=\"...\" or key=\"...\")", pos[0])
				}
				s.CacheDisabled = true
			}
			if len(pos) == 0 && len(props) == 0 {
				return nil, errf("cache: want disable, ttl=\"...\" or key=\"...\"")
			}
			if v, ok := props["ttl"]; ok {
				d, err := config.ParseDuration(v)
				if err != nil || d <= 0 {
					return nil, errf("cache: ttl=%q is not a positive duration (e.g. 2h, 7d)", v)
				}
				s.TTL = time.Duration(d)
			}
			if v, ok := props["key"]; ok {
				s.CustomKey = v
			}
		case "runtime":
			pos, _, err := split(args, 1, 1)
			if err != nil || pos[0] == "" {
				return nil, errf("runtime: want one runtime name")
			}
			s.Runtime, runtimeSet = pos[0], true
		case "runtime-arg":
			pos, _, err := split(args, 1, 1)
			if err != nil {
				return nil, errf("runtime-arg: %v", err)
			}
			extraArgs = append(extraArgs, pos[0])
		case "runtime-version":
			if _, _, err := split(args, 0, 0); err != nil {
				return nil, errf("runtime-version: %v", err)
			}
			s.RuntimeVersion = true
		case "exec":
			pos, props, err := split(args, 0, 1, "cwd", "timeout")
			if err != nil {
				return nil, errf("exec: %v", err)
			}
			if len(pos) == 1 {
				if pos[0] != "shell" {
					return nil, errf("exec: unknown word %q (want shell, cwd=\"...\" or timeout=\"...\")", pos[0])
				}
				s.Shell = true
			}
			if len(pos) == 0 && len(props) == 0 {
				return nil, errf("exec: want shell, cwd=\"...\" or timeout=\"...\"")
			}
			if v, ok := props["cwd"]; ok {
				if v == "" || filepath.IsAbs(v) {
					return nil, errf("exec: cwd=%q: want a directory relative to the script", v)
				}
				s.Cwd = v
			}
			if v, ok := props["timeout"]; ok {
				d, err := config.ParseDuration(v)
				if err != nil || d <= 0 {
					return nil, errf("exec: timeout=%q is not a positive duration (e.g. 30s, 5m)", v)
				}
				s.Timeout = time.Duration(d)
			}
		default:
			return nil, errf("unknown annotation %q (known: input, output, env, depends, cache, runtime, runtime-arg, runtime-version, exec)", name.val)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if !runtimeSet {
		s.Runtime = shebangRuntime
		s.RuntimeArgs = shebangArgs
	}
	s.RuntimeArgs = append(s.RuntimeArgs, extraArgs...)
	if s.Runtime == "" {
		return nil, &Error{File: path, Line: 1, Msg: "no runtime: add a shebang (#!/usr/bin/env bash) or #FABRIK runtime NAME"}
	}
	return s, nil
}

// parseShebang turns "/usr/bin/env -S fabrik-node run bash -e" into
// ("bash", ["-e"]): env and a fabrik run wrapper are skipped, so a script
// made executable through fabrik still names its real interpreter.
func parseShebang(line string) (string, []string) {
	f := strings.Fields(line)
	if len(f) > 0 && filepath.Base(f[0]) == "env" {
		f = f[1:]
		for len(f) > 0 && strings.HasPrefix(f[0], "-") {
			f = f[1:]
		}
	}
	if len(f) >= 2 && (filepath.Base(f[0]) == "fabrik" || filepath.Base(f[0]) == "fabrik-node") && f[1] == "run" {
		f = f[2:]
	}
	if len(f) == 0 {
		return "", nil
	}
	return f[0], f[1:]
}

// relPath refuses paths that leave the script's directory tree: outputs are
// deleted and restored, so they must stay inside the project.
func relPath(p string) error {
	if p == "" {
		return fmt.Errorf("empty path")
	}
	if filepath.IsAbs(p) {
		return fmt.Errorf("must be relative to the script's directory")
	}
	c := filepath.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return fmt.Errorf("must not leave the script's directory")
	}
	return nil
}

func kdlBool(v string) (bool, error) {
	switch v {
	case "#true", "true":
		return true, nil
	case "#false", "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not #true or #false", v)
}
