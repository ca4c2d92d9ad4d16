package oci

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/internal/adaptertest"
	"github.com/tuist/fabrik-node/messages"
)

func TestBase(t *testing.T) {
	e := start(t, Options{})
	r := e.do("GET", "/v2/", nil).want(t, 200)
	if r.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatalf("Docker-Distribution-API-Version = %q", r.Header.Get("Docker-Distribution-API-Version"))
	}
	e.do("POST", "/v2/", nil).want(t, 405, codeUnsupported)
	e.do("GET", "/v2/a/nothing", nil).want(t, 404, codeNameUnknown)
}

func TestNameGrammar(t *testing.T) {
	e := start(t, Options{})
	d := digest([]byte("x"))
	for _, name := range []string{"UPPER", "-a", "a-", "a..b", "a___b", string(bytes.Repeat([]byte("a"), 256))} {
		e.do("HEAD", "/v2/"+name+"/blobs/"+d, nil).want(t, 400)
		e.do("GET", "/v2/"+name+"/tags/list", nil).want(t, 400, codeNameInvalid)
	}
	for _, name := range []string{"a", "a/b/c", "my-app", "my__app", "a.b_c--d", "blobs/manifests", "x/blobs/y"} {
		e.do("HEAD", "/v2/"+name+"/blobs/"+d, nil).want(t, 404)
	}
}

func TestRouteParsing(t *testing.T) {
	cases := map[string]route{
		"/v2/":                          {ep: epBase},
		"/v2/a/b/blobs/sha256:x":        {ep: epBlob, name: "a/b", arg: "sha256:x"},
		"/v2/a/blobs/b/blobs/sha256:x":  {ep: epBlob, name: "a/blobs/b", arg: "sha256:x"},
		"/v2/a/blobs/uploads/":          {ep: epUploads, name: "a"},
		"/v2/a/blobs/uploads":           {ep: epUploads, name: "a"},
		"/v2/a/blobs/uploads/id-1":      {ep: epUpload, name: "a", arg: "id-1"},
		"/v2/a/manifests/latest":        {ep: epManifest, name: "a", arg: "latest"},
		"/v2/a/manifests/x/tags/list":   {ep: epTags, name: "a/manifests/x"},
		"/v2/a/referrers/sha256:x":      {ep: epReferrers, name: "a", arg: "sha256:x"},
		"/v2/a/manifests/b/manifests/c": {ep: epManifest, name: "a/manifests/b", arg: "c"},
		"/v2/a/tags/lists":              {},
		"/v3/a/tags/list":               {},
	}
	for p, want := range cases {
		if got := parseRoute(p); got != want {
			t.Errorf("parseRoute(%q) = %+v, want %+v", p, got, want)
		}
	}
}

func TestBlobPushHeadGetDelete(t *testing.T) {
	e := start(t, Options{})
	layer := adaptertest.RandomBytes(t, 100_000)
	d := digest(layer)
	e.do("HEAD", "/v2/app/blobs/"+d, nil).want(t, 404)
	e.do("GET", "/v2/app/blobs/"+d, nil).want(t, 404, codeBlobUnknown)

	r := e.do("POST", "/v2/app/blobs/uploads/?digest="+d, layer).want(t, 201)
	if r.Header.Get("Location") != "/v2/app/blobs/"+d || r.Header.Get("Docker-Content-Digest") != d {
		t.Fatalf("201 headers: Location %q, Docker-Content-Digest %q", r.Header.Get("Location"), r.Header.Get("Docker-Content-Digest"))
	}
	h := e.do("HEAD", "/v2/app/blobs/"+d, nil).want(t, 200)
	if h.Header.Get("Content-Length") != "100000" || h.Header.Get("Docker-Content-Digest") != d {
		t.Fatalf("HEAD headers %v", h.Header)
	}
	g := e.do("GET", "/v2/app/blobs/"+d, nil).want(t, 200)
	if !bytes.Equal(g.body, layer) {
		t.Fatal("GET returned other bytes")
	}

	// The layer is the CAS blob every protocol shares.
	st, err := e.cache.Stat(t.Context(), messages.Ref{Namespace: messages.CAS, Key: d[len("sha256:"):]})
	if err != nil || !st.Found {
		t.Fatalf("the layer is not the CAS blob %s: %+v %v", d, st, err)
	}

	// Another repository does not see it until it is pushed or mounted there.
	e.do("HEAD", "/v2/other/blobs/"+d, nil).want(t, 404)

	e.do("DELETE", "/v2/app/blobs/"+d, nil).want(t, 202)
	e.do("HEAD", "/v2/app/blobs/"+d, nil).want(t, 404)
	e.do("DELETE", "/v2/app/blobs/"+d, nil).want(t, 404, codeBlobUnknown)
	e.do("GET", "/v2/app/blobs/sha256:abc", nil).want(t, 400, codeDigestInvalid)
	e.do("GET", "/v2/app/blobs/sha512:"+d[7:], nil).want(t, 400, codeDigestInvalid)
	e.do("PUT", "/v2/app/blobs/"+d, nil).want(t, 405, codeUnsupported)
}

func TestBlobRange(t *testing.T) {
	e := start(t, Options{})
	layer := adaptertest.RandomBytes(t, 1000)
	d := e.pushBlob("app", layer)
	for _, c := range []struct {
		rng         string
		first, last int
	}{{"bytes=0-99", 0, 99}, {"bytes=900-", 900, 999}, {"bytes=-10", 990, 999}, {"bytes=500-5000", 500, 999}} {
		r := e.do("GET", "/v2/app/blobs/"+d, nil, "Range: "+c.rng).want(t, 206)
		if !bytes.Equal(r.body, layer[c.first:c.last+1]) {
			t.Fatalf("%s: wrong bytes", c.rng)
		}
		if want := fmt.Sprintf("bytes %d-%d/1000", c.first, c.last); r.Header.Get("Content-Range") != want {
			t.Fatalf("%s: Content-Range %q, want %q", c.rng, r.Header.Get("Content-Range"), want)
		}
	}
	e.do("GET", "/v2/app/blobs/"+d, nil, "Range: bytes=1000-").want(t, 416)
}

func TestMonolithicDigestMismatchStoresNothing(t *testing.T) {
	e := start(t, Options{})
	layer := []byte("the real bytes")
	wrong := digest([]byte("other bytes"))
	e.do("POST", "/v2/app/blobs/uploads/?digest="+wrong, layer).want(t, 400, codeDigestInvalid)
	e.do("HEAD", "/v2/app/blobs/"+wrong, nil).want(t, 404)
	e.do("HEAD", "/v2/app/blobs/"+digest(layer), nil).want(t, 404)
	for _, d := range []string{wrong, digest(layer)} {
		if st, _ := e.cache.Stat(t.Context(), messages.Ref{Namespace: messages.CAS, Key: d[7:]}); st.Found {
			t.Fatalf("a refused upload stored %s", d)
		}
	}
	e.do("POST", "/v2/app/blobs/uploads/?digest=md5:abc", layer).want(t, 400, codeDigestInvalid)
}

func TestTooLarge(t *testing.T) {
	e := start(t, Options{HTTPOptions: adapters.HTTPOptions{MaxArtifactSize: 10}})
	b := []byte("more than ten bytes")
	e.do("POST", "/v2/app/blobs/uploads/?digest="+digest(b), b).want(t, 413, codeSizeInvalid)
	loc := e.do("POST", "/v2/app/blobs/uploads/", nil).want(t, 202).Header.Get("Location")
	e.do("PATCH", loc, b).want(t, 413, codeSizeInvalid)
	e.do("GET", loc, nil).want(t, 404, codeBlobUploadUnknown)
}

func TestMount(t *testing.T) {
	e := start(t, Options{})
	layer := adaptertest.RandomBytes(t, 5000)
	d := e.pushBlob("base", layer)

	r := e.do("POST", "/v2/app/blobs/uploads/?mount="+d+"&from=base", nil).want(t, 201)
	if r.Header.Get("Location") != "/v2/app/blobs/"+d || r.Header.Get("Docker-Content-Digest") != d {
		t.Fatalf("mount headers %v", r.Header)
	}
	if g := e.do("GET", "/v2/app/blobs/"+d, nil).want(t, 200); !bytes.Equal(g.body, layer) {
		t.Fatal("mounted blob has other bytes")
	}
	// Already there: 201 again, with or without from.
	e.do("POST", "/v2/app/blobs/uploads/?mount="+d, nil).want(t, 201)

	// Not in the source repository (or no source): an upload session instead.
	missing := digest([]byte("nowhere"))
	for _, q := range []string{"?mount=" + missing + "&from=base", "?mount=" + d + "&from=elsewhere", "?mount=" + d + "&from=BAD", "?mount=" + d} {
		r := e.do("POST", "/v2/third/blobs/uploads/"+q, nil).want(t, 202)
		if r.Header.Get("Location") == "" || r.Header.Get("Docker-Upload-UUID") == "" {
			t.Fatalf("mount fallback %s: no upload session: %v", q, r.Header)
		}
	}
	e.do("HEAD", "/v2/third/blobs/"+d, nil).want(t, 404)
}
