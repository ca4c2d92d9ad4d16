package oci

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/internal/adaptertest"
)

const (
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
	ociIndex    = "application/vnd.oci.image.index.v1+json"
	dockerV2    = "application/vnd.docker.distribution.manifest.v2+json"
	dockerList  = "application/vnd.docker.distribution.manifest.list.v2+json"
	cacheConfig = "application/vnd.buildkit.cacheconfig.v0"
	layerType   = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// pushImage pushes a config and layers and returns the manifest.
func (e *env) pushImage(repo string, mediaType string, nLayers int) []byte {
	e.t.Helper()
	cfg := adaptertest.RandomBytes(e.t, 100)
	e.pushBlob(repo, cfg)
	var layers []desc
	for range nLayers {
		l := adaptertest.RandomBytes(e.t, 1000)
		e.pushBlob(repo, l)
		layers = append(layers, descOf(layerType, l))
	}
	m := map[string]any{"schemaVersion": 2, "mediaType": mediaType, "config": descOf(cacheConfig, cfg), "layers": layers}
	b, _ := json.Marshal(m)
	return b
}

func TestManifestPushPull(t *testing.T) {
	e := start(t, Options{})
	for _, mt := range []string{ociManifest, dockerV2} {
		t.Run(mt, func(t *testing.T) {
			m := e.pushImage("app", mt, 3)
			d := digest(m)
			r := e.do("PUT", "/v2/app/manifests/buildcache", m, "Content-Type: "+mt).want(t, 201)
			if r.Header.Get("Docker-Content-Digest") != d || r.Header.Get("Location") != "/v2/app/manifests/"+d {
				t.Fatalf("PUT headers %v", r.Header)
			}
			for _, ref := range []string{"buildcache", d} {
				g := e.do("GET", "/v2/app/manifests/"+ref, nil, "Accept: "+mt).want(t, 200)
				if !bytes.Equal(g.body, m) || g.Header.Get("Content-Type") != mt || g.Header.Get("Docker-Content-Digest") != d {
					t.Fatalf("GET %s: type %q digest %q", ref, g.Header.Get("Content-Type"), g.Header.Get("Docker-Content-Digest"))
				}
				h := e.do("HEAD", "/v2/app/manifests/"+ref, nil).want(t, 200)
				if h.Header.Get("Content-Type") != mt || h.Header.Get("Content-Length") != fmt.Sprint(len(m)) || h.Header.Get("Docker-Content-Digest") != d {
					t.Fatalf("HEAD %s headers %v", ref, h.Header)
				}
			}
		})
	}
	e.do("GET", "/v2/app/manifests/missing", nil).want(t, 404, codeManifestUnknown)
	e.do("HEAD", "/v2/app/manifests/missing", nil).want(t, 404)
	e.do("GET", "/v2/app/manifests/sha256:zz", nil).want(t, 400, codeDigestInvalid)
	e.do("GET", "/v2/app/manifests/-bad", nil).want(t, 400, codeManifestInvalid)
}

// Content-Type round-trips exactly, parameters included, and a manifest
// pushed without one is served with its mediaType.
func TestManifestContentType(t *testing.T) {
	e := start(t, Options{})
	m := e.pushImage("app", ociManifest, 1)
	ct := ociManifest + "; charset=utf-8"
	e.do("PUT", "/v2/app/manifests/a", m, "Content-Type: "+ct).want(t, 201)
	if got := e.do("GET", "/v2/app/manifests/a", nil).Header.Get("Content-Type"); got != ct {
		t.Fatalf("Content-Type %q, want %q", got, ct)
	}
	e.do("PUT", "/v2/app/manifests/b", m).want(t, 201)
	if got := e.do("GET", "/v2/app/manifests/b", nil).Header.Get("Content-Type"); got != ociManifest {
		t.Fatalf("Content-Type %q, want %q", got, ociManifest)
	}
	e.do("PUT", "/v2/app/manifests/c", m, "Content-Type: "+dockerV2).want(t, 400, codeManifestInvalid)
	e.do("PUT", "/v2/app/manifests/d", []byte("{not json"), "Content-Type: "+ociManifest).want(t, 400, codeManifestInvalid)
	e.do("PUT", "/v2/app/manifests/e", []byte(`{"schemaVersion":2}`)).want(t, 400, codeManifestInvalid)
}

func TestManifestBlobUnknown(t *testing.T) {
	e := start(t, Options{})
	m := e.pushImage("app", ociManifest, 2)
	// Pushed to app, not to other: other cannot refer to its blobs.
	e.do("PUT", "/v2/other/manifests/x", m, "Content-Type: "+ociManifest).want(t, 400, codeManifestBlobUnknown)
	e.do("GET", "/v2/other/manifests/x", nil).want(t, 404)
	e.do("GET", "/v2/other/manifests/"+digest(m), nil).want(t, 404)
	// An index naming an unknown manifest.
	idx := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":1}]}`, ociIndex, ociManifest, digest([]byte("none")))
	e.do("PUT", "/v2/app/manifests/idx", []byte(idx), "Content-Type: "+ociIndex).want(t, 400, codeManifestBlobUnknown)
}

func TestIndexes(t *testing.T) {
	e := start(t, Options{})
	m := e.pushImage("app", dockerV2, 1)
	e.do("PUT", "/v2/app/manifests/"+digest(m), m, "Content-Type: "+dockerV2).want(t, 201)
	list := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d}]}`, dockerList, dockerV2, digest(m), len(m))
	e.do("PUT", "/v2/app/manifests/multi", []byte(list), "Content-Type: "+dockerList).want(t, 201)
	if got := e.do("GET", "/v2/app/manifests/multi", nil).want(t, 200).Header.Get("Content-Type"); got != dockerList {
		t.Fatalf("Content-Type %q", got)
	}
	// BuildKit's default cache export is an index that lists the layers
	// and the cache config themselves.
	cfg, layer := []byte("cache config"), []byte("cache layer")
	e.pushBlob("app", cfg)
	e.pushBlob("app", layer)
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociIndex,
		"manifests": []desc{descOf(layerType, layer), descOf(cacheConfig, cfg)}})
	e.do("PUT", "/v2/app/manifests/buildcache", idx, "Content-Type: "+ociIndex).want(t, 201)
}

func TestManifestPushByDigest(t *testing.T) {
	e := start(t, Options{})
	m := e.pushImage("app", ociManifest, 1)
	e.do("PUT", "/v2/app/manifests/"+digest([]byte("other")), m, "Content-Type: "+ociManifest).want(t, 400, codeDigestInvalid)
	e.do("GET", "/v2/app/manifests/"+digest(m), nil).want(t, 404)
	e.do("PUT", "/v2/app/manifests/"+digest(m), m, "Content-Type: "+ociManifest).want(t, 201)
	e.do("GET", "/v2/app/manifests/"+digest(m), nil).want(t, 200)
}

// A tag is a mutable pointer: each build re-pushes its cache ref.
func TestTagMoves(t *testing.T) {
	e := start(t, Options{})
	m1 := e.pushImage("app", ociManifest, 1)
	m2 := e.pushImage("app", ociManifest, 1)
	e.do("PUT", "/v2/app/manifests/cache", m1, "Content-Type: "+ociManifest).want(t, 201)
	e.do("PUT", "/v2/app/manifests/cache", m2, "Content-Type: "+ociManifest).want(t, 201)
	if g := e.do("GET", "/v2/app/manifests/cache", nil); !bytes.Equal(g.body, m2) {
		t.Fatal("the tag still points to the first manifest")
	}
	// The old manifest stays addressable by digest.
	e.do("GET", "/v2/app/manifests/"+digest(m1), nil).want(t, 200)
}

func TestManifestDelete(t *testing.T) {
	e := start(t, Options{})
	m := e.pushImage("app", ociManifest, 1)
	e.do("PUT", "/v2/app/manifests/one", m, "Content-Type: "+ociManifest).want(t, 201)
	e.do("PUT", "/v2/app/manifests/two", m, "Content-Type: "+ociManifest).want(t, 201)
	e.do("PUT", "/v2/app/manifests/keep", m, "Content-Type: "+ociManifest).want(t, 201)
	// Deleting a tag leaves the manifest and the other tags.
	e.do("DELETE", "/v2/app/manifests/keep", nil).want(t, 202)
	e.do("GET", "/v2/app/manifests/keep", nil).want(t, 404)
	e.do("GET", "/v2/app/manifests/one", nil).want(t, 200)
	// Deleting by digest takes the tags that point to it.
	e.do("DELETE", "/v2/app/manifests/"+digest(m), nil).want(t, 202)
	for _, ref := range []string{"one", "two", digest(m)} {
		e.do("GET", "/v2/app/manifests/"+ref, nil).want(t, 404)
	}
	e.do("DELETE", "/v2/app/manifests/"+digest(m), nil).want(t, 404, codeManifestUnknown)
	e.do("DELETE", "/v2/app/manifests/none", nil).want(t, 404, codeManifestUnknown)
}

func TestManifestTooLarge(t *testing.T) {
	e := start(t, Options{})
	big := []byte(`{"schemaVersion":2,"mediaType":"` + ociManifest + `","annotations":{"x":"` + strings.Repeat("a", maxManifestSize) + `"}}`)
	e.do("PUT", "/v2/app/manifests/big", big, "Content-Type: "+ociManifest).want(t, 413, codeManifestInvalid)
}

func TestTagsList(t *testing.T) {
	e := start(t, Options{})
	r := e.do("GET", "/v2/app/tags/list", nil).want(t, 200)
	if string(r.body) != `{"name":"app","tags":[]}` {
		t.Fatalf("empty list %s", r.body)
	}
	m := e.pushImage("app", ociManifest, 1)
	tags := []string{"b", "a", "c", "d", "E"}
	for _, tag := range tags {
		e.do("PUT", "/v2/app/manifests/"+tag, m, "Content-Type: "+ociManifest).want(t, 201)
	}
	list := func(q string) ([]string, string) {
		r := e.do("GET", "/v2/app/tags/list"+q, nil).want(t, 200)
		var body struct {
			Name string
			Tags []string
		}
		if err := json.Unmarshal(r.body, &body); err != nil || body.Name != "app" {
			t.Fatalf("tags/list body %s", r.body)
		}
		return body.Tags, r.Header.Get("Link")
	}
	if got, link := list(""); strings.Join(got, ",") != "E,a,b,c,d" || link != "" {
		t.Fatalf("all tags %v, link %q", got, link)
	}
	got, link := list("?n=2")
	if strings.Join(got, ",") != "E,a" || link != `</v2/app/tags/list?last=a&n=2>; rel="next"` {
		t.Fatalf("first page %v, link %q", got, link)
	}
	if got, link := list("?n=2&last=a"); strings.Join(got, ",") != "b,c" || link == "" {
		t.Fatalf("second page %v, link %q", got, link)
	}
	if got, link := list("?n=2&last=c"); strings.Join(got, ",") != "d" || link != "" {
		t.Fatalf("last page %v, link %q", got, link)
	}
	if got, _ := list("?n=0"); len(got) != 0 {
		t.Fatalf("n=0 gave %v", got)
	}
	e.do("GET", "/v2/app/tags/list?n=x", nil).want(t, 400)
	// Another repository's tags are its own.
	if got, _ := func() ([]string, string) {
		r := e.do("GET", "/v2/app2/tags/list", nil).want(t, 200)
		var body struct{ Tags []string }
		json.Unmarshal(r.body, &body)
		return body.Tags, ""
	}(); len(got) != 0 {
		t.Fatalf("app2 lists %v", got)
	}
}

func TestReferrers(t *testing.T) {
	e := start(t, Options{})
	subject := e.pushImage("app", ociManifest, 1)
	sd := digest(subject)
	e.do("PUT", "/v2/app/manifests/v1", subject, "Content-Type: "+ociManifest).want(t, 201)

	empty := []byte("{}")
	e.pushBlob("app", empty)
	sub := descOf(ociManifest, subject)
	push := func(artifactType string) string {
		m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociManifest, "artifactType": artifactType,
			"config": descOf("application/vnd.oci.empty.v1+json", empty), "layers": []desc{descOf("application/vnd.oci.empty.v1+json", empty)},
			"subject": sub, "annotations": map[string]string{"org.example": artifactType}})
		r := e.do("PUT", "/v2/app/manifests/"+digest(m), m, "Content-Type: "+ociManifest).want(t, 201)
		if r.Header.Get("OCI-Subject") != sd {
			t.Fatalf("OCI-Subject %q, want %q", r.Header.Get("OCI-Subject"), sd)
		}
		return digest(m)
	}
	sbom, sig := push("application/spdx+json"), push("application/vnd.example.sig")

	type index struct {
		MediaType string
		Manifests []struct {
			Digest, ArtifactType, MediaType string
			Annotations                     map[string]string
		}
	}
	get := func(q string) (index, reply) {
		r := e.do("GET", "/v2/app/referrers/"+sd+q, nil).want(t, 200)
		var idx index
		if err := json.Unmarshal(r.body, &idx); err != nil || r.Header.Get("Content-Type") != ociIndex || idx.MediaType != ociIndex {
			t.Fatalf("referrers %s: %s", r.Header.Get("Content-Type"), r.body)
		}
		return idx, r
	}
	all, r := get("")
	if len(all.Manifests) != 2 || r.Header.Get("OCI-Filters-Applied") != "" {
		t.Fatalf("referrers %+v", all)
	}
	found := map[string]string{}
	for _, m := range all.Manifests {
		found[m.Digest] = m.ArtifactType
		if m.MediaType != ociManifest || m.Annotations["org.example"] != m.ArtifactType {
			t.Fatalf("descriptor %+v", m)
		}
	}
	if found[sbom] != "application/spdx+json" || found[sig] != "application/vnd.example.sig" {
		t.Fatalf("referrers %v", found)
	}
	filtered, r := get("?artifactType=application/spdx%2Bjson")
	if len(filtered.Manifests) != 1 || filtered.Manifests[0].Digest != sbom || r.Header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered referrers %+v, header %q", filtered, r.Header.Get("OCI-Filters-Applied"))
	}
	none, _ := get("?artifactType=none")
	if len(none.Manifests) != 0 {
		t.Fatalf("artifactType=none: %+v", none)
	}
	if idx, _ := func() (index, reply) {
		r := e.do("GET", "/v2/app/referrers/"+digest([]byte("no one")), nil).want(t, 200)
		var idx index
		json.Unmarshal(r.body, &idx)
		return idx, r
	}(); len(idx.Manifests) != 0 {
		t.Fatal("referrers of an unknown digest")
	}
	e.do("GET", "/v2/app/referrers/latest", nil).want(t, 400, codeDigestInvalid)
}
