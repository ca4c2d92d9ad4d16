package tenant_test

import (
	"context"
	"testing"

	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tenant"
)

func TestScope(t *testing.T) {
	ref := messages.Ref{Namespace: "turbo/team_a", Key: "k"}
	if got := tenant.Scope(context.Background(), ref); got != ref {
		t.Errorf("no principal: %v", got)
	}
	ctx := auth.NewContext(context.Background(), auth.Principal{Tenant: "acme"})
	if got := tenant.Scope(ctx, ref); got.Namespace != "tenant/acme/turbo/team_a" || got.Key != "k" {
		t.Errorf("tenant token: %v", got)
	}
	if got := tenant.Scope(tenant.Explicit(ctx), ref); got != ref {
		t.Errorf("explicit namespaces scoped again: %v", got)
	}
	if got := tenant.Scope(auth.NewContext(context.Background(), auth.Principal{Subject: "legacy"}), ref); got != ref {
		t.Errorf("single-tenant token: %v", got)
	}
}

// ScopeAll scopes every ref exactly as Scope does one, and leaves the
// caller's slice alone.
func TestScopeAll(t *testing.T) {
	refs := []messages.Ref{{Namespace: "cas", Key: "a"}, {Namespace: "cas", Key: "b"}, {Namespace: "gradle", Key: "c"}, {Namespace: "cas", Key: "d"}}
	orig := append([]messages.Ref(nil), refs...)
	for _, ctx := range []context.Context{
		context.Background(),
		auth.NewContext(context.Background(), auth.Principal{Tenant: "acme"}),
		tenant.Explicit(auth.NewContext(context.Background(), auth.Principal{Tenant: "acme"})),
		auth.NewContext(context.Background(), auth.Principal{Subject: "legacy"}),
	} {
		got := tenant.ScopeAll(ctx, refs)
		if len(got) != len(refs) {
			t.Fatalf("%d refs scoped to %d", len(refs), len(got))
		}
		for i := range refs {
			if want := tenant.Scope(ctx, refs[i]); got[i] != want {
				t.Errorf("ref %d: %v, Scope says %v", i, got[i], want)
			}
		}
	}
	for i := range refs {
		if refs[i] != orig[i] {
			t.Fatalf("ScopeAll rewrote the caller's ref %d: %v", i, refs[i])
		}
	}
}

func TestAllowed(t *testing.T) {
	acme, beta := tenant.Namespace("acme", "gradle"), tenant.Namespace("beta", "gradle")
	edge := auth.Principal{Tenants: []string{"acme"}}
	all := auth.Principal{Tenants: []string{"*"}}
	user := auth.Principal{Tenant: "beta"}
	legacy := auth.Principal{Subject: "no tenant claims"}
	for _, c := range []struct {
		p    auth.Principal
		ns   string
		want bool
	}{
		{edge, acme, true}, {edge, beta, false}, {edge, "gradle", false},
		{all, beta, true}, {all, "gradle", true},
		{user, beta, true}, {user, acme, false}, {user, "gradle", false},
		{legacy, acme, true}, {legacy, "gradle", true},
	} {
		if got := tenant.Allowed(c.p, c.ns); got != c.want {
			t.Errorf("Allowed(%+v, %q) = %v, want %v", c.p, c.ns, got, c.want)
		}
	}
	if tn, ok := tenant.Of("tenant/acme/turbo/x"); !ok || tn != "acme" {
		t.Errorf("Of: %q %v", tn, ok)
	}
	if _, ok := tenant.Of("turbo/x"); ok {
		t.Error("Of accepted a namespace outside every tenant")
	}
}
