// Package configcmd is `fabrik-node config`: validate, generate and show.
// It is a library so the CLI wiring is one call and tests run it in-process.
package configcmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tuist/fabrik-node/config"
)

const usage = `usage: fabrik-node config <command>

  validate [PATH] [--role edge|regional]
      Check a config file (default: the discovered one) merged with the
      FABRIK_CONFIG_* environment. Exit 2 with PATH:LINE: message per problem.
  generate --template edge|layer1|regional|server
      Print a commented example config.
  show [--config PATH] [--role edge|regional] [--config-<section>-<key> VALUE ...]
      Print the effective configuration, secrets redacted, each value
      annotated with where it came from.
`

// Run executes `fabrik-node config ARGS...` and returns the exit code: 0 on
// success, 2 for usage errors and invalid configuration. env is the process
// environment (os.Environ()); cwd is where discovery starts.
func Run(args []string, stdout, stderr io.Writer, env []string, cwd string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	c := command{stdout: stdout, stderr: stderr, env: env, cwd: cwd, home: homeDir(env)}
	switch args[0] {
	case "validate":
		return c.validate(args[1:])
	case "generate":
		return c.generate(args[1:])
	case "show":
		return c.show(args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "[fabrik] unknown config command %q\n%s", args[0], usage)
	return 2
}

type command struct {
	stdout, stderr io.Writer
	env            []string
	cwd, home      string
}

func homeDir(env []string) string {
	for _, kv := range env {
		if h, ok := strings.CutPrefix(kv, "HOME="); ok && h != "" {
			return h
		}
	}
	h, _ := os.UserHomeDir()
	return h
}

// roleArg takes --role out of args.
func roleArg(args []string) (config.Role, []string, error) {
	role := config.RoleEdge
	var rest []string
	for i := 0; i < len(args); i++ {
		name, value, has := strings.Cut(args[i], "=")
		if name != "--role" {
			rest = append(rest, args[i])
			continue
		}
		if !has {
			if i+1 >= len(args) {
				return "", nil, errors.New("--role needs a value: edge or regional")
			}
			i++
			value = args[i]
		}
		switch config.Role(value) {
		case config.RoleEdge, config.RoleRegional:
			role = config.Role(value)
		default:
			return "", nil, fmt.Errorf("--role %q is not a role: use edge or regional", value)
		}
	}
	return role, rest, nil
}

func (c command) validate(args []string) int {
	role, args, err := roleArg(args)
	if err != nil {
		return c.usageError(err.Error())
	}
	path := ""
	var flags []string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "-"):
			flags = append(flags, a)
		case path == "":
			path = a
		default:
			return c.usageError("validate takes one PATH")
		}
	}
	loaded, err := config.Load(config.LoadOptions{Role: role, Path: path, Args: flags, Env: c.env, Cwd: c.cwd, Home: c.home})
	if err != nil {
		return c.problems(loaded, err)
	}
	if loaded.Path == "" {
		fmt.Fprintln(c.stdout, "[fabrik] no config file found (no fabrik.toml from here upward, no $XDG_CONFIG_HOME/fabrik/config.toml): the built-in defaults are valid")
		return 0
	}
	fmt.Fprintf(c.stdout, "[fabrik] %s is valid\n", loaded.Path)
	return 0
}

// problems prints one line per problem, compiler style so editors can jump
// to them, then a summary.
func (c command) problems(loaded *config.Loaded, err error) int {
	var pe *config.ProblemsError
	if !errors.As(err, &pe) {
		fmt.Fprintf(c.stderr, "[fabrik] %v\n", err)
		return 2
	}
	for _, p := range pe.Problems {
		fmt.Fprintln(c.stderr, p.String())
	}
	where := "the configuration"
	if loaded != nil && loaded.Path != "" {
		where = loaded.Path
	}
	noun := "problems"
	if len(pe.Problems) == 1 {
		noun = "problem"
	}
	fmt.Fprintf(c.stderr, "[fabrik] %d %s in %s\n", len(pe.Problems), noun, where)
	return 2
}

func (c command) generate(args []string) int {
	name := ""
	for i := 0; i < len(args); i++ {
		flag, value, has := strings.Cut(args[i], "=")
		if flag != "--template" {
			return c.usageError(fmt.Sprintf("generate does not take %q", args[i]))
		}
		if !has {
			if i+1 >= len(args) {
				break
			}
			i++
			value = args[i]
		}
		name = value
	}
	if name == "" {
		return c.usageError("generate needs --template " + strings.Join(config.TemplateNames, "|"))
	}
	text, err := config.Template(name)
	if err != nil {
		return c.usageError(err.Error())
	}
	_, _ = c.stdout.Write(text)
	return 0
}

func (c command) show(args []string) int {
	role, args, err := roleArg(args)
	if err != nil {
		return c.usageError(err.Error())
	}
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue // a flag's value; Load pairs them up
		}
		name, _, _ := strings.Cut(a, "=")
		if name != "--config" && name != "--log-level" && !strings.HasPrefix(name, "--config-") {
			return c.usageError(fmt.Sprintf("show does not take %q", a))
		}
	}
	loaded, err := config.Load(config.LoadOptions{Role: role, Args: args, Env: c.env, Cwd: c.cwd, Home: c.home})
	if err != nil {
		return c.problems(loaded, err)
	}
	_, _ = io.WriteString(c.stdout, Render(loaded, role))
	return 0
}

func (c command) usageError(msg string) int {
	fmt.Fprintf(c.stderr, "[fabrik] %s\n%s", msg, usage)
	return 2
}
