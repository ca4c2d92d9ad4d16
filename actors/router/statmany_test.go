package router_test

import (
	"context"
	"testing"

	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tenant"
)

// StatMany answers every ref in order: local hits from the one pass over
// the store, local misses from the upstreams, and misses everywhere as -1.
func TestStatManyLocalThenUpstreams(t *testing.T) {
	e := newEnv(t, up{}, up{})
	e.put(t, ref("local"), body(t, 10))
	e.ups[1].Seed(ref("up"), body(t, 20))
	refs := []messages.Ref{ref("missing"), ref("local"), ref("up"), ref("local")}
	sizes, err := e.cache.StatMany(context.Background(), refs)
	if err != nil || len(sizes) != len(refs) {
		t.Fatalf("StatMany = %d results, %v", len(sizes), err)
	}
	for i, want := range []int64{-1, 10, 20, 10} {
		if sizes[i] != want {
			t.Errorf("result %d (%s) = %d, want %d", i, refs[i], sizes[i], want)
		}
	}
	if e.local(ref("up")) {
		t.Fatal("StatMany wrote an upstream hit back")
	}
}

// Without an upstream that serves reads (none, or only a write-only
// replica), local misses are answered as misses at once: the replica is
// never asked.
func TestStatManyWithoutReadableUpstreams(t *testing.T) {
	for name, ups := range map[string][]up{"none": nil, "replica only": {{writeOnly: true}}} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, ups...)
			e.put(t, ref("local"), body(t, 10))
			for _, u := range e.ups {
				u.Seed(ref("replica"), body(t, 20))
			}
			for range 2 { // the router's answer is kept after the first call
				sizes, err := e.cache.StatMany(context.Background(), []messages.Ref{ref("local"), ref("replica"), ref("missing")})
				if err != nil || len(sizes) != 3 || sizes[0] != 10 || sizes[1] != -1 || sizes[2] != -1 {
					t.Fatalf("StatMany = %v, %v; want [10 -1 -1]", sizes, err)
				}
			}
			for _, u := range e.ups {
				if n := u.Count("stat"); n != 0 {
					t.Errorf("%s was asked %d times", u.Name(), n)
				}
			}
		})
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
		sizes, err := e.cache.StatMany(ctx, refs)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range tc.want {
			if found := sizes[i] >= 0; found != w {
				t.Errorf("tenant %s: %s found=%v, want %v", tc.tenant, refs[i], found, w)
			}
		}
	}
}
