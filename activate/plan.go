package activate

import (
	"sort"
	"strings"
)

// ManagedVar lists, space-separated, the variables the hook set. It is
// exported so that a nested shell knows them too. A variable not in it that
// is already set belongs to the user: never overwritten, never unset.
const ManagedVar = "__FABRIK_SET"

// Plan is what one activation does to the environment.
type Plan struct {
	Set   []Var
	Unset []string
	// Managed is the new value of ManagedVar.
	Managed []string
}

// NewPlan compares the wanted exports with the environment. env is the
// shell's environment (as the hook's child process sees it); want is nil
// when the directory is in no project.
func NewPlan(env map[string]string, want []Var) Plan {
	managed := map[string]bool{}
	for _, n := range strings.Fields(env[ManagedVar]) {
		managed[n] = true
	}
	var p Plan
	wanted := map[string]bool{}
	for _, v := range want {
		wanted[v.Name] = true
		if _, set := env[v.Name]; set && !managed[v.Name] {
			continue // the user's own
		}
		p.Set = append(p.Set, v)
		p.Managed = append(p.Managed, v.Name)
	}
	for n := range managed {
		if !wanted[n] {
			p.Unset = append(p.Unset, n)
		}
	}
	sort.Strings(p.Unset)
	return p
}

// EnvMap turns os.Environ() into a map.
func EnvMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}
