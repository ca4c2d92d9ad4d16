package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/recipe/tengo"
)

type tengoRun struct {
	flags                        recipeFlags
	path, target                 string
	args                         []string
	dryRun, noCache, clean, list bool
}

// runTengo runs (or lists) a Tengo recipe.
func runTengo(t tengoRun, cwd string) int {
	if _, err := os.Stat(t.path); err != nil {
		return fail("run: %v", err)
	}
	opts := tengo.Options{Stdout: os.Stdout, Stderr: os.Stderr, Log: os.Stderr, Verbose: t.flags.verbose,
		NoCache: t.noCache, DryRun: t.dryRun, Clean: t.clean}
	var cfg config.Config
	if t.list || t.dryRun {
		// Neither reads the cache; the config still gives the limits.
		home, _ := os.UserHomeDir()
		loaded, err := config.Load(config.LoadOptions{Role: config.RoleEdge, Args: t.flags.configArgs, Env: os.Environ(), Cwd: cwd, Home: home})
		if err != nil {
			return fail("run: %v", err)
		}
		cfg = loaded.Config
		opts.Log = os.Stdout
	} else {
		sess, err := openRecipeBackend(t.flags, cwd)
		if err != nil {
			return fail("run: %v", err)
		}
		defer sess.close()
		cfg = sess.cfg
		opts.Backend = sess.backend
		if t.flags.verbose {
			fmt.Fprintf(os.Stderr, "[fabrik] cache: %s\n", sess.backend.Describe())
		}
	}
	opts.Timeout = time.Duration(cfg.Recipes.Timeout)
	opts.MaxAllocs = int64(cfg.Recipes.MaxAllocs)
	opts.AllowOS = cfg.Recipes.AllowOS
	opts.Config = recipeConfig(cfg, opts)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if t.list {
		targets, err := tengo.List(ctx, t.path, opts)
		if err != nil {
			return fail("run --list: %v", err)
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		for _, tg := range targets {
			mark := ""
			if tg.Default {
				mark = " (default)"
			}
			fmt.Fprintf(w, "%s%s\t%s\n", tg.Name, mark, tg.Description)
		}
		w.Flush()
		return 0
	}
	code, err := tengo.Run(ctx, t.path, t.target, t.args, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "[fabrik] error: %v\n", err)
	}
	return code
}

// recipeConfig is what fabrik.config() shows a recipe.
func recipeConfig(cfg config.Config, opts tengo.Options) map[string]any {
	var ups []any
	for _, u := range cfg.Upstream {
		ups = append(ups, u.URL)
	}
	node := "none (dry run or --list)"
	if opts.Backend != nil {
		node = opts.Backend.Describe()
	}
	return map[string]any{
		"cache_dir":  cfg.Cache.Dir,
		"upstreams":  ups,
		"role":       string(config.RoleEdge),
		"node":       node,
		"timeout":    time.Duration(cfg.Recipes.Timeout).String(),
		"max_allocs": cfg.Recipes.MaxAllocs,
	}
}
