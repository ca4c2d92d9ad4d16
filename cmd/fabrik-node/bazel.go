package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tuist/fabrik-node/activate"
	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/node"
)

// bazelCommand runs `fabrik-node bazel [config flags] -- <bazel args>`: it
// starts an edge serving only REAPI on a loopback port for the duration of
// the build, injects --remote_cache (and the node's token) right after the
// bazel command verb, and exits with bazel's exit code.
func bazelCommand(args []string, cwd string) int {
	var own, bazelArgs []string
	if i := indexOf(args, "--"); i >= 0 {
		own, bazelArgs = args[:i], args[i+1:]
	} else {
		own, bazelArgs = nil, args
	}
	if len(bazelArgs) == 0 {
		return fail("bazel: no bazel arguments; usage: fabrik-node bazel [--config-...] -- build //...")
	}
	home, _ := os.UserHomeDir()
	loaded, err := config.Load(config.LoadOptions{Role: config.RoleEdge, Args: own, Env: os.Environ(), Cwd: cwd, Home: home})
	if err != nil {
		return fail("%v", err)
	}
	cfg := loaded.Config
	bin := os.Getenv("FABRIK_BAZEL_BIN")
	if bin == "" {
		bin = "bazel"
	}
	// In an activated shell the project's daemon already serves REAPI:
	// use it, so the cache outlives the build and is shared with the
	// shell's other tools.
	if s, _ := activatedDaemon(cwd); s != nil && os.Getenv(activate.DaemonVar) != "" && s.URL("grpc", "grpc") != "" {
		inject := []string{"--remote_cache=" + s.URL("grpc", "grpc")}
		if tok, err := cfg.Auth.ResolveToken(); err == nil && tok != "" {
			inject = append(inject, "--remote_header=Authorization=Bearer "+tok)
		}
		fmt.Fprintf(os.Stderr, "[fabrik] cache for bazel: daemon %s on %s\n", s.ID, s.URL("grpc", "grpc"))
		return runChild(bin, injectAfterVerb(bazelArgs, inject))
	}
	bind := cfg.BuildTools.Bazel.Bind
	if bind == "" {
		bind = "127.0.0.1"
	}
	cfg.BuildTools.Enabled = []string{"bazel"}
	cfg.BuildTools.GRPCBind = net.JoinHostPort(bind, strconv.Itoa(cfg.BuildTools.Bazel.Port))
	// A one-shot edge must not collide with a daemon on the usual ports.
	cfg.Observability.HealthBind, cfg.Observability.APIBind, cfg.Observability.MetricsBind = "", "", ""
	cfg.Fabrik.Enabled = false
	noRecipes := false
	cfg.Recipes.Enabled = &noRecipes

	level := new(slog.LevelVar)
	level.Set(slog.LevelWarn)
	if l := cfg.Observability.LogLevel; l == "debug" {
		setLevel(level, l)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	n, err := node.New(node.Options{Role: config.RoleEdge, Config: cfg, Logger: log})
	if err != nil {
		return fail("%v", err)
	}
	if err := n.Start(); err != nil {
		return fail("bazel: starting the cache failed: %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Stop(ctx)
	}()

	inject := []string{"--remote_cache=grpc://" + n.Addr("grpc")}
	if tok, err := cfg.Auth.ResolveToken(); err == nil && tok != "" {
		inject = append(inject, "--remote_header=Authorization=Bearer "+tok)
	}
	fmt.Fprintf(os.Stderr, "[fabrik] cache for bazel on grpc://%s\n", n.Addr("grpc"))
	return runChild(bin, injectAfterVerb(bazelArgs, inject))
}

// injectAfterVerb inserts flags right after bazel's command verb (the first
// argument that is not a startup option), where command options belong.
// Without a verb the flags are not added: `bazel --version` takes none.
func injectAfterVerb(args, flags []string) []string {
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			out := append([]string{}, args[:i+1]...)
			out = append(out, flags...)
			return append(out, args[i+1:]...)
		}
	}
	return args
}

// runChild runs bin with args, forwarding SIGINT/SIGTERM, and returns its
// exit code.
func runChild(bin string, args []string) int {
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "[fabrik] bazel: cannot start %s: %v\n", bin, err)
		return 127
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			cmd.Process.Signal(s)
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
					return 128 + int(st.Signal())
				}
				return ee.ExitCode()
			}
			if err != nil {
				return 1
			}
			return 0
		}
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
