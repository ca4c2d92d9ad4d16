package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	clog "github.com/containerd/log"
	godigest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/internal/adaptertest"
	"github.com/tuist/fabrik-node/internal/cachetest"
)

// containerd warns about BuildKit's cache config media type on every
// push ("reference for unknown type"); the tests check what matters.
func init() { _ = clog.SetLevel("error") }

// requestLog records the requests a client sends.
type requestLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.seen = append(l.seen, r.Method+" "+r.URL.RequestURI())
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (l *requestLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.seen
	l.seen = nil
	return s
}

func count(reqs []string, prefix, contains string) int {
	n := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, prefix) && strings.Contains(r, contains) {
			n++
		}
	}
	return n
}

// registry serves the adapter for containerd's client; with keys set the
// real JWT guard is in front and the client logs in with a token as its
// Basic password.
func registry(t *testing.T, keys *authtest.Keys) (host string, log *requestLog) {
	t.Helper()
	var guard adapters.Guard
	if keys != nil {
		authn, err := auth.New(keys.Config(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { authn.Close() })
		scope := map[adapters.Access]auth.Scope{adapters.Read: auth.Read, adapters.Write: auth.Write, adapters.Admin: auth.Admin}
		guard = func(acc adapters.Access, h http.Handler) http.Handler {
			return authn.Require(scope[acc], h, auth.BasicChallenge(), auth.WithErrorWriter(func(w http.ResponseWriter, _ *http.Request, status int, err error) {
				WriteAuthError(w, status, err.Error())
			}))
		}
	}
	a := New(cachetest.New(t), Options{HTTPOptions: adapters.HTTPOptions{Guard: guard}})
	t.Cleanup(a.Close)
	mux := http.NewServeMux()
	a.Routes(mux)
	log = &requestLog{}
	srv := httptest.NewServer(log.wrap(mux))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), log
}

func resolver(token string) remotes.Resolver {
	opts := []docker.RegistryOpt{docker.WithPlainHTTP(docker.MatchAllHosts)}
	if token != "" {
		opts = append(opts, docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthCreds(func(string) (string, string, error) {
			return "buildkit", token, nil
		}))))
	}
	return docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(opts...)})
}

type blob struct {
	desc ocispec.Descriptor
	data []byte
}

func newBlob(mediaType string, data []byte) blob {
	return blob{ocispec.Descriptor{MediaType: mediaType, Digest: godigest.FromBytes(data), Size: int64(len(data))}, data}
}

// push sends one blob or manifest the way BuildKit's push handler does,
// and reports whether it was already there.
func push(t *testing.T, ctx context.Context, p remotes.Pusher, b blob) (existed bool) {
	t.Helper()
	w, err := p.Push(ctx, b.desc)
	if errdefs.IsAlreadyExists(err) {
		return true
	}
	if err != nil {
		t.Fatalf("push %s: %v", b.desc.Digest, err)
	}
	if err := content.Copy(ctx, w, bytes.NewReader(b.data), b.desc.Size, b.desc.Digest); err != nil {
		t.Fatalf("push %s: %v", b.desc.Digest, err)
	}
	return false
}

// cacheExport pushes a BuildKit registry cache (mode=max, image-manifest=true):
// layers, the cache config, then an image manifest whose config is the
// cache config, under ref.
func cacheExport(t *testing.T, ctx context.Context, r remotes.Resolver, ref string, layers []blob) blob {
	t.Helper()
	p, err := r.Pusher(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	var descs []ocispec.Descriptor
	for _, l := range layers {
		push(t, ctx, p, l)
		descs = append(descs, l.desc)
	}
	cfgJSON, _ := json.Marshal(map[string]any{"layers": descs, "records": []any{map[string]any{"digest": "sha256:" + strings.Repeat("0", 64)}}})
	cfg := newBlob("application/vnd.buildkit.cacheconfig.v0", cfgJSON)
	push(t, ctx, p, cfg)
	m, _ := json.Marshal(ocispec.Manifest{Versioned: struct {
		SchemaVersion int `json:"schemaVersion"`
	}{2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg.desc, Layers: descs})
	manifest := newBlob(ocispec.MediaTypeImageManifest, m)
	push(t, ctx, p, manifest)
	return manifest
}

// cacheImport resolves ref and fetches its manifest and every blob, as
// BuildKit's --import-cache does.
func cacheImport(t *testing.T, ctx context.Context, r remotes.Resolver, ref string, want blob, layers []blob) {
	t.Helper()
	name, desc, err := r.Resolve(ctx, ref)
	if err != nil {
		t.Fatalf("resolve %s: %v", ref, err)
	}
	if desc.Digest != want.desc.Digest || desc.MediaType != ocispec.MediaTypeImageManifest || desc.Size != want.desc.Size {
		t.Fatalf("resolved %+v, want %+v", desc, want.desc)
	}
	f, err := r.Fetcher(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(d ocispec.Descriptor) []byte {
		rc, err := f.Fetch(ctx, d)
		if err != nil {
			t.Fatalf("fetch %s: %v", d.Digest, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("read %s: %v", d.Digest, err)
		}
		if godigest.FromBytes(b) != d.Digest {
			t.Fatalf("fetched %s: wrong bytes", d.Digest)
		}
		return b
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(fetch(desc), &m); err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != "application/vnd.buildkit.cacheconfig.v0" || len(m.Layers) != len(layers) {
		t.Fatalf("imported manifest %+v", m)
	}
	fetch(m.Config)
	for i, l := range m.Layers {
		if !bytes.Equal(fetch(l), layers[i].data) {
			t.Fatalf("layer %d differs", i)
		}
	}
}

func layersOf(t *testing.T, sizes ...int) []blob {
	var out []blob
	for _, n := range sizes {
		out = append(out, newBlob(ocispec.MediaTypeImageLayerGzip, adaptertest.RandomBytes(t, n)))
	}
	return out
}

// containerd's pusher and resolver, the code BuildKit exports and imports
// its registry cache with: HEAD, POST, one monolithic PUT that must answer
// Docker-Content-Digest; then resolve, fetch manifest and blobs.
func TestContainerdCacheExportImport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host, log := registry(t, nil)
	r := resolver("")
	ref := host + "/myapp:buildcache"
	layers := layersOf(t, 1, 1000, 300_000, 2<<20)

	m := cacheExport(t, ctx, r, ref, layers)
	reqs := log.take()
	if n := count(reqs, "PUT /v2/myapp/blobs/uploads/", "digest="); n != len(layers)+1 {
		t.Fatalf("%d monolithic PUTs, want %d: %v", n, len(layers)+1, reqs)
	}
	if count(reqs, "HEAD /v2/myapp/blobs/", "") != len(layers)+1 || count(reqs, "PUT /v2/myapp/manifests/buildcache", "") != 1 {
		t.Fatalf("requests %v", reqs)
	}
	cacheImport(t, ctx, resolver(""), ref, m, layers)

	// The next build re-exports: unchanged layers are found by HEAD and
	// not sent again; the tag moves to the new manifest.
	next := append(layers[:2:2], layersOf(t, 5000)...)
	m2 := cacheExport(t, ctx, resolver(""), ref, next)
	reqs = log.take()
	if n := count(reqs, "PUT /v2/myapp/blobs/uploads/", ""); n != 2 {
		t.Fatalf("re-export sent %d blobs, want 2 (new layer and config): %v", n, reqs)
	}
	cacheImport(t, ctx, resolver(""), ref, m2, next)

	// A layer that came from another repository is mounted, not sent.
	base := layersOf(t, 4000)
	cacheExport(t, ctx, resolver(""), host+"/base:cache", base)
	log.take()
	from := base[0]
	// The label BuildKit keeps on layers it pulled (keyed by host name,
	// without the port).
	hostname, _, _ := strings.Cut(host, ":")
	from.desc.Annotations = map[string]string{"containerd.io/distribution.source." + hostname: "base"}
	p, err := r.Pusher(ctx, host+"/other:cache")
	if err != nil {
		t.Fatal(err)
	}
	if !push(t, ctx, p, from) {
		t.Fatal("the mounted layer was uploaded")
	}
	reqs = log.take()
	if count(reqs, "POST /v2/other/blobs/uploads/", "mount="+from.desc.Digest.String()) != 1 || count(reqs, "PUT", "") != 0 {
		t.Fatalf("mount requests %v", reqs)
	}
}

// The same round trip behind the JWT guard: containerd answers the Basic
// challenge with the token as its password.
func TestContainerdWithAuth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys := authtest.New(t)
	host, _ := registry(t, keys)
	write := keys.Token(t, authtest.Scopes("cache:read", "cache:write"))
	read := keys.Token(t, authtest.Scopes("cache:read"))
	ref := host + "/myapp:buildcache"
	layers := layersOf(t, 2000, 3000)
	m := cacheExport(t, ctx, resolver(write), ref, layers)
	cacheImport(t, ctx, resolver(read), ref, m, layers)

	// Without a token nothing resolves; with a read token nothing pushes.
	if _, _, err := resolver("").Resolve(ctx, ref); err == nil {
		t.Fatal("resolved without credentials")
	}
	p, err := resolver(read).Pusher(ctx, host+"/myapp:other")
	if err != nil {
		t.Fatal(err)
	}
	b := newBlob(ocispec.MediaTypeImageLayerGzip, []byte("denied"))
	if w, err := p.Push(ctx, b.desc); err == nil {
		if err := content.Copy(ctx, w, bytes.NewReader(b.data), b.desc.Size, b.desc.Digest); err == nil {
			t.Fatal("a read token pushed a blob")
		}
	}
}
