package config

import (
	"reflect"
	"slices"
)

// LiveKeys can change in a running node (on SIGHUP or POST
// /api/v1/admin/config); every other key needs a restart because it shapes
// listeners, tiers or the store's layout.
var LiveKeys = []string{
	"observability.log_level",
	"cache.max_size",
	"cache.eviction_policy",
	"cache.default_ttl",
	"auth.public_key_file",
	"auth.public_keys_dir",
	"auth.jwks_url",
	"auth.key_refresh_interval",
}

// Reloadable compares a running config with a newly loaded one: changed
// lists every key whose value differs, refused the subset that cannot take
// effect without a restart.
func Reloadable(old, new *Config) (changed, refused []string) {
	before := leafValues(old)
	after := leafValues(new)
	seen := map[string]bool{}
	for _, keys := range [][]string{leafKeys(old), leafKeys(new)} {
		for _, k := range keys {
			if seen[k] {
				continue
			}
			seen[k] = true
			a, inA := before[k]
			b, inB := after[k]
			if inA == inB && reflect.DeepEqual(a, b) {
				continue
			}
			changed = append(changed, k)
			if !slices.Contains(LiveKeys, k) {
				refused = append(refused, k)
			}
		}
	}
	return changed, refused
}

// Live returns running with the LiveKeys of next applied and every other
// key left as it is: what a node adopts on reload.
func Live(running, next *Config) Config {
	out := *running
	out.Upstream = slices.Clone(running.Upstream)
	out.BuildTools.Enabled = slices.Clone(running.BuildTools.Enabled)
	out.P2P.Peers = slices.Clone(running.P2P.Peers)
	for _, k := range LiveKeys {
		dst, _, err1 := fieldAt(&out, k)
		src, _, err2 := fieldAt(next, k)
		if err1 == nil && err2 == nil {
			dst.Set(src)
		}
	}
	return out
}

// Reload loads the configuration again with the options the node started
// with and returns what the node should now run with (running plus the live
// changes), the keys that changed, and those that wait for a restart. On
// error the running config stays in force.
func Reload(opts LoadOptions, running *Config) (next Config, changed, refused []string, err error) {
	l, err := Load(opts)
	if err != nil {
		return *running, nil, nil, err
	}
	changed, refused = Reloadable(running, &l.Config)
	return Live(running, &l.Config), changed, refused, nil
}

func leafValues(c *Config) map[string]any {
	m := map[string]any{}
	for _, l := range Leaves(c) {
		m[l.Key] = l.Value.Interface()
	}
	return m
}

func leafKeys(c *Config) []string {
	var keys []string
	for _, l := range Leaves(c) {
		keys = append(keys, l.Key)
	}
	return keys
}
