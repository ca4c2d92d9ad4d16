package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tuist/fabrik-node/recipe/runner"
)

const runUsage = `usage: fabrik-node run [--dry-run] [--verbose] [--no-cache] [--clean] [--url URL] [--config-...] SCRIPT [-- ARGS...]
       fabrik-node run [flags] RECIPE.recipe.tengo [TARGET] [-- ARGS...]
       fabrik-node run --list RECIPE.recipe.tengo`

// runCommand is `fabrik-node run`: a script recipe (annotated with
// #FABRIK) or a Tengo recipe, cached through the node.
func runCommand(args []string, cwd string) int {
	var dryRun, noCache, clean, list bool
	f, rest, err := parseRecipeFlags(args, map[string]*bool{"--dry-run": &dryRun, "--no-cache": &noCache, "--clean": &clean, "--list": &list})
	if err != nil {
		return fail("run: %v\n%s", err, runUsage)
	}
	var pos, scriptArgs []string
	for i, a := range rest {
		if a == "--" {
			scriptArgs = rest[i+1:]
			break
		}
		pos = append(pos, a)
	}
	if len(pos) == 0 {
		return fail("run: no recipe given\n%s", runUsage)
	}
	recipePath := pos[0]
	if isTengo(recipePath) {
		target := ""
		if len(pos) > 1 {
			target = pos[1]
		}
		if len(pos) > 2 {
			return fail("run: unexpected %q (script arguments go after --)\n%s", pos[2], runUsage)
		}
		return runTengo(tengoRun{flags: f, path: recipePath, target: target, args: scriptArgs, dryRun: dryRun, noCache: noCache, clean: clean, list: list}, cwd)
	}
	if len(pos) > 1 {
		return fail("run: unexpected %q (script arguments go after --)\n%s", pos[1], runUsage)
	}
	if list {
		return fail("run: --list is for Tengo recipes (*.recipe.tengo)")
	}
	if _, err := os.Stat(recipePath); err != nil {
		return fail("run: %v", err)
	}

	opts := runner.Options{Stdout: os.Stdout, Stderr: os.Stderr, Log: os.Stderr, Stdin: os.Stdin, Verbose: f.verbose, NoCache: noCache, DryRun: dryRun}
	if dryRun {
		// A dry run reads nothing from the cache: the key is the answer.
		opts.Log = os.Stdout
		code, err := runner.New(opts).RunScript(context.Background(), recipePath, runner.ScriptOptions{Args: scriptArgs})
		if err != nil {
			return fail("%v", err)
		}
		return code
	}
	sess, err := openRecipeBackend(f, cwd)
	if err != nil {
		return fail("run: %v", err)
	}
	defer sess.close()
	opts.Backend = sess.backend
	if f.verbose {
		fmt.Fprintf(os.Stderr, "[fabrik] cache: %s\n", sess.backend.Describe())
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	code, err := runner.New(opts).RunScript(ctx, recipePath, runner.ScriptOptions{Args: scriptArgs, Clean: clean})
	if err != nil {
		fmt.Fprintf(os.Stderr, "[fabrik] error: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func isTengo(path string) bool { return strings.HasSuffix(path, ".tengo") }
