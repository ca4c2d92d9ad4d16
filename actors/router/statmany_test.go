package router_test

import (
	"context"
	"testing"

	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tenant"
)

// StatMany answers every ref in order: local hits from the one batch, local
// misses from the upstreams, and misses everywhere as not found.
func TestStatManyLocalThenUpstreams(t *testing.T) {
	e := newEnv(t, up{}, up{})
	e.put(t, ref("local"), body(t, 10))
	e.ups[1].Seed(ref("up"), body(t, 20))
	refs := []messages.Ref{ref("missing"), ref("local"), ref("up"), ref("local")}
	res, err := e.cache.StatMany(context.Background(), refs)
	if err != nil || len(res) != len(refs) {
		t.Fatalf("StatMany = %d results, %v", len(res), err)
	}
	want := []struct {
		found bool
		tier  string
		size  int64
	}{{false, "", 0}, {true, "local", 10}, {true, "upstream-1", 20}, {true, "local", 10}}
	for i, w := range want {
		r := res[i]
		if r.Found != w.found || (w.found && (r.Tier != w.tier || r.Meta.Size != w.size)) {
			t.Errorf("result %d (%s) = %+v, want found=%v tier=%q size=%d", i, refs[i], r, w.found, w.tier, w.size)
		}
	}
	if e.local(ref("up")) {
		t.Fatal("StatMany wrote an upstream hit back")
	}
}

// A token's tenant scopes every ref of a batch, as it does a Stat: a
// tenant sees its own entries and not another tenant's or the unscoped ones.
func TestStatManyIsTenantScoped(t *testing.T) {
	e := newEnv(t, up{})
	e.put(t, messages.Ref{Namespace: tenant.Namespace("a", "gradle"), Key: "k"}, body(t, 5))
	e.put(t, ref("plain"), body(t, 5))
	e.ups[0].Seed(messages.Ref{Namespace: tenant.Namespace("b", "gradle"), Key: "u"}, body(t, 7))
	refs := []messages.Ref{ref("k"), ref("plain"), ref("u")}
	for _, tc := range []struct {
		tenant string
		want   []bool
	}{{"a", []bool{true, false, false}}, {"b", []bool{false, false, true}}} {
		ctx := auth.NewContext(context.Background(), auth.Principal{Subject: "s", Tenant: tc.tenant})
		res, err := e.cache.StatMany(ctx, refs)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range tc.want {
			if res[i].Found != w {
				t.Errorf("tenant %s: %s found=%v, want %v", tc.tenant, refs[i], res[i].Found, w)
			}
		}
	}
}
