package config

import (
	"fmt"
	"path/filepath"

	"github.com/BurntSushi/toml"
)

// LoadFile reads a TOML file over the role's defaults. Relative paths in the
// file resolve against the file's directory, not the shell's.
func LoadFile(path string, role Role) (Config, error) {
	c := Default(role)
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return c, fmt.Errorf("%s: unknown key %q", path, und[0].String())
	}
	c.Path = path
	if c.Cache.Dir != "" && !filepath.IsAbs(c.Cache.Dir) {
		c.Cache.Dir = filepath.Join(filepath.Dir(path), c.Cache.Dir)
	}
	return c, nil
}
