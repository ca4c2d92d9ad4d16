package config

import (
	"embed"
	"fmt"
	"strings"
)

// The templates are the examples in configs/ (kept byte-identical by
// TestConfigsMatchTemplates); embedding them here lets `config generate`
// work from a bare binary.
//
//go:generate sh -c "cp templates/*.toml ../configs/"
//go:embed templates/*.toml
var templates embed.FS

// TemplateNames lists what `config generate --template` accepts.
var TemplateNames = []string{"edge", "layer1", "regional", "server"}

// Template returns a commented, valid example config.
func Template(name string) ([]byte, error) {
	b, err := templates.ReadFile("templates/" + name + ".toml")
	if err != nil {
		return nil, fmt.Errorf("unknown template %q: choose one of %s", name, strings.Join(TemplateNames, ", "))
	}
	return b, nil
}
