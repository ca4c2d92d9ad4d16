// Package ghatest is a local stand-in for the GitHub Actions cache service:
// the v2 twirp API (CreateCacheEntry, FinalizeCacheEntryUpload,
// GetCacheEntryDownloadURL), the legacy v1 REST API (_apis/artifactcache),
// and Azure-Blob-style signed blob URLs (single PUT, PUT block + PUT
// blocklist, ranged GET, HEAD) that uploads and downloads go through.
//
// It keeps the semantics a client depends on: immutable entries (a second
// create of the same key and version in a scope is already_exists), lookups
// by exact key then prefix, branch scopes taken from the job token (write to
// the first writable scope, read through every scope in order), a size cap
// with least-recently-used eviction, and signed, expiring blob URLs. The
// real @actions/cache npm client is run against it in e2e to prove it
// faithful (e2e/gha_test.go).
package ghatest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultCap is GitHub's per-repository cache size limit.
const DefaultCap int64 = 10 << 30

// Scope is one branch scope in a job token ("refs/heads/main").
type Scope struct {
	Scope      string
	Permission int // 1 read, 2 write, 3 both
}

// Permission bits, as GitHub encodes them in the token's "ac" claim.
const (
	Read  = 1
	Write = 2
)

// entry is one cache entry.
type entry struct {
	id         int64
	scope      string
	key        string
	version    string
	finalized  bool
	data       []byte
	blocks     map[string][]byte // staged, uncommitted blocks
	committed  bool              // blob written
	created    time.Time
	lastAccess time.Time
}

// Counts are what the server saw, for tests that measure a client.
type Counts struct {
	Creates, CreateConflicts, Finalizes, Lookups, Hits, BlobPuts, BlobGets, Evictions int64
}

// Server is the fake service. Start it with New; URL is the base for
// ACTIONS_RESULTS_URL and ACTIONS_CACHE_URL.
type Server struct {
	URL string
	// Cap bounds the bytes of finalized entries (DefaultCap).
	Cap int64

	secret []byte
	srv    *http.Server
	ln     net.Listener

	mu      sync.Mutex
	nextID  int64
	entries map[int64]*entry
	clock   func() time.Time

	creates, conflicts, finalizes, lookups, hits, blobPuts, blobGets, evictions atomic.Int64
}

// New starts a server on 127.0.0.1 (port 0).
func New() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &Server{
		URL:     "http://" + ln.Addr().String() + "/",
		Cap:     DefaultCap,
		secret:  []byte("ghatest-secret"),
		ln:      ln,
		entries: map[int64]*entry{},
		clock:   time.Now,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /twirp/github.actions.results.api.v1.CacheService/{method}", s.twirp)
	mux.HandleFunc("GET /_apis/artifactcache/cache", s.v1Lookup)
	mux.HandleFunc("POST /_apis/artifactcache/caches", s.v1Reserve)
	mux.HandleFunc("PATCH /_apis/artifactcache/caches/{id}", s.v1Chunk)
	mux.HandleFunc("POST /_apis/artifactcache/caches/{id}", s.v1Commit)
	mux.HandleFunc("/devstoreaccount1/cache/{id}", s.blob)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// Counts returns what the server has seen so far.
func (s *Server) Counts() Counts {
	return Counts{
		Creates: s.creates.Load(), CreateConflicts: s.conflicts.Load(), Finalizes: s.finalizes.Load(),
		Lookups: s.lookups.Load(), Hits: s.hits.Load(), BlobPuts: s.blobPuts.Load(), BlobGets: s.blobGets.Load(),
		Evictions: s.evictions.Load(),
	}
}

// Entries lists finalized entry keys by scope, for assertions.
func (s *Server) Entries() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]string{}
	for _, e := range s.entries {
		if e.finalized {
			out[e.scope] = append(out[e.scope], e.key)
		}
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

// Token mints a job token like the runner's ACTIONS_RUNTIME_TOKEN: a JWT
// whose "ac" claim lists the branch scopes, first the job's own branch.
func (s *Server) Token(ttl time.Duration, scopes ...Scope) string {
	ac, _ := json.Marshal(scopes)
	now := s.clock()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"ac":  string(ac),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(ttl).Unix(),
		"iat": now.Unix(),
	})
	signed, err := tok.SignedString(s.secret)
	if err != nil {
		panic(err)
	}
	return signed
}

// auth validates the bearer token and returns its scopes.
func (s *Server) auth(r *http.Request) ([]Scope, error) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return nil, fmt.Errorf("no bearer token")
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return s.secret, nil },
		jwt.WithValidMethods([]string{"HS256"})); err != nil {
		return nil, err
	}
	ac, _ := claims["ac"].(string)
	var scopes []Scope
	if err := json.Unmarshal([]byte(ac), &scopes); err != nil {
		return nil, fmt.Errorf("ac claim: %w", err)
	}
	return scopes, nil
}

func writable(scopes []Scope) (string, bool) {
	for _, sc := range scopes {
		if sc.Permission&Write != 0 {
			return sc.Scope, true
		}
	}
	return "", false
}

// twirpError answers like a twirp server: JSON {code, msg} and the code's
// HTTP status.
func twirpError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": code, "msg": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// twirpRequest holds every field of the three requests. Clients send proto
// field names (protobuf-ts with useProtoFieldName) or JSON names; int64
// sizes arrive as strings (protojson) or numbers (go-actions-cache).
type twirpRequest struct {
	Key          string          `json:"key"`
	Version      string          `json:"version"`
	RestoreKeys  []string        `json:"restore_keys"`
	RestoreKeysC []string        `json:"restoreKeys"`
	SizeBytes    json.RawMessage `json:"size_bytes"`
	SizeBytesC   json.RawMessage `json:"sizeBytes"`
}

func (t *twirpRequest) size() (int64, error) {
	raw := t.SizeBytes
	if raw == nil {
		raw = t.SizeBytesC
	}
	str := strings.Trim(string(raw), `"`)
	if str == "" {
		return 0, nil
	}
	return strconv.ParseInt(str, 10, 64)
}

func (s *Server) twirp(w http.ResponseWriter, r *http.Request) {
	scopes, err := s.auth(r)
	if err != nil {
		twirpError(w, http.StatusUnauthorized, "unauthenticated", err.Error())
		return
	}
	var req twirpRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		twirpError(w, http.StatusBadRequest, "malformed", err.Error())
		return
	}
	if req.Key == "" || req.Version == "" {
		twirpError(w, http.StatusBadRequest, "invalid_argument", "key and version are required")
		return
	}
	switch r.PathValue("method") {
	case "CreateCacheEntry":
		e, code, msg := s.create(scopes, req.Key, req.Version)
		if e == nil {
			status := http.StatusConflict
			if code == "permission_denied" {
				status = http.StatusForbidden
			}
			twirpError(w, status, code, msg)
			return
		}
		writeJSON(w, map[string]any{"ok": true, "signed_upload_url": s.signedURL(e.id, "cw")})
	case "FinalizeCacheEntryUpload":
		size, err := req.size()
		if err != nil {
			twirpError(w, http.StatusBadRequest, "invalid_argument", "size_bytes: "+err.Error())
			return
		}
		id, msg := s.finalize(scopes, req.Key, req.Version, size)
		if msg != "" {
			writeJSON(w, map[string]any{"ok": false, "message": msg})
			return
		}
		writeJSON(w, map[string]any{"ok": true, "entry_id": strconv.FormatInt(id, 10)})
	case "GetCacheEntryDownloadURL":
		restore := req.RestoreKeys
		if restore == nil {
			restore = req.RestoreKeysC
		}
		e := s.lookup(scopes, req.Key, restore, req.Version)
		if e == nil {
			writeJSON(w, map[string]any{"ok": false, "signed_download_url": "", "matched_key": ""})
			return
		}
		writeJSON(w, map[string]any{"ok": true, "signed_download_url": s.signedURL(e.id, "r"), "matched_key": e.key})
	default:
		twirpError(w, http.StatusNotFound, "bad_route", "no method "+r.PathValue("method"))
	}
}

// create reserves an entry in the token's writable scope. It returns the
// twirp code and message when it refuses.
func (s *Server) create(scopes []Scope, key, version string) (*entry, string, string) {
	scope, ok := writable(scopes)
	if !ok {
		return nil, "permission_denied", "token has no writable cache scope"
	}
	if len(key) > 512 {
		return nil, "invalid_argument", "key longer than 512 characters"
	}
	s.creates.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		if e.scope == scope && e.key == key && e.version == version {
			s.conflicts.Add(1)
			return nil, "already_exists", "cache entry with the same key, version, and scope already exists"
		}
	}
	s.nextID++
	now := s.clock()
	e := &entry{id: s.nextID, scope: scope, key: key, version: version, blocks: map[string][]byte{}, created: now, lastAccess: now}
	s.entries[e.id] = e
	return e, "", ""
}

func (s *Server) finalize(scopes []Scope, key, version string, size int64) (int64, string) {
	scope, ok := writable(scopes)
	if !ok {
		return 0, "token has no writable cache scope"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		if e.scope != scope || e.key != key || e.version != version || e.finalized {
			continue
		}
		if !e.committed {
			return 0, "no blob was uploaded for this entry"
		}
		if int64(len(e.data)) != size {
			return 0, fmt.Sprintf("size_bytes %d does not match the uploaded %d bytes", size, len(e.data))
		}
		e.finalized = true
		e.blocks = nil
		s.finalizes.Add(1)
		s.evictLocked()
		return e.id, ""
	}
	return 0, "no reserved entry for this key and version"
}

// evictLocked removes least recently used finalized entries while the
// total is over the cap.
func (s *Server) evictLocked() {
	for {
		var total int64
		var oldest *entry
		for _, e := range s.entries {
			if !e.finalized {
				continue
			}
			total += int64(len(e.data))
			if oldest == nil || e.lastAccess.Before(oldest.lastAccess) || (e.lastAccess.Equal(oldest.lastAccess) && e.id < oldest.id) {
				oldest = e
			}
		}
		if total <= s.Cap || oldest == nil {
			return
		}
		delete(s.entries, oldest.id)
		s.evictions.Add(1)
	}
}

// lookup follows GitHub's search: in each readable scope in token order
// (the job's branch, then the default branch), the exact key, then the
// newest entry whose key starts with the key, then each restore key as a
// prefix; only entries of the same version match.
func (s *Server) lookup(scopes []Scope, key string, restore []string, version string) *entry {
	s.lookups.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	prefixes := append([]string{key}, restore...)
	for _, sc := range scopes {
		if sc.Permission&Read == 0 {
			continue
		}
		var found *entry
		for _, e := range s.entries {
			if e.finalized && e.scope == sc.Scope && e.version == version && e.key == key {
				found = e
			}
		}
		for _, p := range prefixes {
			if found != nil {
				break
			}
			for _, e := range s.entries {
				if e.finalized && e.scope == sc.Scope && e.version == version && strings.HasPrefix(e.key, p) &&
					(found == nil || e.created.After(found.created) || (e.created.Equal(found.created) && e.id > found.id)) {
					found = e
				}
			}
		}
		if found != nil {
			found.lastAccess = s.clock()
			s.hits.Add(1)
			return found
		}
	}
	return nil
}

// signedURL is an Azure-style SAS URL for one entry's blob: the path names
// an account, a container and the blob, the query holds the permission,
// the expiry and an HMAC over them.
func (s *Server) signedURL(id int64, perm string) string {
	exp := s.clock().Add(time.Hour).UTC().Format(time.RFC3339)
	q := url.Values{"sp": {perm}, "se": {exp}, "sv": {"2024-11-04"}, "sr": {"b"}}
	q.Set("sig", s.sign(id, perm, exp))
	return fmt.Sprintf("%sdevstoreaccount1/cache/%d?%s", s.URL, id, q.Encode())
}

func (s *Server) sign(id int64, perm, exp string) string {
	m := hmac.New(sha256.New, s.secret)
	fmt.Fprintf(m, "%d\n%s\n%s", id, perm, exp)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// checkSAS verifies a blob request's signature, expiry and permission.
func (s *Server) checkSAS(r *http.Request, id int64, need string) bool {
	q := r.URL.Query()
	perm, exp, sig := q.Get("sp"), q.Get("se"), q.Get("sig")
	if !hmac.Equal([]byte(sig), []byte(s.sign(id, perm, exp))) || !strings.Contains(perm, need) {
		return false
	}
	t, err := time.Parse(time.RFC3339, exp)
	return err == nil && s.clock().Before(t)
}

func azureError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("x-ms-error-code", code)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, msg)
}

// blob serves the signed blob URLs the way Azure Blob Storage does for the
// calls the clients make: Put Blob, Put Block, Put Block List, Get Blob
// (with x-ms-range or Range) and Get Blob Properties.
func (s *Server) blob(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		azureError(w, http.StatusNotFound, "BlobNotFound", "no such blob")
		return
	}
	w.Header().Set("x-ms-request-id", strconv.FormatInt(time.Now().UnixNano(), 36))
	w.Header().Set("x-ms-version", "2024-11-04")
	switch r.Method {
	case http.MethodPut:
		if !s.checkSAS(r, id, "w") {
			azureError(w, http.StatusForbidden, "AuthenticationFailed", "signature, permission or expiry refused")
			return
		}
		s.putBlob(w, r, id)
	case http.MethodGet, http.MethodHead:
		if !s.checkSAS(r, id, "r") {
			azureError(w, http.StatusForbidden, "AuthenticationFailed", "signature, permission or expiry refused")
			return
		}
		s.getBlob(w, r, id)
	default:
		azureError(w, http.StatusMethodNotAllowed, "UnsupportedHttpVerb", r.Method)
	}
}

// maxBlob bounds one upload in memory; tests never come near it.
const maxBlob = 1 << 30

func (s *Server) putBlob(w http.ResponseWriter, r *http.Request, id int64) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBlob))
	if err != nil {
		azureError(w, http.StatusBadRequest, "InvalidInput", err.Error())
		return
	}
	if cl := r.ContentLength; cl >= 0 && int64(len(data)) != cl {
		azureError(w, http.StatusBadRequest, "InvalidInput", "body shorter than Content-Length")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	if !ok || e.finalized {
		azureError(w, http.StatusConflict, "BlobImmutable", "entry is not open for upload")
		return
	}
	q := r.URL.Query()
	switch q.Get("comp") {
	case "":
		if r.Header.Get("x-ms-blob-type") != "BlockBlob" {
			azureError(w, http.StatusBadRequest, "MissingRequiredHeader", "x-ms-blob-type: BlockBlob is required")
			return
		}
		e.data, e.committed = data, true
	case "block":
		bid := q.Get("blockid")
		if _, err := base64.StdEncoding.DecodeString(bid); err != nil || bid == "" {
			azureError(w, http.StatusBadRequest, "InvalidQueryParameterValue", "blockid must be base64")
			return
		}
		e.blocks[bid] = data
	case "blocklist":
		ids, err := parseBlockList(data)
		if err != nil {
			azureError(w, http.StatusBadRequest, "InvalidXmlDocument", err.Error())
			return
		}
		var out []byte
		for _, bid := range ids {
			b, ok := e.blocks[bid]
			if !ok {
				azureError(w, http.StatusBadRequest, "InvalidBlockList", "block "+bid+" was not staged")
				return
			}
			out = append(out, b...)
		}
		e.data, e.committed, e.blocks = out, true, map[string][]byte{}
	default:
		azureError(w, http.StatusBadRequest, "InvalidQueryParameterValue", "comp="+q.Get("comp"))
		return
	}
	s.blobPuts.Add(1)
	sum := sha256.Sum256(e.data)
	w.Header().Set("ETag", `"0x`+strings.ToUpper(hex.EncodeToString(sum[:8]))+`"`)
	w.Header().Set("Last-Modified", s.clock().UTC().Format(http.TimeFormat))
	w.Header().Set("x-ms-request-server-encrypted", "true")
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, id int64) {
	s.mu.Lock()
	e, ok := s.entries[id]
	var data []byte
	if ok && e.finalized {
		data = e.data
	}
	s.mu.Unlock()
	if !ok || !e.finalized {
		azureError(w, http.StatusNotFound, "BlobNotFound", "the specified blob does not exist")
		return
	}
	s.blobGets.Add(1)
	h := w.Header()
	sum := sha256.Sum256(data)
	h.Set("ETag", `"0x`+strings.ToUpper(hex.EncodeToString(sum[:8]))+`"`)
	h.Set("Last-Modified", e.created.UTC().Format(http.TimeFormat))
	h.Set("x-ms-blob-type", "BlockBlob")
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	rng := r.Header.Get("x-ms-range")
	if rng == "" {
		rng = r.Header.Get("Range")
	}
	start, end := int64(0), int64(len(data))-1
	partial := false
	if rng != "" {
		var ok bool
		start, end, ok = parseRange(rng, int64(len(data)))
		if !ok {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", len(data)))
			azureError(w, http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "range not satisfiable")
			return
		}
		partial = true
	}
	h.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, len(data)))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	if r.Method == http.MethodGet && end >= start {
		w.Write(data[start : end+1])
	}
}

// parseRange reads "bytes=a-" or "bytes=a-b".
func parseRange(h string, size int64) (int64, int64, bool) {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return 0, 0, false
	}
	a, b, _ := strings.Cut(spec, "-")
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 || (start >= size && size > 0) {
		return 0, 0, false
	}
	end := size - 1
	if b != "" {
		if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < start {
			return 0, 0, false
		}
		end = min(end, size-1)
	}
	return start, end, true
}
