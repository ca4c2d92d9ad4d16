package config

import (
	"strings"
	"testing"
)

func TestSccacheDefaultsAndValidation(t *testing.T) {
	c := Default(RoleEdge)
	if c.BuildTools.Sccache.Bind != "127.0.0.1:5073" || !strings.Contains(strings.Join(c.BuildTools.Enabled, ","), "sccache") {
		t.Fatalf("edge defaults: sccache bind %q, enabled %v", c.BuildTools.Sccache.Bind, c.BuildTools.Enabled)
	}
	if ps := Validate(&c); len(ps) != 0 {
		t.Fatalf("defaults invalid: %v", ps)
	}
	for name, mutate := range map[string]func(*SccacheConfig){
		"half a key pair": func(s *SccacheConfig) { s.AccessKeyID = "AKID" },
		"bad bind":        func(s *SccacheConfig) { s.Bind = "5073" },
		"bad port":        func(s *SccacheConfig) { s.Port = 70000 },
		"negative expiry": func(s *SccacheConfig) { s.MultipartExpiry = -1 },
	} {
		c := Default(RoleEdge)
		mutate(&c.BuildTools.Sccache)
		ps := Validate(&c)
		if len(ps) != 1 || !strings.HasPrefix(ps[0].Key, "build_tools.sccache.") {
			t.Errorf("%s: problems %v, want one under build_tools.sccache", name, ps)
		}
	}
	// The secret is redacted by `config show` and the admin API.
	for _, l := range Leaves(&c) {
		if l.Key == "build_tools.sccache.secret_access_key" && !l.Secret {
			t.Fatal("secret_access_key is not marked secret")
		}
	}
}
