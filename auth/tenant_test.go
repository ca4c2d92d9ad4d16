package auth_test

import (
	"testing"

	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/auth/authtest"
)

// A token's tenant comes from the configured claim (project_id by default),
// a machine token's tenants from "tenants"; names unsafe as a namespace
// segment invalidate the token; require_tenant refuses tokens naming none
// (admin tokens excepted).
func TestTenantClaims(t *testing.T) {
	keys := authtest.New(t)
	a, _ := newAuth(t, keys.Config())
	p, err := a.Authenticate(keys.Token(t, authtest.Project("acme")), auth.Read)
	if err != nil || p.Tenant != "acme" {
		t.Fatalf("project_id tenant: %+v %v", p, err)
	}
	p, err = a.Authenticate(keys.Token(t, authtest.Claim("tenants", []string{"acme", "beta"})), auth.Read)
	if err != nil || len(p.Tenants) != 2 || p.Tenant != "" {
		t.Fatalf("machine token tenants: %+v %v", p, err)
	}
	for _, bad := range []any{"a/b", "..", "", "x y", 42} {
		if _, err := a.Authenticate(keys.Token(t, authtest.Project("ok"), authtest.Claim("project_id", bad)), auth.Read); err == nil && bad != "" {
			t.Errorf("tenant %v accepted", bad)
		}
	}

	cfg := keys.Config()
	cfg.TenantClaim = "org"
	cfg.RequireTenant = true
	b, _ := newAuth(t, cfg)
	if p, err := b.Authenticate(keys.Token(t, authtest.Claim("org", "acme")), auth.Read); err != nil || p.Tenant != "acme" {
		t.Fatalf("renamed claim: %+v %v", p, err)
	}
	if _, err := b.Authenticate(keys.Token(t), auth.Read); err == nil {
		t.Fatal("require_tenant accepted a token naming no tenant")
	}
	if _, err := b.Authenticate(keys.Token(t, authtest.Scopes("admin")), auth.Admin); err != nil {
		t.Fatalf("require_tenant refused an admin token: %v", err)
	}
}
