// Package gha is the GitHub Actions cache as a storage tier: inside an
// Actions job, an edge keeps artifacts in the repository's Actions cache,
// so the next job (or the next run) starts warm with no configuration.
//
// Mapping: one cache entry per artifact. An entry's key is
// "<prefix><sha256 of the ref>", so every key has the same length and
// GitHub's prefix matching (a lookup of K also matches entries named K...)
// can only ever match the entry itself; the matched key is checked anyway.
// An entry holds a small header (magic, length, JSON metadata: hash, size,
// build system) followed by the artifact's bytes, so Stat reads only the
// header and Get verifies what it serves.
//
// Why not packs: entries are immutable and lookups are by key, so a pack of
// many artifacts needs an index that a later job can find, and a shared
// mutable index is exactly what immutable entries cannot give without
// races between jobs. Writes run in the upload pool, off the build's path,
// so the three round trips of an entry (create, blob upload, finalize;
// measured in TestEntryCreateCost) never reach a client. See ARCHITECTURE.md.
//
// Semantics kept: a second create of a key fails on GitHub (immutable
// entries): Put treats that as already stored. Entries are scoped to the
// branch: the job token says which scopes it may read and write; a token
// with no writable scope makes the tier read-only. GitHub caps a repository
// at 10 GB and evicts least recently used entries: an evicted entry is a
// miss. The token is per job and expires: after that the tier answers
// misses without asking. Every failure is an error the router counts as a
// miss; nothing here can fail a build.
package gha

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	actionscache "github.com/tonistiigi/go-actions-cache"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

var _ tier.Tier = (*Tier)(nil)

// APIs the runner may offer.
const (
	APIV2     = "v2"     // twirp CacheService over ACTIONS_RESULTS_URL
	APILegacy = "legacy" // _apis/artifactcache over ACTIONS_CACHE_URL (GHES)
)

// Env is what an Actions job's environment says about its cache service.
type Env struct {
	API   string
	URL   string
	Token string
}

// Detect reads the runner's variables: ACTIONS_RUNTIME_TOKEN with
// ACTIONS_RESULTS_URL when ACTIONS_CACHE_SERVICE_V2 is set (what
// github.com runners export today), else with ACTIONS_CACHE_URL (the legacy
// API, still on GitHub Enterprise Server). ok is false outside Actions.
func Detect(getenv func(string) string) (Env, bool) {
	token := getenv("ACTIONS_RUNTIME_TOKEN")
	if token == "" {
		return Env{}, false
	}
	if v2, _ := strconv.ParseBool(getenv("ACTIONS_CACHE_SERVICE_V2")); v2 && getenv("ACTIONS_RESULTS_URL") != "" {
		return Env{API: APIV2, URL: getenv("ACTIONS_RESULTS_URL"), Token: token}, true
	}
	if u := getenv("ACTIONS_CACHE_URL"); u != "" {
		return Env{API: APILegacy, URL: u, Token: token}, true
	}
	return Env{}, false
}

// DefaultPrefix starts every key the tier writes; the format version is in
// it, so a change of entry format never reads old entries.
const DefaultPrefix = "fabrik-v1-"

// DefaultTimeout bounds each call to the service when Options.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// Options configures the tier.
type Options struct {
	Env Env
	// Prefix starts every entry key (DefaultPrefix).
	Prefix string
	// Timeout bounds each call, including waits for rate limits
	// (DefaultTimeout).
	Timeout time.Duration
	// Client is the HTTP client for the API (nil: a client of its own).
	Client *http.Client
	// TempDir spools uploads whose body cannot be read at offsets ("" :
	// os.TempDir()).
	TempDir string
}

// Tier is one job's view of the repository's Actions cache.
type Tier struct {
	name    string
	prefix  string
	timeout time.Duration
	cache   *actionscache.Cache
	tempDir string
	env     Env
}

// New parses the job token (scopes, expiry) and builds the tier; it does
// not contact the service.
func New(name string, opts Options) (*Tier, error) {
	if opts.Env.Token == "" || opts.Env.URL == "" {
		return nil, fmt.Errorf("gha tier %q: no token or URL", name)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{Transport: http.DefaultTransport}
	}
	c, err := actionscache.New(opts.Env.Token, opts.Env.URL, opts.Env.API == APIV2, actionscache.Opt{
		Client:  client,
		Timeout: timeout,
		// A pool of its own: the library's default is shared by every
		// cache in the process.
		BackoffPool: &actionscache.BackoffPool{},
		UserAgent:   "fabrik-node",
	})
	if err != nil {
		return nil, fmt.Errorf("gha tier %q: job token: %w", name, err)
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Tier{name: name, prefix: prefix, timeout: timeout, cache: c, tempDir: opts.TempDir, env: opts.Env}, nil
}

// Name identifies the tier in logs and metrics.
func (t *Tier) Name() string { return t.name }

// API is the service API in use (APIV2 or APILegacy).
func (t *Tier) API() string { return t.env.API }

// Scopes are the branch scopes of the job token, as "scope(permission)".
func (t *Tier) Scopes() []string {
	var out []string
	for _, s := range t.cache.Scopes() {
		out = append(out, fmt.Sprintf("%s(%s)", s.Scope, actionscache.Permission(s.Permission)))
	}
	return out
}

// Writable reports whether the token may create entries in some scope (a
// pull request from a fork may only read).
func (t *Tier) Writable() bool {
	for _, s := range t.cache.Scopes() {
		if s.Permission&actionscache.PermissionWrite != 0 {
			return true
		}
	}
	return false
}

// ExpiresAt is when the job token stops working.
func (t *Tier) ExpiresAt() time.Time { return t.cache.ExpiresAt }

// Key is the entry key of ref.
func (t *Tier) Key(ref messages.Ref) string {
	sum := sha256.Sum256([]byte(ref.String()))
	return t.prefix + hex.EncodeToString(sum[:])
}

var errExpired = errors.New("job token expired")

func (t *Tier) live() error {
	if time.Now().After(t.cache.ExpiresAt) {
		return fmt.Errorf("gha tier %q: %w at %s", t.name, errExpired, t.cache.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

// header is the JSON at the start of every entry.
type header struct {
	Ref         string `json:"ref"`
	Hash        string `json:"hash"`
	Size        int64  `json:"size"`
	BuildSystem string `json:"build_system,omitempty"`
	CreatedAt   int64  `json:"created_at,omitempty"`
}

var magic = [4]byte{'F', 'G', 'H', '1'}

// maxHeader bounds the header a reader accepts.
const maxHeader = 64 << 10

func encodeHeader(ref messages.Ref, m messages.Meta) ([]byte, error) {
	h := header{Ref: ref.String(), Hash: m.Hash, Size: m.Size, BuildSystem: m.BuildSystem}
	if !m.CreatedAt.IsZero() {
		h.CreatedAt = m.CreatedAt.Unix()
	}
	js, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 8, 8+len(js))
	copy(out, magic[:])
	binary.BigEndian.PutUint32(out[4:], uint32(len(js)))
	return append(out, js...), nil
}

// readHeader reads the header at the start of r and returns the metadata
// and the header's length.
func readHeader(r io.Reader, ref messages.Ref) (messages.Meta, int64, error) {
	var fixed [8]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return messages.Meta{}, 0, fmt.Errorf("read entry header: %w", err)
	}
	if !bytes.Equal(fixed[:4], magic[:]) {
		return messages.Meta{}, 0, fmt.Errorf("entry has no fabrik header")
	}
	n := binary.BigEndian.Uint32(fixed[4:])
	if n > maxHeader {
		return messages.Meta{}, 0, fmt.Errorf("entry header of %d bytes", n)
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(r, js); err != nil {
		return messages.Meta{}, 0, fmt.Errorf("read entry header: %w", err)
	}
	var h header
	if err := json.Unmarshal(js, &h); err != nil {
		return messages.Meta{}, 0, fmt.Errorf("decode entry header: %w", err)
	}
	if h.Ref != ref.String() {
		// Two refs with one SHA-256 would be news; a foreign entry under
		// our prefix is more likely. Either way it is not this artifact.
		return messages.Meta{}, 0, fmt.Errorf("%w: entry holds %q", tier.ErrNotFound, h.Ref)
	}
	m := messages.Meta{Hash: h.Hash, Size: h.Size, BuildSystem: h.BuildSystem}
	if h.CreatedAt != 0 {
		m.CreatedAt = time.Unix(h.CreatedAt, 0)
	}
	return m, int64(8 + n), nil
}

// open finds ref's entry and reads its header. The caller closes the
// returned reader.
func (t *Tier) open(ctx context.Context, ref messages.Ref) (messages.Meta, io.ReadCloser, error) {
	if err := t.live(); err != nil {
		return messages.Meta{}, nil, err
	}
	key := t.Key(ref)
	e, err := t.cache.Load(ctx, key)
	if err != nil {
		return messages.Meta{}, nil, fmt.Errorf("gha tier %q: look up %s: %w", t.name, ref, err)
	}
	if e == nil || e.Key != key {
		return messages.Meta{}, nil, fmt.Errorf("gha tier %q: %s: %w", t.name, ref, tier.ErrNotFound)
	}
	rac := e.Download(ctx)
	r := io.NewSectionReader(rac, 0, 1<<62)
	meta, n, err := readHeader(r, ref)
	if err != nil {
		rac.Close()
		return messages.Meta{}, nil, fmt.Errorf("gha tier %q: %s: %w", t.name, ref, err)
	}
	body := io.NewSectionReader(rac, n, meta.Size)
	return meta, &readCloser{Reader: &exactReader{r: body, left: meta.Size}, close: rac.Close}, nil
}

// Get opens ref's artifact.
func (t *Tier) Get(ctx context.Context, ref messages.Ref) (messages.Meta, io.ReadCloser, error) {
	return t.open(ctx, ref)
}

// Stat reads the entry's header only.
func (t *Tier) Stat(ctx context.Context, ref messages.Ref) (messages.Meta, error) {
	meta, body, err := t.open(ctx, ref)
	if err != nil {
		return messages.Meta{}, err
	}
	body.Close()
	return meta, nil
}

// Put stores meta.Size bytes of body as a new entry. An entry that exists
// already (this or another job stored it) is success: entries are
// immutable and keyed by the ref, so it holds this artifact.
func (t *Tier) Put(ctx context.Context, ref messages.Ref, meta messages.Meta, body io.Reader) error {
	if err := t.live(); err != nil {
		return err
	}
	if !t.Writable() {
		return fmt.Errorf("gha tier %q: the job token may not write", t.name)
	}
	hdr, err := encodeHeader(ref, meta)
	if err != nil {
		return fmt.Errorf("gha tier %q: %w", t.name, err)
	}
	blob, err := t.blob(hdr, meta.Size, body)
	if err != nil {
		return fmt.Errorf("gha tier %q: %s: %w", t.name, ref, err)
	}
	defer blob.Close()
	err = t.cache.Save(ctx, t.Key(ref), blob)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gha tier %q: save %s: %w", t.name, ref, err)
	}
	return nil
}

// Delete is refused: the job token cannot delete entries (only the REST
// API with a repository token can); GitHub ages them out.
func (t *Tier) Delete(ctx context.Context, ref messages.Ref) error {
	return fmt.Errorf("gha tier %q: delete %s: %w (GitHub evicts entries itself)", t.name, ref, errors.ErrUnsupported)
}

// Close releases nothing; the tier actor treats every tier the same way.
func (t *Tier) Close() error { return nil }

// blob makes the header and body one actionscache.Blob. The library reads
// blobs at offsets (the legacy API uploads chunks in parallel), so a body
// that is not an io.ReaderAt (a network stream) is spooled to a file.
func (t *Tier) blob(hdr []byte, size int64, body io.Reader) (actionscache.Blob, error) {
	if ra, ok := body.(io.ReaderAt); ok {
		if s, ok := body.(io.Seeker); ok {
			if off, err := s.Seek(0, io.SeekCurrent); err == nil && off == 0 {
				return &joined{hdr: hdr, body: ra, size: size}, nil
			}
		}
	}
	f, err := os.CreateTemp(t.tempDir, "fabrik-gha-*")
	if err != nil {
		return nil, fmt.Errorf("spool upload: %w", err)
	}
	os.Remove(f.Name())
	n, err := io.Copy(f, io.LimitReader(body, size))
	if err == nil && n != size {
		err = fmt.Errorf("%w: body is %d bytes, want %d", tier.ErrInvalid, n, size)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &joined{hdr: hdr, body: f, size: size, closer: f}, nil
}

// joined is header + body as one ReaderAt of known size.
type joined struct {
	hdr    []byte
	body   io.ReaderAt
	size   int64
	closer io.Closer
}

func (j *joined) Size() int64 { return int64(len(j.hdr)) + j.size }

func (j *joined) Close() error {
	if j.closer != nil {
		return j.closer.Close()
	}
	return nil
}

func (j *joined) ReadAt(p []byte, off int64) (int, error) {
	total := j.Size()
	if off >= total {
		return 0, io.EOF
	}
	n := 0
	if off < int64(len(j.hdr)) {
		n = copy(p, j.hdr[off:])
		p, off = p[n:], off+int64(n)
	}
	if len(p) == 0 {
		return n, nil
	}
	want := min(int64(len(p)), total-off)
	m, err := j.body.ReadAt(p[:want], off-int64(len(j.hdr)))
	n += m
	if err == io.EOF && int64(m) == want {
		err = nil
	}
	if err == nil && int64(n) < int64(len(p)) && off+int64(m) >= total {
		err = io.EOF
	}
	return n, err
}

// exactReader fails when the stream ends before left bytes: a truncated
// download is an error, never a short artifact.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, fmt.Errorf("entry ended %d bytes early: %w", e.left, io.ErrUnexpectedEOF)
	}
	if e.left == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }

// String describes the detected backend for the start-up log line.
func (e Env) String() string {
	host := e.URL
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	host, _, _ = strings.Cut(host, "/")
	return fmt.Sprintf("%s API at %s", e.API, host)
}
