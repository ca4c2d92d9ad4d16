package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tuist/fabrik-node/activate"
	"github.com/tuist/fabrik-node/daemon"
)

// activateCommand is `fabrik-node activate bash|zsh|fish` (prints the
// hook) and `fabrik-node activate --status [--shell S] [--config FILE]`
// (what the hook runs: ensures the project's daemon and prints the exports).
func activateCommand(args []string, cwd string) int {
	var shell, cfgPath string
	status, cfgGiven := false, false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--status":
			status = true
		case a == "--shell" && i+1 < len(args):
			shell = args[i+1]
			i++
		case a == "--config" && i+1 < len(args):
			cfgPath, cfgGiven = args[i+1], true
			i++
		case strings.HasPrefix(a, "--config="):
			cfgPath, cfgGiven = strings.TrimPrefix(a, "--config="), true
		case !strings.HasPrefix(a, "-") && shell == "":
			shell = a
		default:
			return fail("activate: unknown argument %q; usage: fabrik-node activate bash|zsh|fish, or activate --status", a)
		}
	}
	if !status {
		if shell == "" {
			return fail("activate: name a shell: eval \"$(fabrik-node activate bash)\" (or zsh; fish: fabrik-node activate fish | source)")
		}
		exe, err := os.Executable()
		if err != nil {
			return fail("activate: find the fabrik-node binary: %v", err)
		}
		hook, err := activate.Hook(shell, exe)
		if err != nil {
			return fail("activate: %v", err)
		}
		fmt.Print(hook)
		return 0
	}
	if shell == "" {
		shell = loginShell()
	}
	if !slices.Contains(activate.Shells, shell) {
		return fail("activate: unknown shell %q (want %s)", shell, strings.Join(activate.Shells, ", "))
	}
	if !cfgGiven {
		cfgPath = findProject(cwd)
	} else if cfgPath != "" && !filepath.IsAbs(cfgPath) {
		cfgPath = filepath.Join(cwd, cfgPath)
	}
	code, out := activationStatus(shell, cfgPath)
	fmt.Print(out)
	return code
}

// loginShell is the shell $SHELL names, when activation knows it, else bash.
func loginShell() string {
	if s := filepath.Base(os.Getenv("SHELL")); slices.Contains(activate.Shells, s) {
		return s
	}
	return "bash"
}

// activationStatus returns the shell code for a directory whose project is
// cfgPath ("" for none). Failures are reported on stderr and still produce
// code: the previous project's variables are unset, and the hook remembers
// the failed config (stamped by its lock file) so it does not retry on every
// prompt until the file changes.
func activationStatus(shell, cfgPath string) (int, string) {
	env := activate.EnvMap(os.Environ())
	if cfgPath == "" {
		return 0, activate.Render(shell, activate.NewPlan(env, nil), activate.Cache{})
	}
	cfgPath = filepath.Clean(cfgPath)
	loaded, res, err := ensureProjectDaemon(cfgPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "[fabrik] %s: %v\n", cfgPath, err)
		var stamp string
		if id, idErr := daemon.IDOfFile(cfgPath); idErr == nil {
			root := stateRoot(nil)
			if loaded != nil {
				root = stateRoot(&loaded.Config)
			}
			stamp = daemon.LockPath(root, id)
			os.MkdirAll(root, 0o700)
			if f, err := os.OpenFile(stamp, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
				f.Close()
			}
			now := time.Now()
			os.Chtimes(stamp, now, now)
		}
		return 1, activate.Render(shell, activate.NewPlan(env, nil), activate.Cache{Config: cfgPath, Stamp: stamp})
	}
	s := res.State
	if res.New {
		msg := fmt.Sprintf("[fabrik] daemon %s started for %s", s.ID, cfgPath)
		if u := s.URL("http", "http"); u != "" {
			msg += " on " + u
		}
		if res.Stale {
			msg += " (replaced a dead one)"
		}
		if len(res.Superseded) > 0 {
			msg += fmt.Sprintf(" (stopped %s, started from the file's previous content)", strings.Join(res.Superseded, ", "))
		}
		fmt.Fprintln(os.Stderr, msg)
	}
	cfg := loaded.Config
	token, err := cfg.Auth.ResolveToken()
	if err != nil {
		fmt.Fprintf(os.Stderr, "[fabrik] %v\n", err)
	}
	exe, _ := os.Executable()
	want := activate.Exports(cfg, s, token, exe)
	if slices.Contains(cfg.BuildTools.Enabled, "gradle") && autoConfigure(cfg.BuildTools.Gradle.AutoConfigure) {
		home := activate.GradleUserHome(os.Getenv, homeDir())
		if wrote, err := activate.InstallGradleInit(home); err != nil {
			fmt.Fprintf(os.Stderr, "[fabrik] gradle: %v\n", err)
		} else if wrote {
			fmt.Fprintf(os.Stderr, "[fabrik] gradle: installed %s (uses GRADLE_BUILD_CACHE_URL when set)\n",
				filepath.Join(home, "init.d", activate.GradleInitName))
		}
	}
	// The hook compares the config's mtime with the stamp's: a config
	// touched without a content change keeps its daemon, so move the stamp
	// past it once instead of running this on every prompt.
	stamp := s.StampPath()
	if cfi, err := os.Stat(cfgPath); err == nil {
		if sfi, err := os.Stat(stamp); err == nil && cfi.ModTime().After(sfi.ModTime()) {
			now := time.Now()
			os.Chtimes(stamp, now, now)
		}
	}
	return 0, activate.Render(shell, activate.NewPlan(env, want), activate.Cache{Config: cfgPath, Stamp: stamp, PID: s.PID})
}

func autoConfigure(b *bool) bool { return b == nil || *b }

// deactivateCommand is `fabrik-node deactivate [--stop-daemon] [--shell S]`:
// prints code that unsets what activation set and turns the hook off in
// this shell (the activated shell's fabrik-node function evals it), and
// optionally stops the project's daemon.
func deactivateCommand(args []string, cwd string) int {
	shell, stopDaemon := "", false
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--stop-daemon":
			stopDaemon = true
		case args[i] == "--shell" && i+1 < len(args):
			shell = args[i+1]
			i++
		default:
			return fail("deactivate: unknown argument %q; usage: fabrik-node deactivate [--stop-daemon]", args[i])
		}
	}
	if shell == "" {
		shell = loginShell()
	}
	code := 0
	if stopDaemon {
		if s, root := activatedDaemon(cwd); s != nil {
			if err := daemon.Stop(root, s, 60*time.Second); err != nil {
				fmt.Fprintf(os.Stderr, "[fabrik] deactivate: %v\n", err)
				code = 1
			} else {
				fmt.Fprintf(os.Stderr, "[fabrik] daemon %s stopped\n", s.ID)
			}
		} else {
			fmt.Fprintln(os.Stderr, "[fabrik] deactivate: no daemon running for this shell")
		}
	}
	fmt.Print(activate.RenderDeactivate(shell, activate.EnvMap(os.Environ())))
	return code
}

// activatedDaemon is the daemon this shell uses: the one FABRIK_DAEMON
// names, else the running daemon of the current directory's project. It
// returns nil when neither is alive.
func activatedDaemon(cwd string) (*daemon.State, string) {
	if dir := os.Getenv(activate.DaemonVar); dir != "" {
		root, id := filepath.Dir(dir), filepath.Base(dir)
		if s, err := daemon.Read(root, id); err == nil && s.Alive() {
			return s, root
		}
	}
	if p := findProject(cwd); p != "" {
		if l, err := loadProject(p); err == nil {
			root := stateRoot(&l.Config)
			if id, err := daemon.IDOfFile(p); err == nil {
				if s, err := daemon.Read(root, id); err == nil && s.Alive() {
					return s, root
				}
			}
		}
	}
	return nil, ""
}
