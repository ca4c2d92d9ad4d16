package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LoadOptions says where configuration comes from. Everything the loader
// reads from the process is passed in, so tests and the CLI load the same
// way.
type LoadOptions struct {
	// Role picks the embedded defaults (edge when empty).
	Role Role
	// Path is --config; "" means FABRIK_CONFIG_PATH, then discovery.
	Path string
	// Args are command-line arguments. --config-* flags override keys
	// ("--config-cache-dir /x", "--config-upstream-0-url=grpc://h:7070"),
	// --log-level overrides observability.log_level, --config PATH is taken
	// when Path is empty; anything else is ignored, so a command's whole
	// argument list may be passed.
	Args []string
	// Env is the environment as os.Environ() returns it.
	Env []string
	// Cwd is where discovery starts and what relative override paths
	// resolve against; Home is the user's home directory.
	Cwd  string
	Home string
}

// Loaded is a merged configuration and where each value came from.
type Loaded struct {
	Config Config
	// Sources maps every key ("cache.dir", "upstream.0.url") to "default",
	// "file /path/fabrik.toml:12", "env FABRIK_CONFIG_CACHE_DIR" or
	// "flag --config-cache-dir".
	Sources map[string]string
	// Path is the config file read, "" when only defaults and overrides apply.
	Path string
}

// Load merges defaults, the config file, FABRIK_CONFIG_* variables and
// --config-* flags, in that order of increasing precedence, then applies the
// standard fallbacks (AWS_*, FABRIK_TOKEN) to values still empty and
// validates the result. On any problem it returns a *ProblemsError listing
// all of them; the node must not start with a config that has problems.
func Load(opts LoadOptions) (*Loaded, error) {
	ld := newLoader(opts)
	flags, path := ld.parseArgs(opts.Args)
	if opts.Path != "" {
		path = opts.Path
	}
	if path == "" {
		path = ld.env["FABRIK_CONFIG_PATH"]
	}
	if path == "" {
		path = Discover(opts.Cwd, ld.env["XDG_CONFIG_HOME"], opts.Home)
	} else {
		path = absUnder(opts.Cwd, path)
	}
	if path != "" {
		ld.applyFile(path)
		ld.cfg.Path = path
	}
	ld.applyEnv()
	ld.applyFlags(flags)
	ld.applyFallbacks()
	for _, p := range Validate(&ld.cfg) {
		ld.locate(&p)
		ld.problems = append(ld.problems, p)
	}
	out := &Loaded{Config: ld.cfg, Sources: ld.sources, Path: path}
	if len(ld.problems) > 0 {
		// The file's problems top to bottom, then the overrides'.
		sort.SliceStable(ld.problems, func(i, j int) bool {
			a, b := ld.problems[i], ld.problems[j]
			if (a.File != "") != (b.File != "") {
				return a.File != ""
			}
			return a.Line < b.Line
		})
		return out, &ProblemsError{Problems: ld.problems}
	}
	return out, nil
}

// LoadFile reads a TOML file over the role's defaults, without overrides.
func LoadFile(path string, role Role) (Config, error) {
	l, err := Load(LoadOptions{Role: role, Path: path, Cwd: filepath.Dir(path)})
	if l == nil {
		return Config{}, err
	}
	return l.Config, err
}

// Discover finds the config file for a directory: the nearest fabrik.toml
// from cwd upward, else $XDG_CONFIG_HOME/fabrik/config.toml (XDG_CONFIG_HOME
// defaulting to ~/.config). It returns "" when neither exists.
func Discover(cwd, xdgConfigHome, home string) string {
	if cwd != "" {
		for dir := filepath.Clean(cwd); ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, "fabrik.toml")
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if xdgConfigHome == "" && home != "" {
		xdgConfigHome = filepath.Join(home, ".config")
	}
	if xdgConfigHome != "" {
		p := filepath.Join(xdgConfigHome, "fabrik", "config.toml")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

type loader struct {
	opts     LoadOptions
	env      map[string]string
	cfg      Config
	sources  map[string]string
	problems []Problem
	// lines locates file-sourced keys for problems Validate finds later.
	file  string
	lines lineIndex
}

func newLoader(opts LoadOptions) *loader {
	if opts.Role == "" {
		opts.Role = RoleEdge
	}
	env := map[string]string{}
	for _, kv := range opts.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	ld := &loader{opts: opts, env: env, sources: map[string]string{}}
	ld.cfg = defaults(opts.Role, func(k string) string { return env[k] }, opts.Home)
	for _, l := range Leaves(&ld.cfg) {
		ld.sources[l.Key] = "default"
	}
	return ld
}

// overrideText is a value from an environment variable or flag: always text,
// parsed by the key's type ("false" for a bool), where a file's value arrives
// already typed by TOML.
type overrideText string

// set stores text or a decoded TOML value at key and records its source.
// Relative paths resolve against base: the config file's directory for
// file values, the working directory for overrides.
func (ld *loader) set(key string, value any, source, base string) error {
	v, sf, err := fieldAt(&ld.cfg, key)
	if err != nil {
		return err
	}
	if s, ok := value.(overrideText); ok {
		err = setString(v, string(s))
	} else {
		err = setRaw(v, value)
	}
	if err != nil {
		return err
	}
	if sf.Tag.Get("fabrik") == "path" && v.String() != "" {
		v.SetString(resolvePath(v.String(), base, ld.opts.Home))
	}
	ld.sources[key] = source
	// A new array element's other fields start at their zero values.
	ld.fillSources()
	return nil
}

// resolvePath expands ~/ and makes a relative path absolute under base.
func resolvePath(p, base, home string) string {
	if home != "" && (p == "~" || strings.HasPrefix(p, "~/")) {
		return filepath.Join(home, strings.TrimPrefix(p, "~"))
	}
	return absUnder(base, p)
}

func absUnder(base, p string) string {
	if filepath.IsAbs(p) || base == "" {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

// applyEnv applies FABRIK_CONFIG_* variables. A name that matches no key is
// a problem: a misspelt override silently ignored is how nodes end up
// misconfigured.
func (ld *loader) applyEnv() {
	for _, name := range sortedKeys(ld.env) {
		rest, ok := strings.CutPrefix(name, "FABRIK_CONFIG_")
		if !ok || name == "FABRIK_CONFIG_PATH" {
			continue
		}
		origin := "env " + name
		key, ok := resolveName(rest)
		if !ok {
			msg := fmt.Sprintf("%s matches no config key", name)
			if s := suggestOverride(rest, EnvName); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			ld.problems = append(ld.problems, Problem{Message: msg, Origin: origin})
			continue
		}
		if err := ld.set(key, overrideText(ld.env[name]), origin, ld.opts.Cwd); err != nil {
			ld.problems = append(ld.problems, valueProblem(key, err, origin))
		}
	}
	if lvl := ld.env["FABRIK_LOG_LEVEL"]; lvl != "" {
		_ = ld.set("observability.log_level", overrideText(lvl), "env FABRIK_LOG_LEVEL", ld.opts.Cwd)
	}
}

func valueProblem(key string, err error, origin string) Problem {
	var te *mustError
	if errors.As(err, &te) {
		return Problem{Key: key, Message: key + " " + te.Error(), Origin: origin}
	}
	return Problem{Key: key, Message: key + ": " + err.Error(), Origin: origin}
}

func suggestOverride(rest string, spell func(string) string) string {
	keys := allKeys()
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = strings.ToUpper(strings.ReplaceAll(k, ".", "_"))
	}
	if s := suggest(strings.ToUpper(rest), names); s != "" {
		for i, n := range names {
			if n == s {
				return spell(keys[i])
			}
		}
	}
	return ""
}

// locate gives a problem found on the merged config the file position or the
// override that set its key.
func (ld *loader) locate(p *Problem) {
	src := ld.sources[p.Key]
	switch {
	case strings.HasPrefix(src, "file "), src == "default" && ld.file != "" && ld.lines.line(p.Key) > 0:
		p.File = ld.file
		p.Line = ld.lines.line(p.Key)
	case strings.HasPrefix(src, "env "), strings.HasPrefix(src, "flag "):
		p.Origin = src
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
