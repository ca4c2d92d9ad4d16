package activate

import (
	"fmt"
	"strings"
)

// Shells are the shells activation supports.
var Shells = []string{"bash", "zsh", "fish"}

// Shell-local variables of the hook (not exported): the activated config,
// the file its mtime is compared with, the daemon's pid, and the switch
// `fabrik-node deactivate` turns off.
const (
	configVar = "__FABRIK_CONFIG"
	stampVar  = "__FABRIK_STAMP"
	pidVar    = "__FABRIK_PID"
	offVar    = "__FABRIK_OFF"
)

// Cache is what the hook remembers to skip work on the next prompt.
type Cache struct {
	// Config is the activated fabrik.toml ("" for none).
	Config string
	// Stamp is a file whose mtime is newer than the config the daemon read;
	// a config newer than it was edited since.
	Stamp string
	// PID is the daemon's pid (0 for none); bash and zsh check it with the
	// kill -0 builtin, fish through /proc.
	PID int
}

// Render writes the shell code that applies a plan and the hook's cache.
func Render(shell string, p Plan, c Cache) string {
	var b strings.Builder
	w := writer(shell, &b)
	for _, v := range p.Set {
		w.export(v.Name, v.Value)
	}
	for _, n := range p.Unset {
		w.unset(n)
	}
	if len(p.Managed) > 0 {
		w.export(ManagedVar, strings.Join(p.Managed, " "))
	} else {
		w.unset(ManagedVar)
	}
	w.local(configVar, c.Config)
	w.local(stampVar, c.Stamp)
	pid := ""
	if c.PID > 0 {
		pid = fmt.Sprint(c.PID)
	}
	w.local(pidVar, pid)
	return b.String()
}

// RenderDeactivate unsets what the hook set and turns the hook off in this
// shell (until the activation line runs again).
func RenderDeactivate(shell string, env map[string]string) string {
	p := NewPlan(env, nil)
	var b strings.Builder
	w := writer(shell, &b)
	for _, n := range p.Unset {
		w.unset(n)
	}
	w.unset(ManagedVar)
	w.local(configVar, "")
	w.local(stampVar, "")
	w.local(pidVar, "")
	w.local(offVar, "1")
	return b.String()
}

type shellWriter struct {
	b    *strings.Builder
	fish bool
}

func writer(shell string, b *strings.Builder) shellWriter {
	return shellWriter{b: b, fish: shell == "fish"}
}

func (w shellWriter) export(name, value string) {
	if w.fish {
		fmt.Fprintf(w.b, "set -gx %s %s;\n", name, fishQuote(value))
		return
	}
	fmt.Fprintf(w.b, "export %s=%s;\n", name, shQuote(value))
}

func (w shellWriter) unset(name string) {
	if w.fish {
		fmt.Fprintf(w.b, "set -e %s;\n", name)
		return
	}
	fmt.Fprintf(w.b, "unset %s;\n", name)
}

func (w shellWriter) local(name, value string) {
	if w.fish {
		fmt.Fprintf(w.b, "set -g %s %s;\n", name, fishQuote(value))
		return
	}
	fmt.Fprintf(w.b, "%s=%s;\n", name, shQuote(value))
}

// shQuote quotes for bash and zsh: single quotes, with ' written as '\”.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// fishQuote quotes for fish: in single quotes only \ and ' are escaped.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
