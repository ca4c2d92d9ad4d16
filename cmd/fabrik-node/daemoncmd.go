package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/daemon"
	"github.com/tuist/fabrik-node/node"
)

// daemonCommand is `fabrik-node daemon list|stop|start|run`; anything else
// runs an edge in the foreground, as `fabrik-node daemon --config ...`
// always did.
func daemonCommand(args []string, cwd string) int {
	if len(args) > 0 {
		switch args[0] {
		case "list", "ls":
			return daemonList(cwd)
		case "stop":
			return daemonStop(args[1:], cwd)
		case "start":
			return daemonStart(args[1:], cwd)
		case "run":
			return daemonRun(args[1:])
		}
	}
	return serve(append([]string{"--role", "edge"}, args...), cwd)
}

func homeDir() string {
	home, _ := os.UserHomeDir()
	return home
}

// stateRoot is where daemons keep their state: [daemon] state_dir when the
// config sets it, else $XDG_STATE_HOME/fabrik/daemons.
func stateRoot(cfg *config.Config) string {
	if cfg != nil && cfg.Daemon.StateDir != "" {
		return cfg.Daemon.StateDir
	}
	return daemon.Root(os.Getenv, homeDir())
}

// findProject returns the nearest fabrik.toml from dir upward ("" when the
// directory is in no project). Unlike config discovery it never falls back to
// the user's global config: a project is a directory with a fabrik.toml.
func findProject(dir string) string {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		p := filepath.Join(d, "fabrik.toml")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// loadProject loads a project's config file the way its daemon will.
func loadProject(path string) (*config.Loaded, error) {
	return config.Load(config.LoadOptions{Role: config.RoleEdge, Path: path, Env: os.Environ(), Cwd: filepath.Dir(path), Home: homeDir()})
}

// ensureProjectDaemon starts (or finds) the daemon of a config file.
func ensureProjectDaemon(path string) (*config.Loaded, *daemon.Started, error) {
	loaded, err := loadProject(path)
	if err != nil {
		return nil, nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return loaded, nil, fmt.Errorf("find the fabrik-node binary: %w", err)
	}
	res, err := daemon.Ensure(daemon.StartOptions{
		Root:        stateRoot(&loaded.Config),
		ConfigPath:  path,
		Exe:         exe,
		Env:         os.Environ(),
		StopTimeout: loaded.Config.Runtime.GracefulShutdownTimeout.D() + 5*time.Second,
	})
	return loaded, res, err
}

// daemonStart is `daemon start [--config FILE]`: the current project's
// daemon in the background, started if needed.
func daemonStart(args []string, cwd string) int {
	path, err := projectArg(args, cwd)
	if err != nil {
		return fail("daemon start: %v", err)
	}
	_, res, err := ensureProjectDaemon(path)
	if err != nil {
		return fail("daemon start: %v", err)
	}
	verb := "running"
	if res.New {
		verb = "started"
	}
	fmt.Printf("[fabrik] daemon %s %s (pid %d) for %s: %s\n", res.State.ID, verb, res.State.PID, path, formatPorts(res.State.Ports))
	return 0
}

func projectArg(args []string, cwd string) (string, error) {
	path := ""
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--config" && i+1 < len(args):
			path = args[i+1]
			i++
		case strings.HasPrefix(args[i], "--config="):
			path = strings.TrimPrefix(args[i], "--config=")
		default:
			return "", fmt.Errorf("unknown argument %q", args[i])
		}
	}
	if path == "" {
		path = findProject(cwd)
		if path == "" {
			return "", fmt.Errorf("no fabrik.toml in %s or above", cwd)
		}
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(cwd, path)
	}
	return filepath.Clean(path), nil
}

// daemonRoots are the state roots `daemon list` and `stop` look in: the
// default one, and the current project's [daemon] state_dir when it sets one.
func daemonRoots(cwd string) []string {
	roots := []string{stateRoot(nil)}
	if p := findProject(cwd); p != "" {
		if l, err := loadProject(p); err == nil && l.Config.Daemon.StateDir != "" && l.Config.Daemon.StateDir != roots[0] {
			roots = append(roots, l.Config.Daemon.StateDir)
		}
	}
	return roots
}

func allDaemons(cwd string) ([]*daemon.State, []string) {
	var out []*daemon.State
	var roots []string
	for _, root := range daemonRoots(cwd) {
		states, err := daemon.List(root)
		if err != nil {
			fmt.Fprintf(os.Stderr, "[fabrik] %v\n", err)
		}
		for range states {
			roots = append(roots, root)
		}
		out = append(out, states...)
	}
	return out, roots
}

func daemonList(cwd string) int {
	states, _ := allDaemons(cwd)
	if len(states) == 0 {
		fmt.Println("[fabrik] no daemons running")
		return 0
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HASH\tPID\tUPTIME\tPORTS\tCONFIG")
	for _, s := range states {
		up := time.Since(s.Started).Truncate(time.Second).String()
		if !s.Alive() {
			up = "stale (process gone)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", s.ID, s.PID, up, formatPorts(s.Ports), s.ConfigPath)
	}
	tw.Flush()
	return 0
}

func formatPorts(ports map[string]int) string {
	names := make([]string, 0, len(ports))
	for n := range ports {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%d", n, ports[n])
	}
	return strings.Join(parts, " ")
}

// daemonStop is `daemon stop [HASH|--all]`: without an argument, the
// current project's daemon.
func daemonStop(args []string, cwd string) int {
	states, roots := allDaemons(cwd)
	var targets []int
	switch {
	case len(args) == 1 && args[0] == "--all":
		for i := range states {
			targets = append(targets, i)
		}
	case len(args) == 1:
		for i, s := range states {
			if strings.HasPrefix(s.ID, args[0]) {
				targets = append(targets, i)
			}
		}
		if len(targets) != 1 {
			return fail("daemon stop: %d daemons match %q (see fabrik-node daemon list)", len(targets), args[0])
		}
	case len(args) == 0:
		p := findProject(cwd)
		if p == "" {
			return fail("daemon stop: no fabrik.toml in %s or above; name a HASH or --all", cwd)
		}
		id, err := daemon.IDOfFile(p)
		if err != nil {
			return fail("daemon stop: %v", err)
		}
		for i, s := range states {
			if s.ID == id || s.ConfigPath == p {
				targets = append(targets, i)
			}
		}
		if len(targets) == 0 {
			fmt.Printf("[fabrik] no daemon running for %s\n", p)
			return 0
		}
	default:
		return fail("daemon stop: usage: fabrik-node daemon stop [HASH|--all]")
	}
	code := 0
	for _, i := range targets {
		s := states[i]
		if err := daemon.Stop(roots[i], s, 60*time.Second); err != nil {
			fmt.Fprintf(os.Stderr, "[fabrik] daemon stop %s: %v\n", s.ID, err)
			code = 1
			continue
		}
		fmt.Printf("[fabrik] daemon %s stopped (%s)\n", s.ID, s.ConfigPath)
	}
	return code
}

// watchInterval is how often a daemon checks whether its config file still
// has the content it started from.
const watchInterval = 2 * time.Second

// daemonRun is `daemon run --config FILE --id ID`, what Ensure starts in the
// background: an edge on loopback ports that publishes its state, removes it
// when it stops, and stops by itself once idle after its config file changed
// (a new daemon serves the new content) or disappeared.
func daemonRun(args []string) int {
	var path, id string
	for i := 0; i+1 < len(args); i += 2 {
		switch args[i] {
		case "--config":
			path = args[i+1]
		case "--id":
			id = args[i+1]
		default:
			return fail("daemon run: unknown argument %q", args[i])
		}
	}
	if path == "" || id == "" {
		return fail("daemon run: usage: fabrik-node daemon run --config FILE --id HASH (started by activate)")
	}
	loaded, err := loadProject(path)
	if err != nil {
		return fail("%v", err)
	}
	cfg := daemon.Configure(loaded, config.Default(config.RoleEdge).Cache.Dir)
	root := stateRoot(&cfg)
	if s, err := daemon.Read(root, id); err == nil && s.Alive() && s.PID != os.Getpid() {
		return fail("daemon %s already runs (pid %d)", id, s.PID)
	}
	level := new(slog.LevelVar)
	setLevel(level, cfg.Observability.LogLevel)
	log := newLogger(cfg.Observability.LogFormat, level).With("daemon", id)
	slog.SetDefault(log)
	n, err := node.New(node.Options{Role: config.RoleEdge, Config: cfg, Logger: log})
	if err != nil {
		return fail("%v", err)
	}
	n.SetLogLevelFunc(level.Set)
	if err := n.Start(); err != nil {
		log.Error("daemon failed to start", "err", err)
		return 1
	}
	pid := os.Getpid()
	stop := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Runtime.GracefulShutdownTimeout.D()+5*time.Second)
		defer cancel()
		code := 0
		if err := n.Stop(ctx); err != nil {
			log.Error("shutdown", "err", err)
			code = 1
		}
		if err := daemon.Remove(root, id, pid); err != nil {
			log.Error("remove daemon state", "err", err)
		}
		log.Info("daemon stopped")
		return code
	}
	ports, err := daemon.PortsOf(n.Addrs())
	if err == nil {
		_, err = daemon.Publish(root, id, pid, path, ports)
	}
	if err != nil {
		log.Error("daemon cannot publish its state", "err", err)
		stop()
		return 1
	}
	log.Info("daemon serving", "config", path, "state", daemon.Dir(root, id), "ports", formatPorts(ports))

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	last := activity(n)
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				// A daemon is its config's content: a new content gets a
				// new daemon rather than a reload.
				log.Info("SIGHUP ignored: edit fabrik.toml and a new daemon serves the new content")
				continue
			}
			log.Info("shutting down", "signal", sig.String())
			return stop()
		case <-tick.C:
			now := activity(n)
			idle := now == last
			last = now
			if cur, err := daemon.IDOfFile(path); (err != nil || cur != id) && idle {
				reason := "config changed"
				if errors.Is(err, os.ErrNotExist) {
					reason = "config removed"
				}
				log.Info("stopping: "+reason+" and the daemon is idle", "config", path)
				return stop()
			}
		}
	}
}

// activity is a number that grows with every request the daemon serves.
func activity(n *node.Node) uint64 {
	m := n.Metrics()
	if m == nil {
		return 0
	}
	h, mi := m.HitsMisses()
	up, down := m.Bandwidth()
	return h + mi + up + down
}
