// Package tengo runs portable recipes written in Tengo
// (github.com/d5/tengo/v2): a script declaring targets with
// fabrik.target(name, meta, func), a default, and metadata (inputs,
// outputs, env, cache ttl) per recipe and per target. Each target is a
// cached step keyed by the recipe's source, the target's name, its inputs,
// env values, its dependencies' keys and the arguments; hits restore
// outputs and replay output exactly like script recipes.
//
// The VM sees only the fabrik module and the stdlib modules fmt, text,
// json, times, math and enum (os only when recipes.allow_os is set). A
// target's wall-clock timeout and the run's allocation limit stop runaway
// recipes; commands started by fabrik.exec are killed at the same deadline,
// since Tengo's abort waits for a blocking Go call to return.
package tengo

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	tg "github.com/d5/tengo/v2"

	"github.com/tuist/fabrik-node/recipe/backend"
	"github.com/tuist/fabrik-node/recipe/runner"
	"github.com/tuist/fabrik-node/recipe/script"
)

//go:embed module.tengo
var fabrikModule []byte

// Defaults for the limits (recipes.timeout and recipes.max_allocs).
const (
	DefaultTimeout   = 30 * time.Minute
	DefaultMaxAllocs = 10_000_000
)

// Options configure a recipe run.
type Options struct {
	Backend             backend.Backend
	Stdout, Stderr, Log io.Writer
	Verbose, NoCache    bool
	DryRun              bool
	// Clean deletes the selected target's entry before running it.
	Clean bool
	// Timeout bounds each target (and the recipe's top level); MaxAllocs
	// the objects the whole run may allocate.
	Timeout   time.Duration
	MaxAllocs int64
	// AllowOS adds Tengo's os module.
	AllowOS bool
	// Config is what fabrik.config() returns.
	Config map[string]any
	Getenv func(string) (string, bool)
	Env    []string
}

// TargetInfo describes a target for --list.
type TargetInfo struct {
	Name, Description string
	Default           bool
}

// meta is recipe-level or target-level metadata.
type meta struct {
	Description string
	Inputs      []string
	Outputs     []string
	Env         []string
	Deps        []string
	TTL         time.Duration
	NoCache     bool
}

type target struct {
	name    string
	meta    meta
	wrapper tg.Object
}

// run is one invocation's state, shared by the native functions (called
// on the VM's goroutine) and the watchdog.
type run struct {
	opts     Options
	path     string
	dir      string
	source   []byte
	args     []string
	selected string
	list     bool
	runner   *runner.Runner
	ctx      context.Context
	cancel   context.CancelFunc

	recipe  meta
	targets map[string]*target
	order   []string
	dflt    string
	keys    map[string]string // target -> key hex, once begun
	done    map[string]bool
	// resolving are targets whose dependencies are being run.
	resolving []string

	mu       sync.Mutex
	running  []*frame // targets whose body runs, innermost last
	topLevel time.Time
	timedOut string
}

// frame is a target whose body is running.
type frame struct {
	name     string
	step     runner.Step
	start    time.Time
	deadline time.Time
	stdout   bytes.Buffer
	stderr   bytes.Buffer
}

// Run runs target (the default when "") of the recipe at path and returns
// the exit code. An error is a recipe that failed: a target that returned
// an error, a runtime error, a limit hit; nothing of a failed target is
// stored.
func Run(ctx context.Context, path, targetName string, args []string, opts Options) (int, error) {
	r, err := newRun(ctx, path, opts)
	if err != nil {
		return 1, err
	}
	defer r.cancel()
	r.selected, r.args = targetName, args
	if err := r.exec(); err != nil {
		return 1, err
	}
	return 0, nil
}

// List returns the recipe's targets in declaration order.
func List(ctx context.Context, path string, opts Options) ([]TargetInfo, error) {
	r, err := newRun(ctx, path, opts)
	if err != nil {
		return nil, err
	}
	defer r.cancel()
	r.list = true
	if err := r.exec(); err != nil {
		return nil, err
	}
	var out []TargetInfo
	for _, n := range r.order {
		out = append(out, TargetInfo{Name: n, Description: r.targets[n].meta.Description, Default: n == r.defaultTarget()})
	}
	return out, nil
}

func newRun(ctx context.Context, path string, opts Options) (*run, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read recipe: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxAllocs <= 0 {
		opts.MaxAllocs = DefaultMaxAllocs
	}
	if opts.Getenv == nil {
		opts.Getenv = os.LookupEnv
	}
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	for _, w := range []*io.Writer{&opts.Stdout, &opts.Stderr, &opts.Log} {
		if *w == nil {
			*w = io.Discard
		}
	}
	r := &run{opts: opts, path: path, dir: filepath.Dir(abs), source: src,
		targets: map[string]*target{}, keys: map[string]string{}, done: map[string]bool{}}
	r.ctx, r.cancel = context.WithCancel(ctx)
	r.runner = runner.New(runner.Options{
		Backend: opts.Backend, Stdout: writerFunc(r.writeStdout), Stderr: writerFunc(r.writeStderr), Log: opts.Log,
		Verbose: opts.Verbose, NoCache: opts.NoCache, Getenv: opts.Getenv, Env: opts.Env,
	})
	return r, nil
}

// driver is appended to the recipe: once the top level has declared the
// targets, the VM calls the selected one (Go cannot call a Tengo function).
const driver = "\n__fabrik_main__ := import(\"__fabrik\").main()\nif __fabrik_main__ != undefined { __fabrik_main__() }\n"

func (r *run) exec() error {
	sc := tg.NewScript(append(append([]byte(nil), r.source...), driver...))
	sc.SetImports(r.modules())
	sc.SetMaxAllocs(r.opts.MaxAllocs)
	r.mu.Lock()
	r.topLevel = time.Now()
	r.mu.Unlock()
	stop := r.watchdog()
	_, err := sc.RunContext(r.ctx)
	stop()
	if err == nil {
		return nil
	}
	r.mu.Lock()
	timedOut := r.timedOut
	r.mu.Unlock()
	switch {
	case timedOut != "":
		return fmt.Errorf("%s: %s exceeded its timeout of %s (recipes.timeout); stopped, nothing of it stored", r.path, timedOut, r.opts.Timeout)
	case errors.Is(err, tg.ErrObjectAllocLimit):
		return fmt.Errorf("%s: the recipe exceeded its allocation limit of %d objects (recipes.max_allocs); stopped, nothing of the running target stored", r.path, r.opts.MaxAllocs)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: stopped; nothing of the running target stored", r.path)
	}
	return fmt.Errorf("%s: %w", r.path, err)
}

// watchdog cancels the run when the innermost running target (or the top
// level) passes its deadline. It returns a function that stops it.
func (r *run) watchdog() func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-r.ctx.Done():
				return
			case now := <-t.C:
				if name, ok := r.overdue(now); ok {
					r.mu.Lock()
					r.timedOut = name
					r.mu.Unlock()
					r.cancel()
					return
				}
			}
		}
	}()
	return func() { close(done) }
}

// deadline is the earliest deadline of what is running: a target's own
// and those of the targets that called it.
func (r *run) deadline() (time.Time, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, name := r.topLevel.Add(r.opts.Timeout), "the recipe's top level"
	if len(r.running) > 0 {
		d, name = r.running[0].deadline, "target "+r.running[0].name
		for _, f := range r.running[1:] {
			if f.deadline.Before(d) {
				d, name = f.deadline, "target "+f.name
			}
		}
	}
	return d, name
}

func (r *run) overdue(now time.Time) (string, bool) {
	d, name := r.deadline()
	return name, now.After(d)
}

// writeStdout and writeStderr send a target's output to the terminal and
// to the capture of every running target (a target called from another's
// body is part of that body's output).
func (r *run) writeStdout(p []byte) (int, error) {
	r.mu.Lock()
	for _, f := range r.running {
		f.stdout.Write(p)
	}
	r.mu.Unlock()
	return r.opts.Stdout.Write(p)
}

func (r *run) writeStderr(p []byte) (int, error) {
	r.mu.Lock()
	for _, f := range r.running {
		f.stderr.Write(p)
	}
	r.mu.Unlock()
	return r.opts.Stderr.Write(p)
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

func (r *run) defaultTarget() string {
	if r.dflt != "" {
		return r.dflt
	}
	if len(r.order) == 1 {
		return r.order[0]
	}
	return ""
}

// key computes a target's key from what it declares, after its
// dependencies have begun (their keys are part of it).
func (r *run) key(t *target) (script.Key, meta, error) {
	rec := r.recipe
	if t.name != r.defaultTarget() {
		// Recipe-level outputs are the recipe's product: the default
		// target's. Other targets would otherwise archive (or fail on)
		// outputs they do not make.
		rec.Outputs = nil
	}
	m := merge(rec, t.meta)
	var parts []script.Part
	add := func(kind, name, value string) {
		parts = append(parts, script.Part{Kind: kind, Name: name, Value: value})
	}
	add("recipe", "", fmt.Sprintf("%x", sha256Sum(r.source)))
	add("target", t.name, "")
	for _, pat := range m.Inputs {
		files, err := script.Glob(r.dir, pat)
		if err != nil {
			return script.Key{}, m, fmt.Errorf("input %q: %w", pat, err)
		}
		hashes, err := script.HashFiles(r.dir, files, script.HashContent)
		if err != nil {
			return script.Key{}, m, fmt.Errorf("input %q: %w", pat, err)
		}
		add("input-pattern", pat, "content")
		for i, f := range files {
			add("input", f, hashes[i])
		}
	}
	for _, o := range m.Outputs {
		add("output", o, "")
	}
	env := append([]string(nil), m.Env...)
	sort.Strings(env)
	for _, name := range env {
		if v, ok := r.opts.Getenv(name); ok {
			add("env", name, "="+v)
		} else {
			add("env", name, "(unset)")
		}
	}
	for _, d := range m.Deps {
		add("dependency", d, r.keys[d])
	}
	for i, a := range r.args {
		add("arg", fmt.Sprint(i), a)
	}
	return script.Key{Hex: script.HashParts("fabrik-tengo-key-v1", parts), Parts: parts}, m, nil
}

// merge combines recipe-level and target-level metadata: inputs, outputs
// and env add up, the target's ttl wins.
func merge(rec, t meta) meta {
	m := t
	m.Inputs = append(append([]string(nil), rec.Inputs...), t.Inputs...)
	m.Outputs = append(append([]string(nil), rec.Outputs...), t.Outputs...)
	m.Env = append(append([]string(nil), rec.Env...), t.Env...)
	if m.TTL == 0 {
		m.TTL = rec.TTL
	}
	m.NoCache = rec.NoCache || t.NoCache
	return m
}

func label(hex string) string { return "tengo-" + hex[:16] }

func (r *run) stepName(target string) string { return r.path + ":" + target }

// begin decides a target's fate: "done" (already ran in this invocation,
// or a dry run), "hit" (restored), or "run" (the VM runs its body next).
func (r *run) begin(name string) (string, error) {
	t, ok := r.targets[name]
	if !ok {
		return "", fmt.Errorf("unknown target %q", name)
	}
	if r.done[name] {
		return "done", nil
	}
	r.mu.Lock()
	for i, f := range r.running {
		if f.name == name {
			cycle := []string{}
			for _, g := range r.running[i:] {
				cycle = append(cycle, g.name)
			}
			r.mu.Unlock()
			return "", fmt.Errorf("target cycle: %s -> %s", strings.Join(cycle, " -> "), name)
		}
	}
	r.mu.Unlock()
	k, m, err := r.key(t)
	if err != nil {
		return "", fmt.Errorf("target %s: %w", name, err)
	}
	r.keys[name] = k.Hex
	if r.opts.DryRun {
		fmt.Fprintf(r.opts.Log, "[fabrik] Cache key: %s (%s)\n[fabrik]   key %s\n", label(k.Hex), r.stepName(name), k.Hex)
		for _, p := range k.Parts {
			fmt.Fprintf(r.opts.Log, "[fabrik]   %-17s %s %s\n", p.Kind, p.Name, p.Value)
		}
		r.done[name] = true
		return "done", nil
	}
	st := runner.Step{
		Label: label(k.Hex), Key: k.Hex, Name: r.stepName(name), Dir: r.dir, Outputs: cleanOutputs(m.Outputs),
		TTL: m.TTL, Disabled: m.NoCache, Clean: r.opts.Clean && name == r.selectedName(),
	}
	start := time.Now()
	_, hit, err := r.runner.Begin(r.ctx, st, start)
	if err != nil {
		return "", err
	}
	if hit {
		r.done[name] = true
		return "hit", nil
	}
	r.mu.Lock()
	r.running = append(r.running, &frame{name: name, step: st, start: start, deadline: start.Add(r.opts.Timeout)})
	r.mu.Unlock()
	return "run", nil
}

// end stores a target whose body returned result (an error value fails
// it: reported, not stored, and the run stops).
func (r *run) end(name string, result tg.Object) error {
	r.mu.Lock()
	n := len(r.running)
	if n == 0 || r.running[n-1].name != name {
		r.mu.Unlock()
		return fmt.Errorf("target %s ended out of order", name)
	}
	f := r.running[n-1]
	r.running = r.running[:n-1]
	r.mu.Unlock()
	r.done[name] = true
	exit := 0
	var failure error
	if e, ok := result.(*tg.Error); ok {
		exit = 1
		failure = fmt.Errorf("target %s failed: %s", name, e.Value.String())
		fmt.Fprintf(r.opts.Stderr, "[fabrik] %v\n", failure)
	}
	_, err := r.runner.Finish(r.ctx, f.step, f.start, exit, nil, f.stdout.Bytes(), f.stderr.Bytes())
	if err != nil {
		return err
	}
	return failure
}

func (r *run) selectedName() string {
	if r.selected != "" {
		return r.selected
	}
	return r.defaultTarget()
}

func cleanOutputs(outs []string) []string {
	var c []string
	for _, o := range outs {
		c = append(c, filepath.ToSlash(filepath.Clean(o)))
	}
	return c
}
