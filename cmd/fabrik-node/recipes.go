package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/node"
	"github.com/tuist/fabrik-node/recipe/backend"
)

// recipeFlags are what `run` and `cache` share: where the node is, and the
// config.
type recipeFlags struct {
	url        string
	configArgs []string
	verbose    bool
}

// recipeSession is an open backend and its config.
type recipeSession struct {
	cfg     config.Config
	backend backend.Backend
	close   func()
}

// openRecipeBackend finds the node recipes store through: the edge named
// by --url or FABRIK_HTTP_URL (the daemon's activation exports it) when it
// answers, else the config's node opened in-process (store + upstreams, no
// listeners), so a CI job with only fabrik.toml and an upstream caches too.
func openRecipeBackend(f recipeFlags, cwd string) (*recipeSession, error) {
	home, _ := os.UserHomeDir()
	loaded, err := config.Load(config.LoadOptions{Role: config.RoleEdge, Args: f.configArgs, Env: os.Environ(), Cwd: cwd, Home: home})
	if err != nil {
		return nil, err
	}
	cfg := loaded.Config
	token, _ := cfg.Auth.ResolveToken()
	url, fromFlag := f.url, f.url != ""
	if url == "" {
		url = os.Getenv("FABRIK_HTTP_URL")
	}
	if url != "" {
		h := backend.NewHTTP(url, token)
		err := h.Ping(context.Background())
		if err == nil {
			return &recipeSession{cfg: cfg, backend: h, close: func() {}}, nil
		}
		if fromFlag {
			return nil, fmt.Errorf("--url %s: %w", url, err)
		}
		fmt.Fprintf(os.Stderr, "[fabrik] warning: FABRIK_HTTP_URL=%s does not answer (%v); opening the cache in-process\n", url, err)
	}
	return openInProcess(cfg, f.verbose)
}

func openInProcess(cfg config.Config, verbose bool) (*recipeSession, error) {
	// No listeners: this node lives for one command and must not collide
	// with anything on the usual ports.
	cfg.BuildTools.Enabled = nil
	cfg.BuildTools.HTTPBind, cfg.BuildTools.GRPCBind = "", ""
	cfg.Observability.HealthBind, cfg.Observability.APIBind, cfg.Observability.MetricsBind = "", "", ""
	cfg.Fabrik.Enabled = false
	off := false
	cfg.Recipes.Enabled = &off
	cfg.Events.NATSURL = ""
	// The CLI's own lines are the output; the node only speaks up when
	// something is wrong (or with --verbose).
	level := slog.LevelError
	if verbose {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	n, err := startWhenFree(cfg, log, lockWait)
	if err != nil {
		if isLocked(err) {
			return nil, fmt.Errorf("%w\n[fabrik] another process holds %s (a daemon, or a run that did not finish within %s): point --url or FABRIK_HTTP_URL at the daemon's HTTP listener", err, cfg.Cache.Dir, lockWait)
		}
		return nil, fmt.Errorf("open the cache in-process: %w", err)
	}
	b := &backend.Local{Cache: n.Cache(), Ledger: backend.OpenLedger(filepath.Join(cfg.Cache.Dir, backend.LedgerFile)), Name: "in-process node (" + cfg.Cache.Dir + ")"}
	return &recipeSession{cfg: cfg, backend: b, close: func() {
		// Write-through is asynchronous: give queued uploads time to
		// reach the upstreams before this short-lived node goes away.
		// (They are persisted and resume with the next run regardless.)
		waitUploads(n, time.Minute, 10*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n.Stop(ctx)
	}}, nil
}

// lockWait is how long a run waits for another in-process run to release
// the cache directory: parallel steps of one CI job share it in turn.
const lockWait = 2 * time.Minute

// startWhenFree starts the in-process node, retrying while another
// process holds the store's directory lock.
func startWhenFree(cfg config.Config, log *slog.Logger, wait time.Duration) (*node.Node, error) {
	deadline := time.Now().Add(wait)
	for {
		n, err := node.New(node.Options{Role: config.RoleEdge, Config: cfg, Logger: log})
		if err != nil {
			return nil, err
		}
		err = n.Start()
		if err == nil {
			return n, nil
		}
		if !isLocked(err) || time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isLocked(err error) bool { return strings.Contains(err.Error(), "Cannot acquire directory lock") }

// waitUploads polls the upload queues' depth gauges until they are empty,
// giving up after timeout or when nothing moved for stall (an unreachable
// upstream must not hold every CI step for minutes: the jobs are persisted
// and resume with the next run).
func waitUploads(n *node.Node, timeout, stall time.Duration) {
	deadline := time.Now().Add(timeout)
	last, lastChange := pendingUploads(n), time.Now()
	for last > 0 {
		now := time.Now()
		if now.After(deadline) || now.Sub(lastChange) > stall {
			fmt.Fprintf(os.Stderr, "[fabrik] warning: %.0f uploads to upstreams still pending; they resume with the next run\n", last)
			return
		}
		time.Sleep(20 * time.Millisecond)
		if p := pendingUploads(n); p != last {
			last, lastChange = p, time.Now()
		}
	}
}

func pendingUploads(n *node.Node) float64 {
	var buf bytes.Buffer
	n.Metrics().WritePrometheus(&buf)
	var total float64
	for _, line := range strings.Split(buf.String(), "\n") {
		if !strings.HasPrefix(line, "fabrik_upload_queue_depth") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			v, _ := strconv.ParseFloat(line[i+1:], 64)
			total += v
		}
	}
	return total
}

// parseRecipeFlags takes the shared flags out of args.
func parseRecipeFlags(args []string, own map[string]*bool) (recipeFlags, []string, error) {
	var f recipeFlags
	configArgs, rest := config.SplitArgs(args)
	f.configArgs = configArgs
	var out []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			return f, append(out, rest[i:]...), nil
		case a == "--url" && i+1 < len(rest):
			f.url = rest[i+1]
			i++
		case strings.HasPrefix(a, "--url="):
			f.url = strings.TrimPrefix(a, "--url=")
		case a == "--verbose" || a == "-v":
			f.verbose = true
		case strings.HasPrefix(a, "--") && own[a] != nil:
			*own[a] = true
		case strings.HasPrefix(a, "-") && len(out) == 0:
			return f, nil, fmt.Errorf("unknown flag %q", a)
		default:
			out = append(out, a)
		}
	}
	return f, out, nil
}

var errUsage = errors.New("missing subcommand")
