package configcmd

import (
	"fmt"
	"strings"

	"github.com/tuist/fabrik-node/config"
)

// Redacted replaces every secret value in `config show`.
const Redacted = `"***"`

// Render prints a loaded configuration as TOML that would load back to the
// same values: secrets redacted, each value followed by a comment saying
// where it came from.
func Render(l *config.Loaded, role config.Role) string {
	var b strings.Builder
	from := "built-in defaults and overrides only (no config file)"
	if l.Path != "" {
		from = l.Path
	}
	fmt.Fprintf(&b, "# Effective configuration (role %s).\n# File: %s\n# Precedence: flags > environment > file > defaults.\n", role, from)
	table := ""
	c := l.Config
	for _, leaf := range config.Leaves(&c) {
		t, name := splitLast(leaf.Key)
		if t != table {
			table = t
			b.WriteString("\n" + header(t) + "\n")
		}
		value := leaf.TOML()
		src := l.Sources[leaf.Key]
		switch {
		case value == "":
			fmt.Fprintf(&b, "# %s is unset: its documented default applies  # %s\n", name, src)
			continue
		case leaf.Secret && value != `""`:
			value = Redacted
		}
		line := name + " = " + value
		fmt.Fprintf(&b, "%-48s # %s\n", line, src)
	}
	return b.String()
}

func splitLast(key string) (string, string) {
	i := strings.LastIndex(key, ".")
	return key[:i], key[i+1:]
}

// header spells a table: "upstream.0" is the first [[upstream]].
func header(table string) string {
	parts := strings.Split(table, ".")
	if len(parts) == 2 && isIndex(parts[1]) {
		return "[[" + parts[0] + "]]"
	}
	return "[" + table + "]"
}

func isIndex(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
