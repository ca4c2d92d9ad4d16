// Package tenant binds requests to the tenant their token names. It is the
// one place isolation is decided, so no adapter can forget it:
//
//   - On the build-tool side (every adapter's cache calls go through
//     router.Cache, which calls Scope), a request whose token carries a
//     tenant claim addresses only namespaces under "tenant/<name>/": its
//     Turborepo teams, Bazel instances, buckets, repositories and even the
//     CAS are that tenant's, whatever names the client sends. Blobs stay
//     deduplicated on disk (a tenant's CAS entry is a key pointing at the
//     shared blob), but a blob another tenant holds is a miss until this
//     tenant uploads it, so existence never leaks.
//   - On the Fabrik protocol (edges to a regional), namespaces arrive
//     already scoped; Allowed checks the caller's token may use them.
//
// Tokens without tenant claims, and nodes with auth off, keep single-tenant
// behaviour: nothing is rewritten.
package tenant

import (
	"context"
	"slices"
	"strings"

	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/messages"
)

// Root prefixes every tenant's namespaces.
const Root = "tenant/"

// Namespace is ns inside tenant t.
func Namespace(t, ns string) string { return Root + t + "/" + ns }

// Of returns the tenant a namespace belongs to, if it is a tenant's.
func Of(ns string) (string, bool) {
	rest, ok := strings.CutPrefix(ns, Root)
	if !ok {
		return "", false
	}
	t, _, ok := strings.Cut(rest, "/")
	return t, ok && t != ""
}

// Prefix is the namespace prefix of tenant t ("tenant/<t>/").
func Prefix(t string) string { return Root + t + "/" }

// Scope returns ref as the request in ctx may address it: inside its
// token's tenant when the token names one, unchanged otherwise.
func Scope(ctx context.Context, ref messages.Ref) messages.Ref {
	if explicit(ctx) {
		return ref
	}
	p, ok := auth.FromContext(ctx)
	if !ok || p.Tenant == "" {
		return ref
	}
	ref.Namespace = Namespace(p.Tenant, ref.Namespace)
	return ref
}

// ScopeAll is Scope for every ref of a batch (Bazel's FindMissingBlobs
// names thousands): the token is looked at once, and refs sharing a
// namespace share one scoped namespace string. It returns refs itself when
// nothing is rewritten, else a new slice; refs is never modified.
func ScopeAll(ctx context.Context, refs []messages.Ref) []messages.Ref {
	if explicit(ctx) {
		return refs
	}
	p, ok := auth.FromContext(ctx)
	if !ok || p.Tenant == "" {
		return refs
	}
	out := make([]messages.Ref, len(refs))
	var from, to string
	for i, ref := range refs {
		if ref.Namespace != from || to == "" {
			from, to = ref.Namespace, Namespace(p.Tenant, ref.Namespace)
		}
		out[i] = messages.Ref{Namespace: to, Key: ref.Key}
	}
	return out
}

// Allowed reports whether p may address namespace ns as it stands (the
// Fabrik protocol, whose namespaces are explicit). A tenant's namespace
// needs a token of that tenant, or a machine token listing it (or "*"); a
// namespace outside every tenant needs a token restricted to none. Tokens
// with no tenant claims at all are single-tenant and unrestricted, and so
// is every request when auth is off.
func Allowed(p auth.Principal, ns string) bool {
	if p.Anonymous {
		return p.Has(auth.Write) // auth disabled: everything; public: nothing
	}
	unrestricted := p.Tenant == "" && len(p.Tenants) == 0
	if unrestricted || slices.Contains(p.Tenants, "*") {
		return true
	}
	t, ok := Of(ns)
	if !ok {
		return false
	}
	return t == p.Tenant || slices.Contains(p.Tenants, t)
}

// ForListing is the namespace prefix a principal's listing is confined to:
// "" (everything) for admin and unrestricted tokens, the tenant's prefix
// for a tenant token.
func ForListing(p auth.Principal) string {
	if p.Tenant == "" || p.Has(auth.Admin) {
		return ""
	}
	return Prefix(p.Tenant)
}

type explicitKey struct{}

// Explicit marks ctx as carrying namespaces that are already absolute (the
// Fabrik protocol server, after Allowed): Scope leaves them alone.
func Explicit(ctx context.Context) context.Context {
	return context.WithValue(ctx, explicitKey{}, true)
}

func explicit(ctx context.Context) bool {
	v, _ := ctx.Value(explicitKey{}).(bool)
	return v
}
