package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tuist/fabrik-node/recipe/script"
)

// Runner runs script recipes (and, through Do, any step) against one
// backend. One Runner serves one `fabrik-node run`: it remembers which
// scripts already ran, so a dependency shared by two scripts runs once.
type Runner struct {
	opts Options
	done map[string]*scriptResult
}

type scriptResult struct {
	s    *script.Script
	exit int
	err  error
}

// New returns a Runner.
func New(opts Options) *Runner {
	if opts.Getenv == nil {
		opts.Getenv = os.LookupEnv
	}
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	return &Runner{opts: opts, done: map[string]*scriptResult{}}
}

// ScriptOptions are the per-invocation flags of the top-level script.
type ScriptOptions struct {
	Args []string
	// Clean deletes the script's entry first (dependencies keep theirs).
	Clean bool
}

// RunScript runs the script at path after its dependencies, and returns
// the exit code `fabrik-node run` exits with: the first failing script's,
// or 0. An error is a recipe that cannot run (malformed annotations, a
// dependency cycle, a step stopped by a timeout or signal).
func (r *Runner) RunScript(ctx context.Context, path string, o ScriptOptions) (int, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, err
	}
	res := r.run(ctx, abs, path, o, nil)
	return res.exit, res.err
}

// Key computes a script's key as a run would (dependencies' outputs as they
// are on disk now), for --dry-run and `cache status`.
func (r *Runner) Key(path string, args []string) (*script.Script, script.Key, error) {
	s, err := script.Load(path)
	if err != nil {
		return nil, script.Key{}, err
	}
	extra, err := r.extraInputs(s)
	if err != nil {
		return nil, script.Key{}, err
	}
	k, err := script.ComputeKey(s, script.KeyOptions{Args: args, Getenv: r.opts.Getenv, Extra: extra, RuntimeVersion: r.opts.RuntimeVersion})
	return s, k, err
}

// extraInputs lists the outputs of use-outputs dependencies, relative to
// the dependent's directory.
func (r *Runner) extraInputs(s *script.Script) ([]string, error) {
	var extra []string
	for _, d := range s.Depends {
		if !d.UseOutputs {
			continue
		}
		dep, err := script.Load(filepath.Join(s.Dir, d.Path))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: depends %q: %w", s.Path, d.Line, d.Path, err)
		}
		for _, out := range dep.Outputs {
			rel, err := filepath.Rel(s.Dir, filepath.Join(dep.Dir, out))
			if err != nil {
				return nil, err
			}
			extra = append(extra, filepath.ToSlash(rel))
		}
	}
	return extra, nil
}

func (r *Runner) run(ctx context.Context, abs, display string, o ScriptOptions, stack []string) *scriptResult {
	for i, p := range stack {
		if p == abs {
			cycle := append(append([]string(nil), stack[i:]...), abs)
			for j := range cycle {
				cycle[j] = relName(cycle[j])
			}
			return &scriptResult{exit: 1, err: fmt.Errorf("dependency cycle: %s", strings.Join(cycle, " -> "))}
		}
	}
	if res, ok := r.done[abs]; ok {
		return res
	}
	res := r.runOnce(ctx, abs, display, o, append(stack, abs))
	r.done[abs] = res
	return res
}

func (r *Runner) runOnce(ctx context.Context, abs, display string, o ScriptOptions, stack []string) *scriptResult {
	s, err := script.Load(display)
	if err != nil {
		return &scriptResult{exit: 1, err: err}
	}
	for _, d := range s.Depends {
		dep := filepath.Join(s.Dir, d.Path)
		res := r.run(ctx, dep, relName(dep), ScriptOptions{}, stack)
		if res.err != nil || res.exit != 0 {
			if res.err == nil {
				fmt.Fprintf(r.opts.Log, "[fabrik] %s: dependency %s failed (exit %d); not running it\n", s.Path, d.Path, res.exit)
			}
			return &scriptResult{s: s, exit: max(res.exit, 1), err: res.err}
		}
	}
	_, key, err := r.Key(display, o.Args)
	if err != nil {
		return &scriptResult{s: s, exit: 1, err: err}
	}
	if r.opts.DryRun {
		r.printDryRun(s, key)
		return &scriptResult{s: s}
	}
	out, err := r.Do(ctx, Step{
		Label: key.Short(), Key: key.Hex, Name: s.Path, Dir: s.Dir, Outputs: s.Outputs,
		TTL: s.TTL, Disabled: s.CacheDisabled, Clean: o.Clean,
		Run: func(ctx context.Context, stdout, stderr io.Writer) (int, error) {
			return r.exec(ctx, s, o.Args, stdout, stderr)
		},
	})
	return &scriptResult{s: s, exit: out.ExitCode, err: err}
}

func (r *Runner) printDryRun(s *script.Script, k script.Key) {
	fmt.Fprintf(r.opts.Log, "[fabrik] Cache key: %s (%s)\n", k.Short(), s.Path)
	fmt.Fprintf(r.opts.Log, "[fabrik]   key %s\n", k.Hex)
	for _, p := range k.Parts {
		fmt.Fprintf(r.opts.Log, "[fabrik]   %-17s %s %s\n", p.Kind, p.Name, p.Value)
	}
	if s.CacheDisabled {
		fmt.Fprintf(r.opts.Log, "[fabrik]   cache disabled: the script would run and nothing would be stored\n")
	}
}

// ExitTimeout is the exit code of a step killed by its exec timeout, as
// timeout(1) reports it.
const ExitTimeout = 124

// exec runs the script in its own process group, so a timeout or a
// cancelled run kills everything it started, not just the interpreter.
func (r *Runner) exec(ctx context.Context, s *script.Script, args []string, stdout, stderr io.Writer) (int, error) {
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	var cmd *exec.Cmd
	if s.Shell {
		line := s.Runtime
		if len(s.RuntimeArgs) > 0 {
			line += " " + strings.Join(s.RuntimeArgs, " ")
		}
		line += ` "$0" "$@"`
		cmd = exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", line, s.Abs}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, s.Runtime, append(append(append([]string(nil), s.RuntimeArgs...), s.Abs), args...)...)
	}
	cmd.Dir = filepath.Join(s.Dir, s.Cwd)
	cmd.Env = r.opts.Env
	cmd.Stdin = r.opts.Stdin
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group lets a timeout or a stopped run kill all the
	// script started. Not on a terminal: a background group reading the
	// tty would be stopped by SIGTTIN, and Ctrl-C reaches the script
	// directly there anyway.
	group := !isTerminal(r.opts.Stdin)
	if group {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	}
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	// Whatever the script left running in its group goes with it.
	if group && cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return ExitTimeout, fmt.Errorf("%s: timed out after %s (exec timeout); nothing cached", s.Path, s.Timeout)
	case ctx.Err() != nil:
		return 130, fmt.Errorf("%s: stopped (%v); nothing cached", s.Path, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 127, fmt.Errorf("%s: cannot run %s: %w", s.Path, s.Runtime, err)
	}
	return 0, nil
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok || f == nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	// /dev/null is a character device too (a CI job's stdin, or none).
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}

// relName shows a path relative to the working directory when it can.
func relName(abs string) string {
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, abs); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return abs
}
