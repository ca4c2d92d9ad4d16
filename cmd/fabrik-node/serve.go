package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/node"
)

// serve runs a node until SIGINT/SIGTERM, reloading on SIGHUP.
func serve(args []string, cwd string) int {
	role := config.Role(os.Getenv("FABRIK_ROLE"))
	if role == "" {
		role = config.RoleEdge
	}
	configArgs, rest := config.SplitArgs(args)
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--role" && i+1 < len(rest):
			role = config.Role(rest[i+1])
			i++
		case strings.HasPrefix(a, "--role="):
			role = config.Role(strings.TrimPrefix(a, "--role="))
		default:
			return fail("unknown argument %q (see fabrik-node --help)", a)
		}
	}
	if role != config.RoleEdge && role != config.RoleRegional {
		return fail("unknown role %q: use edge or regional", role)
	}
	home, _ := os.UserHomeDir()
	opts := config.LoadOptions{Role: role, Args: configArgs, Env: os.Environ(), Cwd: cwd, Home: home}
	loaded, err := config.Load(opts)
	if err != nil {
		return fail("%v", err)
	}
	cfg := loaded.Config
	if cfg.Runtime.WorkerThreads > 0 {
		runtime.GOMAXPROCS(cfg.Runtime.WorkerThreads)
	}
	level := new(slog.LevelVar)
	setLevel(level, cfg.Observability.LogLevel)
	log := newLogger(cfg.Observability.LogFormat, level)
	slog.SetDefault(log)
	if loaded.Path != "" {
		log.Info("config loaded", "path", loaded.Path)
	}

	n, err := node.New(node.Options{Role: role, Config: cfg, Logger: log})
	if err != nil {
		return fail("%v", err)
	}
	if addr := os.Getenv("FABRIK_PPROF_BIND"); addr != "" {
		startPprof(addr, log)
	}
	n.SetLogLevelFunc(level.Set)
	if err := n.Start(); err != nil {
		log.Error("node failed to start", "err", err)
		return 1
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			next, changed, refused, err := config.Reload(opts, &cfg)
			if err != nil {
				log.Error("config reload failed; keeping the running config", "err", err)
				continue
			}
			if len(refused) > 0 {
				log.Warn("config keys changed that need a restart; not applied", "keys", refused)
			}
			cfg = next
			setLevel(level, cfg.Observability.LogLevel)
			if err := n.Apply(cfg); err != nil {
				log.Error("config reload failed to apply", "err", err)
			}
			log.Info("config reloaded", "changed", changed)
			continue
		}
		log.Info("shutting down", "signal", sig.String())
		break
	}
	signal.Stop(sigs)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Runtime.GracefulShutdownTimeout.D()+cfg.Runtime.DrainDelay.D()+5*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// newLogger logs to stderr as observability.log_format says: text, json,
// or auto (text on a terminal, for a developer; JSON otherwise, for log
// collectors and a daemon's log file).
func newLogger(format string, level *slog.LevelVar) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if format == "text" || (format != "json" && isTerminal(os.Stderr)) {
		return slog.New(slog.NewTextHandler(os.Stderr, o))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, o))
}

// isTerminal reports whether f is a terminal: a character device other than
// /dev/null (where a detached process's stderr often points).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}

func setLevel(v *slog.LevelVar, s string) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err == nil {
		v.Set(l)
	}
}
