package ops

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tenant"
	"github.com/tuist/fabrik-node/tier"
)

// Page sizes. A larger limit is capped rather than refused: a client asking
// for "everything" gets the largest page and pages on with offset.
const (
	defaultLimit = 100
	defaultTop   = 50
	maxLimit     = 1000
	// maxOffset keeps offset+limit far from overflow; a cache explorer never
	// pages a billion entries deep.
	maxOffset = 1_000_000_000
)

// Artifact is one entry of the listing (spec shape).
type Artifact struct {
	Hash         string           `json:"hash"`
	SizeBytes    int64            `json:"size_bytes"`
	CreatedAt    string           `json:"created_at"`
	LastAccessed string           `json:"last_accessed"`
	AccessCount  uint64           `json:"access_count"`
	Metadata     ArtifactMetadata `json:"metadata"`
}

// ArtifactMetadata is what the cache knows about an artifact's origin.
type ArtifactMetadata struct {
	BuildSystem string `json:"build_system"`
}

// ArtifactPage answers the listing, top and search endpoints.
type ArtifactPage struct {
	Artifacts []Artifact `json:"artifacts"`
	Total     int        `json:"total"`
	Limit     int        `json:"limit"`
	Offset    int        `json:"offset"`
	Sort      string     `json:"sort"`
}

func toArtifact(m messages.Meta) Artifact {
	return Artifact{
		Hash:         m.Hash,
		SizeBytes:    m.Size,
		CreatedAt:    rfc3339(m.CreatedAt),
		LastAccessed: rfc3339(m.LastAccess),
		AccessCount:  m.AccessCount,
		Metadata:     ArtifactMetadata{BuildSystem: buildSystemName(m.BuildSystem)},
	}
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// buildSystemName labels artifacts stored without one (direct CAS puts).
func buildSystemName(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// pageParams parses limit, offset and sort.
func pageParams(r *http.Request, defLimit int, defSort string) (limit, offset int, sort string, order before, err error) {
	if limit, err = intParam(r, "limit", defLimit, maxOffset); err != nil {
		return
	}
	limit = min(limit, maxLimit)
	if offset, err = intParam(r, "offset", 0, maxOffset); err != nil {
		return
	}
	sort = r.URL.Query().Get("sort")
	if sort == "" {
		sort = defSort
	}
	if order, err = orderFor(sort); err != nil {
		err = &badRequest{err.Error()}
	}
	return
}

func page(items []messages.Meta, total, limit, offset int, sort string) ArtifactPage {
	p := ArtifactPage{Artifacts: make([]Artifact, 0, len(items)), Total: total, Limit: limit, Offset: offset, Sort: sort}
	for _, m := range items {
		p.Artifacts = append(p.Artifacts, toArtifact(m))
	}
	return p
}

// list answers GET /api/v1/artifacts?limit=&offset=&sort=.
func (a *API) list(w http.ResponseWriter, r *http.Request) {
	limit, offset, sort, order, err := pageParams(r, defaultLimit, SortSizeDesc)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	items, total, err := a.pageFor(r, sort, order, offset, limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page(items, total, limit, offset, sort))
}

// pageFor is one page of a sort order as the request's token may see it:
// the cached ranking for global tokens, a scan confined to the tenant's
// blobs for a tenant token (one reverse-ref seek per blob: slower, never
// cached, and never showing a blob only another tenant's keys reach).
func (a *API) pageFor(r *http.Request, sort string, order before, offset, limit int) ([]messages.Meta, int, error) {
	within := scopeOf(r)
	if within == "" {
		return a.ranks.page(sort, order, offset, limit)
	}
	items, total, err := rank(a.Index, order, offset+limit, filter{within: within, idx: a.Index})
	if offset < len(items) {
		items = items[offset:]
	} else {
		items = nil
	}
	return items, total, err
}

// scopeOf is the namespace prefix the request's token is confined to (""
// for admin and single-tenant tokens, and with auth off).
func scopeOf(r *http.Request) string {
	p, ok := auth.FromContext(r.Context())
	if !ok {
		return ""
	}
	return tenant.ForListing(p)
}

// top answers GET /api/v1/artifacts/top?limit=: the most accessed.
func (a *API) top(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", defaultTop, maxOffset)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	limit = min(limit, maxLimit)
	order, _ := orderFor(SortCountDesc)
	items, total, err := a.pageFor(r, SortCountDesc, order, 0, limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page(items, total, limit, 0, SortCountDesc))
}

// search answers GET /api/v1/artifacts/search?query=&min_size=&max_size=
// &build_system=&hash_prefix=&limit=&offset=&sort=. query matches a substring of the
// hash or of the build system; sizes take units ("1MB"). Each search is one
// bounded scan (never cached: filters vary too much to reuse).
func (a *API) search(w http.ResponseWriter, r *http.Request) {
	limit, offset, sort, order, err := pageParams(r, defaultLimit, SortSizeDesc)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	f := filter{query: strings.ToLower(strings.TrimSpace(q.Get("query"))), buildSystem: q.Get("build_system"),
		within: scopeOf(r), idx: a.Index, hashPrefix: strings.ToLower(strings.TrimSpace(q.Get("hash_prefix")))}
	if f.minSize, err = sizeParam(q.Get("min_size"), "min_size"); err != nil {
		a.fail(w, r, err)
		return
	}
	if f.maxSize, err = sizeParam(q.Get("max_size"), "max_size"); err != nil {
		a.fail(w, r, err)
		return
	}
	if f.maxSize > 0 && f.maxSize < f.minSize {
		a.fail(w, r, badf("max_size (%d bytes) is below min_size (%d bytes)", f.maxSize, f.minSize))
		return
	}
	items, total, err := rank(a.Index, order, offset+limit, f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if offset < len(items) {
		items = items[offset:]
	} else {
		items = nil
	}
	writeJSON(w, http.StatusOK, page(items, total, limit, offset, sort))
}

func sizeParam(s, name string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := config.ParseByteSize(s)
	if err != nil {
		return 0, badf("%s: %v", name, err)
	}
	return int64(n), nil
}

// artifact answers GET /api/v1/artifacts/{hash}: 200 with the artifact, 404
// when the cache does not hold it. It does not count as an access.
func (a *API) artifact(w http.ResponseWriter, r *http.Request) {
	hash := strings.ToLower(r.PathValue("hash"))
	if b, err := hex.DecodeString(hash); err != nil || len(b) != 32 {
		a.fail(w, r, badf("%q is not a SHA-256 hash (64 hex digits)", r.PathValue("hash")))
		return
	}
	m, err := a.Index.BlobMeta(hash)
	if within := scopeOf(r); err == nil && within != "" {
		// Another tenant's blob is "not in the cache" for this token.
		if ok, rerr := a.Index.Referenced(hash, within); rerr != nil || !ok {
			err = fmt.Errorf("%w", tier.ErrNotFound)
		}
	}
	if errors.Is(err, tier.ErrNotFound) {
		a.fail(w, r, fmt.Errorf("artifact %s is not in the cache: %w", hash, errNotFound))
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toArtifact(m))
}
