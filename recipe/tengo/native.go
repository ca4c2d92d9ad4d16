package tengo

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	tg "github.com/d5/tengo/v2"
	"github.com/d5/tengo/v2/stdlib"

	"github.com/tuist/fabrik-node/config"
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
