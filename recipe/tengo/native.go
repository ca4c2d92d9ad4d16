package tengo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	tg "github.com/d5/tengo/v2"
	"github.com/d5/tengo/v2/stdlib"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/recipe/backend"
	"github.com/tuist/fabrik-node/recipe/script"
)

// stdlibModules are the only stdlib modules a recipe may import (fmt is
// replaced by a copy whose print functions write to the target's output).
var stdlibModules = []string{"text", "json", "times", "math", "enum"}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func (r *run) modules() *tg.ModuleMap {
	mm := stdlib.GetModuleMap(stdlibModules...)
	if r.opts.AllowOS {
		mm.AddMap(stdlib.GetModuleMap("os"))
	}
	mm.AddBuiltinModule("fmt", r.fmtModule())
	mm.AddBuiltinModule("__fabrik", r.native())
	mm.AddSourceModule("fabrik", fabrikModule)
	return mm
}

func fn(name string, f tg.CallableFunc) *tg.UserFunction {
	return &tg.UserFunction{Name: name, Value: f}
}

func (r *run) fmtModule() map[string]tg.Object {
	m := map[string]tg.Object{}
	for k, v := range stdlib.BuiltinModules["fmt"] {
		m[k] = v
	}
	out := writerFunc(r.writeStdout)
	m["print"] = fn("print", func(args ...tg.Object) (tg.Object, error) {
		fmt.Fprint(out, printArgs(args)...)
		return tg.UndefinedValue, nil
	})
	m["println"] = fn("println", func(args ...tg.Object) (tg.Object, error) {
		fmt.Fprintln(out, printArgs(args)...)
		return tg.UndefinedValue, nil
	})
	m["printf"] = fn("printf", func(args ...tg.Object) (tg.Object, error) {
		if len(args) == 0 {
			return nil, tg.ErrWrongNumArguments
		}
		format, ok := args[0].(*tg.String)
		if !ok {
			return nil, tg.ErrInvalidArgumentType{Name: "format", Expected: "string", Found: args[0].TypeName()}
		}
		s, err := tg.Format(format.Value, args[1:]...)
		if err != nil {
			return nil, err
		}
		io.WriteString(out, s)
		return tg.UndefinedValue, nil
	})
	return m
}

func printArgs(args []tg.Object) []any {
	out := make([]any, len(args))
	for i, a := range args {
		if s, ok := a.(*tg.String); ok {
			out[i] = s.Value
		} else {
			out[i] = a.String()
		}
	}
	return out
}

// native is the host side of the fabrik module.
func (r *run) native() map[string]tg.Object {
	return map[string]tg.Object{
		"register":    fn("register", r.fnRegister),
		"recipe":      fn("recipe", r.fnRecipe),
		"set_default": fn("default", r.fnDefault),
		"deps":        fn("deps", r.fnDeps),
		"begin":       fn("begin", r.fnBegin),
		"end":         fn("end", r.fnEnd),
		"main":        fn("main", r.fnMain),
		"args":        fn("args", r.fnArgs),
		"exec":        fn("exec", r.fnExec),
		"shell":       fn("shell", r.fnShell),
		"glob":        fn("glob", r.fnGlob),
		"hash_file":   fn("hash_file", r.fnHashFile),
		"read_file":   fn("read_file", r.fnReadFile),
		"write_file":  fn("write_file", r.fnWriteFile),
		"exists":      fn("exists", r.fnExists),
		"cache_get":   fn("cache.get", r.fnCacheGet),
		"cache_put":   fn("cache.put", r.fnCachePut),
		"cache_has":   fn("cache.has", r.fnCacheHas),
		"config":      fn("config", r.fnConfig),
		"log":         fn("log", r.fnLog),
	}
}

func str(args []tg.Object, i int, name string) (string, error) {
	if i >= len(args) {
		return "", tg.ErrWrongNumArguments
	}
	s, ok := args[i].(*tg.String)
	if !ok {
		return "", tg.ErrInvalidArgumentType{Name: name, Expected: "string", Found: args[i].TypeName()}
	}
	return s.Value, nil
}

func strs(o tg.Object, name string) ([]string, error) {
	var items []tg.Object
	switch v := o.(type) {
	case *tg.Array:
		items = v.Value
	case *tg.ImmutableArray:
		items = v.Value
	case *tg.Undefined:
		return nil, nil
	default:
		return nil, fmt.Errorf("%s: want an array of strings, got %s", name, o.TypeName())
	}
	out := make([]string, len(items))
	for i, it := range items {
		s, ok := it.(*tg.String)
		if !ok {
			return nil, fmt.Errorf("%s[%d]: want a string, got %s", name, i, it.TypeName())
		}
		out[i] = s.Value
	}
	return out, nil
}

func mapOf(o tg.Object) (map[string]tg.Object, bool) {
	switch v := o.(type) {
	case *tg.Map:
		return v.Value, true
	case *tg.ImmutableMap:
		return v.Value, true
	}
	return nil, false
}

func strArray(s []string) *tg.Array {
	a := &tg.Array{Value: make([]tg.Object, len(s))}
	for i, v := range s {
		a.Value[i] = &tg.String{Value: v}
	}
	return a
}

// parseMeta reads metadata; unknown keys are errors, like unknown
// #FABRIK annotations.
func parseMeta(o tg.Object, where string, targetLevel bool) (meta, error) {
	var m meta
	if _, ok := o.(*tg.Undefined); ok {
		return m, nil
	}
	mm, ok := mapOf(o)
	if !ok {
		return m, fmt.Errorf("%s: metadata must be a map, got %s", where, o.TypeName())
	}
	for k, v := range mm {
		var err error
		switch k {
		case "description":
			s, ok := v.(*tg.String)
			if !ok {
				return m, fmt.Errorf("%s: description must be a string", where)
			}
			m.Description = s.Value
		case "inputs":
			m.Inputs, err = strs(v, where+".inputs")
			for _, in := range m.Inputs {
				if in == "" || filepath.IsAbs(in) {
					return m, fmt.Errorf("%s.inputs: %q must be a pattern relative to the recipe's directory", where, in)
				}
			}
		case "outputs":
			m.Outputs, err = strs(v, where+".outputs")
			for _, out := range m.Outputs {
				c := filepath.Clean(out)
				if filepath.IsAbs(c) || c == "." || c == ".." || strings.HasPrefix(c, "../") {
					return m, fmt.Errorf("%s.outputs: %q must be a path inside the recipe's directory", where, out)
				}
			}
		case "env":
			m.Env, err = strs(v, where+".env")
		case "deps":
			if !targetLevel {
				return m, fmt.Errorf("%s: deps belong to a target", where)
			}
			m.Deps, err = strs(v, where+".deps")
		case "cache_ttl":
			s, ok := v.(*tg.String)
			if !ok {
				return m, fmt.Errorf("%s: cache_ttl must be a string such as \"7d\"", where)
			}
			d, perr := config.ParseDuration(s.Value)
			if perr != nil || d <= 0 {
				return m, fmt.Errorf("%s: cache_ttl %q is not a positive duration", where, s.Value)
			}
			m.TTL = time.Duration(d)
		case "cache":
			b, ok := v.(*tg.Bool)
			if !ok {
				return m, fmt.Errorf("%s: cache must be true or false", where)
			}
			m.NoCache = b.IsFalsy()
		default:
			return m, fmt.Errorf("%s: unknown metadata key %q (known: description, inputs, outputs, env, deps, cache_ttl, cache)", where, k)
		}
		if err != nil {
			return m, err
		}
	}
	return m, nil
}

func (r *run) fnRegister(args ...tg.Object) (tg.Object, error) {
	if len(args) != 3 {
		return nil, tg.ErrWrongNumArguments
	}
	name, err := str(args, 0, "name")
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("fabrik.target: empty target name")
	}
	if _, dup := r.targets[name]; dup {
		return nil, fmt.Errorf("fabrik.target: target %q declared twice", name)
	}
	m, err := parseMeta(args[1], "target "+name, true)
	if err != nil {
		return nil, err
	}
	r.targets[name] = &target{name: name, meta: m, wrapper: args[2]}
	r.order = append(r.order, name)
	return tg.UndefinedValue, nil
}

func (r *run) fnRecipe(args ...tg.Object) (tg.Object, error) {
	if len(args) != 1 {
		return nil, tg.ErrWrongNumArguments
	}
	m, err := parseMeta(args[0], "recipe", false)
	if err != nil {
		return nil, err
	}
	r.recipe = m
	return tg.UndefinedValue, nil
}

func (r *run) fnDefault(args ...tg.Object) (tg.Object, error) {
	name, err := str(args, 0, "target")
	if err != nil {
		return nil, err
	}
	r.dflt = name
	return tg.UndefinedValue, nil
}

func (r *run) fnDeps(args ...tg.Object) (tg.Object, error) {
	name, err := str(args, 0, "target")
	if err != nil {
		return nil, err
	}
	t, ok := r.targets[name]
	if !ok {
		return nil, fmt.Errorf("unknown target %q", name)
	}
	// A target is "resolving" from its deps call until its begin: meeting
	// it again in between is a cycle (which would otherwise recurse until
	// the VM's stack overflows).
	for i, n := range r.resolving {
		if n == name {
			return nil, fmt.Errorf("target cycle: %s -> %s", strings.Join(r.resolving[i:], " -> "), name)
		}
	}
	r.resolving = append(r.resolving, name)
	out := &tg.Array{}
	for _, d := range t.meta.Deps {
		dt, ok := r.targets[d]
		if !ok {
			return nil, fmt.Errorf("target %s depends on unknown target %q", name, d)
		}
		out.Value = append(out.Value, dt.wrapper)
	}
	return out, nil
}

func (r *run) fnBegin(args ...tg.Object) (tg.Object, error) {
	name, err := str(args, 0, "target")
	if err != nil {
		return nil, err
	}
	if n := len(r.resolving); n > 0 && r.resolving[n-1] == name {
		r.resolving = r.resolving[:n-1]
	}
	s, err := r.begin(name)
	if err != nil {
		return nil, err
	}
	return &tg.String{Value: s}, nil
}

func (r *run) fnEnd(args ...tg.Object) (tg.Object, error) {
	name, err := str(args, 0, "target")
	if err != nil {
		return nil, err
	}
	var result tg.Object = tg.UndefinedValue
	if len(args) > 1 {
		result = args[1]
	}
	return tg.UndefinedValue, r.end(name, result)
}

func (r *run) fnMain(...tg.Object) (tg.Object, error) {
	if r.list {
		return tg.UndefinedValue, nil
	}
	name := r.selectedName()
	if name == "" {
		if len(r.order) == 0 {
			// A recipe without targets is all top level, which has run
			// (uncached: there is nothing to key it by).
			return tg.UndefinedValue, nil
		}
		return nil, fmt.Errorf("no target given and no default (fabrik.default); targets: %s", strings.Join(r.order, ", "))
	}
	t, ok := r.targets[name]
	if !ok {
		return nil, fmt.Errorf("unknown target %q; targets: %s", name, strings.Join(r.order, ", "))
	}
	return t.wrapper, nil
}

func (r *run) fnArgs(...tg.Object) (tg.Object, error) { return strArray(r.args), nil }

// command runs name with args in the recipe's directory, killed (with its
// process group) at the running target's deadline.
func (r *run) command(name string, args []string) (tg.Object, error) {
	deadline, what := r.deadline()
	ctx, cancel := context.WithDeadline(r.ctx, deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = r.dir
	cmd.Env = r.opts.Env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			r.mu.Lock()
			r.timedOut = what
			r.mu.Unlock()
			r.cancel()
		}
		return nil, fmt.Errorf("exec %s: stopped at the deadline of %s", name, what)
	}
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	case err != nil:
		return &tg.Error{Value: &tg.String{Value: fmt.Sprintf("exec %s: %v", name, err)}}, nil
	}
	return &tg.Map{Value: map[string]tg.Object{
		"exit_code": &tg.Int{Value: int64(code)},
		"stdout":    &tg.String{Value: stdout.String()},
		"stderr":    &tg.String{Value: stderr.String()},
	}}, nil
}

func (r *run) fnExec(args ...tg.Object) (tg.Object, error) {
	if len(args) < 1 || len(args) > 2 {
		return nil, tg.ErrWrongNumArguments
	}
	name, err := str(args, 0, "cmd")
	if err != nil {
		return nil, err
	}
	var cmdArgs []string
	if len(args) == 2 {
		if cmdArgs, err = strs(args[1], "args"); err != nil {
			return nil, err
		}
	}
	return r.command(name, cmdArgs)
}

func (r *run) fnShell(args ...tg.Object) (tg.Object, error) {
	if len(args) != 1 {
		return nil, tg.ErrWrongNumArguments
	}
	line, err := str(args, 0, "command")
	if err != nil {
		return nil, err
	}
	return r.command("/bin/sh", []string{"-c", line})
}

func (r *run) resolve(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.dir, p)
}

func (r *run) fnGlob(args ...tg.Object) (tg.Object, error) {
	pat, err := str(args, 0, "pattern")
	if err != nil {
		return nil, err
	}
	files, err := script.Glob(r.dir, pat)
	if err != nil {
		return nil, err
	}
	return strArray(files), nil
}

func (r *run) fnHashFile(args ...tg.Object) (tg.Object, error) {
	p, err := str(args, 0, "path")
	if err != nil {
		return nil, err
	}
	f, err := os.Open(r.resolve(p))
	if err != nil {
		return &tg.Error{Value: &tg.String{Value: err.Error()}}, nil
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return &tg.Error{Value: &tg.String{Value: err.Error()}}, nil
	}
	return &tg.String{Value: hex.EncodeToString(h.Sum(nil))}, nil
}

func (r *run) fnReadFile(args ...tg.Object) (tg.Object, error) {
	p, err := str(args, 0, "path")
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(r.resolve(p))
	if err != nil {
		return &tg.Error{Value: &tg.String{Value: err.Error()}}, nil
	}
	if len(b) > tg.MaxStringLen {
		return nil, tg.ErrStringLimit
	}
	return &tg.String{Value: string(b)}, nil
}

func content(o tg.Object) ([]byte, error) {
	switch v := o.(type) {
	case *tg.String:
		return []byte(v.Value), nil
	case *tg.Bytes:
		return v.Value, nil
	}
	return nil, tg.ErrInvalidArgumentType{Name: "content", Expected: "string or bytes", Found: o.TypeName()}
}

func (r *run) fnWriteFile(args ...tg.Object) (tg.Object, error) {
	if len(args) != 2 {
		return nil, tg.ErrWrongNumArguments
	}
	p, err := str(args, 0, "path")
	if err != nil {
		return nil, err
	}
	b, err := content(args[1])
	if err != nil {
		return nil, err
	}
	full := r.resolve(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return &tg.Error{Value: &tg.String{Value: err.Error()}}, nil
	}
	if err := os.WriteFile(full, b, 0o644); err != nil {
		return &tg.Error{Value: &tg.String{Value: err.Error()}}, nil
	}
	return tg.TrueValue, nil
}

func (r *run) fnExists(args ...tg.Object) (tg.Object, error) {
	p, err := str(args, 0, "path")
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(r.resolve(p)); err == nil {
		return tg.TrueValue, nil
	}
	return tg.FalseValue, nil
}

// maxCacheValue bounds what fabrik.cache.get reads into the VM.
const maxCacheValue = 256 << 20

func (r *run) fnCacheGet(args ...tg.Object) (tg.Object, error) {
	key, err := str(args, 0, "key")
	if err != nil {
		return nil, err
	}
	body, size, found, err := r.opts.Backend.Get(r.ctx, backend.KV, key)
	if err != nil {
		return nil, fmt.Errorf("cache.get %s: %w", key, err)
	}
	if !found {
		return tg.UndefinedValue, nil
	}
	defer body.Close()
	if size > maxCacheValue {
		return nil, fmt.Errorf("cache.get %s: %d bytes is more than a recipe may read", key, size)
	}
	b, err := io.ReadAll(io.LimitReader(body, maxCacheValue))
	if err != nil {
		return nil, fmt.Errorf("cache.get %s: %w", key, err)
	}
	return &tg.String{Value: string(b)}, nil
}

func (r *run) fnCachePut(args ...tg.Object) (tg.Object, error) {
	if len(args) != 2 {
		return nil, tg.ErrWrongNumArguments
	}
	key, err := str(args, 0, "key")
	if err != nil {
		return nil, err
	}
	b, err := content(args[1])
	if err != nil {
		return nil, err
	}
	if err := r.opts.Backend.Put(r.ctx, backend.KV, key, bytes.NewReader(b), int64(len(b))); err != nil {
		return nil, fmt.Errorf("cache.put %s: %w", key, err)
	}
	return tg.TrueValue, nil
}

func (r *run) fnCacheHas(args ...tg.Object) (tg.Object, error) {
	key, err := str(args, 0, "key")
	if err != nil {
		return nil, err
	}
	_, found, err := r.opts.Backend.Has(r.ctx, backend.KV, key)
	if err != nil {
		return nil, fmt.Errorf("cache.has %s: %w", key, err)
	}
	if found {
		return tg.TrueValue, nil
	}
	return tg.FalseValue, nil
}

func (r *run) fnConfig(...tg.Object) (tg.Object, error) {
	m := map[string]any{"recipe_dir": r.dir}
	for k, v := range r.opts.Config {
		m[k] = v
	}
	o, err := tg.FromInterface(m)
	if err != nil {
		return nil, err
	}
	return o, nil
}

func (r *run) fnLog(args ...tg.Object) (tg.Object, error) {
	parts := printArgs(args)
	s := make([]string, len(parts))
	for i, p := range parts {
		s[i] = fmt.Sprint(p)
	}
	fmt.Fprintf(writerFunc(r.writeStderr), "[fabrik] %s\n", strings.Join(s, " "))
	return tg.UndefinedValue, nil
}
