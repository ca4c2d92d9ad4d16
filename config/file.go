package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// applyFile layers a TOML file over the defaults. The file is decoded into a
// generic tree and walked against the structs by the same reflection as the
// overrides, so one pass reports every unknown key and bad value with its
// line instead of stopping at the first.
func (ld *loader) applyFile(path string) {
	ld.file = path
	data, err := os.ReadFile(path)
	if err != nil {
		ld.problems = append(ld.problems, Problem{File: path, Message: readFailure(err)})
		return
	}
	text := string(data)
	ld.lines = indexLines(text)
	var tree map[string]any
	if _, err := toml.Decode(text, &tree); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			ld.problems = append(ld.problems, Problem{File: path, Line: pe.Position.Line,
				Message: "this is not valid TOML: " + pe.Message})
		} else {
			ld.problems = append(ld.problems, Problem{File: path, Message: "this is not valid TOML: " + err.Error()})
		}
		return
	}
	ld.walkTree(tree, reflect.TypeOf(Config{}), "", "", filepath.Dir(path))
}

func readFailure(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "the config file does not exist"
	case errors.Is(err, os.ErrPermission):
		return "the config file cannot be read: permission denied"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return "the config file cannot be read: " + pe.Err.Error()
	}
	return "the config file cannot be read: " + err.Error()
}

// walkTree applies one table of the file. prefix is the dotted key of the
// table as Sources spells it, section its name as the operator wrote it.
func (ld *loader) walkTree(tree map[string]any, t reflect.Type, prefix, section, dir string) {
	names := make([]string, 0, len(tree))
	for k := range tree {
		names = append(names, k)
	}
	// File order, so problems read top to bottom.
	sort.SliceStable(names, func(i, j int) bool {
		return ld.lines.line(join(prefix, names[i])) < ld.lines.line(join(prefix, names[j]))
	})
	for _, name := range names {
		raw := tree[name]
		key := join(prefix, name)
		line := ld.lines.line(key)
		f, ok := fieldByTag(t, name)
		if !ok {
			ld.problems = append(ld.problems, Problem{File: ld.file, Line: line, Key: key,
				Message: unknownKeyMessage(name, raw, section, fieldNames(t))})
			continue
		}
		ft := f.Type
		switch {
		case isLeaf(ft):
			if err := ld.set(key, raw, fmt.Sprintf("file %s:%d", ld.file, line), dir); err != nil {
				p := valueProblem(key, err, "")
				p.File, p.Line = ld.file, line
				ld.problems = append(ld.problems, p)
			}
		case ft.Kind() == reflect.Struct:
			sub, ok := raw.(map[string]any)
			if !ok {
				ld.problems = append(ld.problems, Problem{File: ld.file, Line: line, Key: key,
					Message: fmt.Sprintf("%s must be a table ([%s]), not %s", key, key, rawDesc(raw))})
				continue
			}
			ld.walkTree(sub, ft, key, key, dir)
		case ft.Kind() == reflect.Slice:
			elems, ok := tablesOf(raw)
			if !ok {
				ld.problems = append(ld.problems, Problem{File: ld.file, Line: line, Key: key,
					Message: fmt.Sprintf("%s must be a list of tables ([[%s]]), not %s", key, key, rawDesc(raw))})
				continue
			}
			for i, e := range elems {
				k := join(key, strconv.Itoa(i))
				// Create the element even when it sets nothing, so that
				// validation sees (and complains about) an empty [[upstream]].
				_, _, _ = fieldAt(&ld.cfg, join(k, tomlName(ft.Elem().Field(0))))
				ld.fillSources()
				ld.walkTree(e, ft.Elem(), k, fmt.Sprintf("[[%s]] #%d", key, i+1), dir)
			}
		}
	}
}

func (ld *loader) fillSources() {
	for _, l := range Leaves(&ld.cfg) {
		if _, ok := ld.sources[l.Key]; !ok {
			ld.sources[l.Key] = "default"
		}
	}
}

func tablesOf(raw any) ([]map[string]any, bool) {
	switch x := raw.(type) {
	case []map[string]any:
		return x, true
	case []any:
		out := make([]map[string]any, 0, len(x))
		for _, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, false
			}
			out = append(out, m)
		}
		return out, true
	}
	return nil, false
}

func unknownKeyMessage(name string, raw any, section string, candidates []string) string {
	_, isTable := raw.(map[string]any)
	var b strings.Builder
	switch {
	case section == "" && isTable:
		fmt.Fprintf(&b, "unknown section [%s]", name)
	case section == "":
		fmt.Fprintf(&b, "unknown key %q at the top of the file", name)
	case strings.HasPrefix(section, "[["):
		fmt.Fprintf(&b, "unknown key %q in %s", name, section)
	default:
		fmt.Fprintf(&b, "unknown key %q in [%s]", name, section)
	}
	if s := suggest(name, candidates); s != "" {
		if section == "" && isTable {
			fmt.Fprintf(&b, "; did you mean [%s]?", s)
		} else {
			fmt.Fprintf(&b, "; did you mean %q?", s)
		}
	}
	return b.String()
}
