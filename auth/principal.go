package auth

import (
	"context"
	"time"
)

// Scope is what a request needs from its token.
type Scope string

const (
	// Authenticated needs any valid token, whatever its permissions. It is
	// the zero value so that a forgotten mapping fails closed.
	Authenticated Scope = ""
	// Public needs no token at all (health checks, CORS preflights).
	Public Scope = "public"
	// Read is the cache:read permission: lookups and downloads.
	Read Scope = "cache:read"
	// Write is the cache:write permission: uploads.
	Write Scope = "cache:write"
	// Admin is the admin permission: the admin API. A token holding admin is
	// also allowed to read and write, so operators need one token, not three.
	Admin Scope = "admin"
)

// scopeSet is a bit set of the scopes a principal holds, so a check on the
// request path is one AND, not a walk over strings.
type scopeSet uint8

const (
	hasRead scopeSet = 1 << iota
	hasWrite
	hasAdmin
	allScopes = hasRead | hasWrite | hasAdmin
)

func scopeBits(s Scope) scopeSet {
	switch s {
	case Read:
		return hasRead
	case Write:
		return hasWrite
	case Admin:
		return hasAdmin
	}
	return 0
}

func scopesFromPermissions(perms []string) scopeSet {
	var set scopeSet
	for _, p := range perms {
		set |= scopeBits(Scope(p))
	}
	if set&hasAdmin != 0 {
		set = allScopes
	}
	return set
}

// Principal is who a request acts for. Adapters read it with FromContext for
// logs and metrics; sub, project_id and instance_id come from the token.
type Principal struct {
	// Subject is the token's sub (the customer, or the machine).
	Subject string
	// ProjectID and InstanceID are the optional project_id and instance_id
	// claims.
	ProjectID  string
	InstanceID string
	// Tenant is the tenant the token is bound to (the auth.tenant_claim
	// claim, project_id by default): everything the request touches lives
	// inside it. "" means single-tenant.
	Tenant string
	// Tenants lists the tenants a machine token may act for (an edge in
	// front of a regional); "*" means all.
	Tenants []string
	// Permissions is the token's permissions claim as sent.
	Permissions []string
	// KeyID is the kid the token was signed with, for rotation diagnostics.
	KeyID string
	// ExpiresAt is the token's exp.
	ExpiresAt time.Time
	// Anonymous is true when no token was checked: auth is disabled (then
	// the principal holds every scope) or the endpoint is public (then it
	// holds none).
	Anonymous bool

	scopes scopeSet
}

// Has reports whether the principal may do what s needs.
func (p Principal) Has(s Scope) bool {
	switch s {
	case Authenticated:
		return !p.Anonymous || p.scopes == allScopes
	case Public:
		return true
	}
	bits := scopeBits(s)
	return bits != 0 && p.scopes&bits == bits
}

// anonymous is the principal of every request when auth is disabled.
var anonymous = Principal{Subject: "anonymous", Anonymous: true, scopes: allScopes}

// publicPrincipal is the principal of a tokenless request to a public
// endpoint while auth is enabled: it may do nothing that needs a scope.
var publicPrincipal = Principal{Subject: "anonymous", Anonymous: true}

type principalKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal the auth middleware or interceptor put in
// ctx; ok is false when the request did not pass through one.
func FromContext(ctx context.Context) (p Principal, ok bool) {
	p, ok = ctx.Value(principalKey{}).(Principal)
	return p, ok
}
