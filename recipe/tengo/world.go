package tengo

// world.go holds the fabrik module's functions that reach outside the
// VM: commands, files, the cache, the config and the log; native.go holds
// the module's wiring and the recipe/target declarations.

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

	"github.com/tuist/fabrik-node/recipe/backend"
	"github.com/tuist/fabrik-node/recipe/script"
)

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
