// Command fabrik-node is the one binary of every Fabrik layer: an edge next
// to the build (default), a regional node behind a load balancer, and the
// one-shot commands (config, bazel, health, ...).
package main

import (
	"fmt"
	"os"

	"github.com/tuist/fabrik-node/config/configcmd"
	"github.com/tuist/fabrik-node/node"
)

const usage = `fabrik-node: a multi-layer build cache.

Usage:
  fabrik-node [--role edge|regional] [--config FILE] [--log-level LEVEL] [--config-SECTION-KEY VALUE ...]
  fabrik-node daemon ...        run an edge in the foreground (same flags)
  fabrik-node daemon list|start|stop [HASH|--all]   the per-project daemons activation starts
  fabrik-node activate bash|zsh|fish   print the shell hook: eval "$(fabrik-node activate bash)"
  fabrik-node activate --status        start this project's daemon if needed, print its exports
  fabrik-node deactivate [--stop-daemon]   unset what activation set (and stop the daemon)
  fabrik-node server ...        run a regional node (same flags)
  fabrik-node bazel [--config-...] -- <bazel args>   run bazel with a cache on a loopback port
  fabrik-node config validate|generate|show ...
  fabrik-node health [--url URL] a node's health and figures (the activated daemon by default)
  fabrik-node run [--dry-run|--verbose|--no-cache|--clean|--list] RECIPE [TARGET] [-- ARGS]
                                run a script recipe (#FABRIK annotations) or a Tengo recipe, cached
  fabrik-node cache status SCRIPT | clean [SCRIPT] | list | stats   recipe cache entries
  fabrik-node gocacheprog [--url URL] [--dir DIR]   the go command's GOCACHEPROG helper
  fabrik-node p2p list [--verbose]|status|approve PEER|deny PEER|clear   LAN peers and consent (running edge)
  fabrik-node --version

Configuration precedence: --config-* flags > FABRIK_CONFIG_* env > config file > defaults.
The config file is --config, FABRIK_CONFIG_PATH, ./fabrik.toml (searched upwards),
or $XDG_CONFIG_HOME/fabrik/config.toml.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cwd, _ := os.Getwd()
	if len(args) > 0 {
		switch args[0] {
		case "--version", "version":
			fmt.Println("fabrik-node", node.Version)
			return 0
		case "-h", "--help", "help":
			fmt.Print(usage)
			return 0
		case "config":
			return configcmd.Run(args[1:], os.Stdout, os.Stderr, os.Environ(), cwd)
		case "health":
			return healthCommand(args[1:], cwd)
		case "bazel":
			return bazelCommand(args[1:], cwd)
		case "run":
			return runCommand(args[1:], cwd)
		case "cache":
			return cacheCommand(args[1:], cwd)
		case "gocacheprog":
			return gocacheprogCommand(args[1:])
		case "daemon":
			return daemonCommand(args[1:], cwd)
		case "activate":
			return activateCommand(args[1:], cwd)
		case "deactivate":
			return deactivateCommand(args[1:], cwd)
		case "p2p":
			return p2pCommand(args[1:], cwd)
		case "server":
			return serve(append([]string{"--role", "regional"}, args[1:]...), cwd)
		}
	}
	return serve(args, cwd)
}

// fail prints a CLI error and returns exit code 2 (usage or configuration).
func fail(format string, a ...any) int {
	fmt.Fprintf(os.Stderr, "[fabrik] "+format+"\n", a...)
	return 2
}
