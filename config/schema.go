package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// This file is the one mechanism that maps names to struct fields. Every
// spelling of a key is derived from the toml tags: "cache.max_size" in files
// and Sources, FABRIK_CONFIG_CACHE_MAX_SIZE in the environment and
// --config-cache-max-size on the command line. Adding a field to a struct is
// enough to make it configurable all three ways.

var (
	byteSizeType = reflect.TypeOf(ByteSize(0))
	durationType = reflect.TypeOf(Duration(0))
	boolPtrType  = reflect.TypeOf((*bool)(nil))
	stringsType  = reflect.TypeOf([]string(nil))
)

// Leaf is one settable value of a Config, found by walking the structs.
type Leaf struct {
	// Key is the dotted name: "cache.max_size", "upstream.0.url".
	Key string
	// Value is the field itself (addressable when the walk started from a
	// pointer).
	Value reflect.Value
	// Secret marks values redacted by `config show` and the admin API.
	Secret bool
	// Path marks filesystem paths.
	Path bool
}

// Leaves lists every settable value of c in declaration order, upstreams by
// index. Nil *bool fields are included (their Value is the nil pointer).
func Leaves(c *Config) []Leaf {
	var out []Leaf
	walkLeaves(reflect.ValueOf(c).Elem(), "", func(l Leaf) { out = append(out, l) })
	return out
}

func walkLeaves(v reflect.Value, prefix string, fn func(Leaf)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := tomlName(f)
		if name == "" {
			continue
		}
		key := join(prefix, name)
		fv := v.Field(i)
		switch {
		case isLeaf(f.Type):
			tag := f.Tag.Get("fabrik")
			fn(Leaf{Key: key, Value: fv, Secret: tag == "secret", Path: tag == "path"})
		case f.Type.Kind() == reflect.Struct:
			walkLeaves(fv, key, fn)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			for j := 0; j < fv.Len(); j++ {
				walkLeaves(fv.Index(j), join(key, strconv.Itoa(j)), fn)
			}
		}
	}
}

// tomlName is the field's key, "" for fields that are not configuration.
func tomlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "-" || name == "" {
		return ""
	}
	return name
}

func isLeaf(t reflect.Type) bool {
	switch t {
	case byteSizeType, durationType, boolPtrType, stringsType:
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int:
		return true
	}
	return false
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string {
	return "FABRIK_CONFIG_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// FlagName is the command-line flag that overrides key.
func FlagName(key string) string {
	return "--config-" + strings.ReplaceAll(strings.ReplaceAll(key, ".", "-"), "_", "-")
}

// resolveName turns an override's name, upper-cased with underscores
// ("UPSTREAM_0_URL", "BUILD_TOOLS_GRADLE_PORT"), into a dotted key. Field
// names contain underscores too, so at each level the longest tag that
// prefixes the rest wins. A bare array name ("UPSTREAM") means the first
// field of element 0: the spec's `--config-upstream s3://...` shorthand.
func resolveName(name string) (string, bool) {
	return resolveIn(reflect.TypeOf(Config{}), name, "")
}

func resolveIn(t reflect.Type, name, prefix string) (string, bool) {
	type cand struct {
		f   reflect.StructField
		tag string
	}
	var cands []cand
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if n := tomlName(f); n != "" {
			cands = append(cands, cand{f, strings.ToUpper(n)})
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return len(cands[i].tag) > len(cands[j].tag) })
	for _, c := range cands {
		key := join(prefix, strings.ToLower(c.tag))
		ft := c.f.Type
		isArray := ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct
		if name == c.tag {
			switch {
			case isLeaf(ft):
				return key, true
			case isArray:
				first := ft.Elem().Field(0)
				return join(key, "0."+tomlName(first)), true
			}
			return "", false
		}
		rest, ok := strings.CutPrefix(name, c.tag+"_")
		if !ok {
			continue
		}
		switch {
		case isArray:
			idx, after, _ := strings.Cut(rest, "_")
			n, err := strconv.Atoi(idx)
			if err != nil || n < 0 || after == "" {
				return "", false
			}
			return resolveIn(ft.Elem(), after, join(key, strconv.Itoa(n)))
		case ft.Kind() == reflect.Struct:
			if k, ok := resolveIn(ft, rest, key); ok {
				return k, true
			}
		}
	}
	return "", false
}

// fieldAt finds the field for a dotted key in c, growing arrays when the key
// names an element past the end (FABRIK_CONFIG_UPSTREAM_0_URL may create
// upstream 0). It returns the leaf's struct field for its tags.
func fieldAt(c *Config, key string) (reflect.Value, reflect.StructField, error) {
	v := reflect.ValueOf(c).Elem()
	parts := strings.Split(key, ".")
	var sf reflect.StructField
	for i := 0; i < len(parts); i++ {
		switch v.Kind() {
		case reflect.Struct:
			f, ok := fieldByTag(v.Type(), parts[i])
			if !ok {
				return reflect.Value{}, sf, fmt.Errorf("unknown key %q", key)
			}
			sf = f
			v = v.FieldByIndex(f.Index)
			if isLeaf(f.Type) {
				if i != len(parts)-1 {
					return reflect.Value{}, sf, fmt.Errorf("unknown key %q", key)
				}
				return v, sf, nil
			}
		case reflect.Slice:
			n, err := strconv.Atoi(parts[i])
			if err != nil || n < 0 || n > 1000 {
				return reflect.Value{}, sf, fmt.Errorf("%q: %q is not an index", key, parts[i])
			}
			for v.Len() <= n {
				v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
			}
			v = v.Index(n)
		default:
			return reflect.Value{}, sf, fmt.Errorf("unknown key %q", key)
		}
	}
	return reflect.Value{}, sf, fmt.Errorf("%q is a table, not a value", key)
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); tomlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// fieldNames lists the keys one level below a struct type, for suggestions.
func fieldNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if n := tomlName(t.Field(i)); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// allKeys lists every key of the schema with arrays at index 0, for
// suggestions on misspelt environment variables and flags.
func allKeys() []string {
	c := Config{Upstream: make([]UpstreamConfig, 1)}
	var out []string
	for _, l := range Leaves(&c) {
		out = append(out, l.Key)
	}
	return out
}

// TOML spells the leaf's value as a TOML file would ("5GB" quoted, lists in
// brackets); "" for an unset *bool, whose default is decided by its user.
func (l Leaf) TOML() string { return display(l.Value) }
