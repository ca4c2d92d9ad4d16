package ops

import (
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"

	"github.com/tuist/fabrik-node/config"
)

// Redacted replaces secret values in GET /api/v1/admin/config.
const Redacted = "[redacted]"

// ConfigAliases are the spec's short names for live keys
// (`{"max_cache_size":"100GB","eviction_policy":"lfu"}`).
var ConfigAliases = map[string]string{
	"max_cache_size":  "cache.max_size",
	"max_size":        "cache.max_size",
	"eviction_policy": "cache.eviction_policy",
	"default_ttl":     "cache.default_ttl",
	"log_level":       "observability.log_level",
}

// ConfigValues lists every key of c with a JSON-friendly value: sizes and
// durations as their config spelling ("5GB", "7d"), unset booleans as null,
// secrets that are set as Redacted.
func ConfigValues(c *config.Config) map[string]any {
	out := map[string]any{}
	for _, l := range config.Leaves(c) {
		out[l.Key] = leafValue(l)
	}
	return out
}

func leafValue(l config.Leaf) any {
	v := l.Value
	if l.Secret {
		if v.IsZero() {
			return ""
		}
		return Redacted
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		return v.Elem().Interface()
	}
	if m, ok := v.Interface().(encoding.TextMarshaler); ok {
		if b, err := m.MarshalText(); err == nil {
			return string(b)
		}
	}
	return v.Interface()
}

// SetKeys returns c with changes applied: keys are dotted config keys or
// ConfigAliases, values are spelt as in a config file. Only keys in allowed
// may change; anything else is a *KeyError naming the key as the client
// sent it. The new values are validated like a loaded config. changedKeys
// are the resolved keys, sorted.
func SetKeys(c config.Config, changes map[string]string, allowed []string) (next config.Config, changedKeys []string, err error) {
	next = c
	leaves := map[string]config.Leaf{}
	for _, l := range config.Leaves(&next) {
		leaves[l.Key] = l
	}
	names := make([]string, 0, len(changes))
	for k := range changes {
		names = append(names, k)
	}
	sort.Strings(names) // the first refusal is the same on every try
	asSent := map[string]string{}
	for _, name := range names {
		key := name
		if k, ok := ConfigAliases[name]; ok {
			key = k
		}
		l, ok := leaves[key]
		switch {
		case !ok:
			return c, nil, &KeyError{Key: name, Reason: "no such configuration key"}
		case !slices.Contains(allowed, key):
			return c, nil, &KeyError{Key: name, Reason: fmt.Sprintf("cannot change while the node runs (live keys: %v); change it in the config file and restart", allowed)}
		}
		if err := setLeaf(l.Value, changes[name]); err != nil {
			return c, nil, &KeyError{Key: name, Reason: err.Error()}
		}
		asSent[key] = name
		changedKeys = append(changedKeys, key)
	}
	for _, p := range config.Validate(&next) {
		if name, ok := asSent[p.Key]; ok {
			return c, nil, &KeyError{Key: name, Reason: p.Message}
		}
	}
	sort.Strings(changedKeys)
	return next, changedKeys, nil
}

// setLeaf parses s into a config field the way the config loader would.
func setLeaf(v reflect.Value, s string) error {
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(s))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		v.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	default:
		return fmt.Errorf("cannot be set through the admin API")
	}
	return nil
}
