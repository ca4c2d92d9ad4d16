package oci

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/metrics"
)

type env struct {
	t     *testing.T
	url   string
	addr  string
	cache adapters.Cache
	a     *Adapter
}

func start(t *testing.T, opts Options) *env {
	t.Helper()
	cache := cachetest.New(t)
	if opts.Metrics == nil {
		opts.Metrics = metrics.New(nil, nil)
	}
	a := New(cache, opts)
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(a.Close)
	return &env{t: t, url: srv.URL, addr: srv.Listener.Addr().String(), cache: cache, a: a}
}

type reply struct {
	*http.Response
	body []byte
}

// do sends one request; header is "Name: value" pairs.
func (e *env) do(method, path string, body []byte, header ...string) reply {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, h := range header {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return reply{resp, b}
}

// want fails unless the reply has the status (and, for errors, the code).
func (r reply) want(t *testing.T, status int, code ...string) reply {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.body)
	}
	if len(code) > 0 {
		var eb errorBody
		if err := json.Unmarshal(r.body, &eb); err != nil || len(eb.Errors) == 0 {
			t.Fatalf("%s %s: body %q is not a spec error", r.Request.Method, r.Request.URL.Path, r.body)
		}
		if eb.Errors[0].Code != code[0] {
			t.Fatalf("%s %s: code %s, want %s (%s)", r.Request.Method, r.Request.URL.Path, eb.Errors[0].Code, code[0], eb.Errors[0].Message)
		}
	}
	return r
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// pushBlob uploads b monolithically to repo.
func (e *env) pushBlob(repo string, b []byte) string {
	e.t.Helper()
	d := digest(b)
	e.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d, b).want(e.t, 201)
	return d
}

type desc struct {
	MediaType    string `json:"mediaType"`
	Digest       string `json:"digest"`
	Size         int    `json:"size"`
	ArtifactType string `json:"artifactType,omitempty"`
}

func descOf(mediaType string, b []byte) desc {
	return desc{MediaType: mediaType, Digest: digest(b), Size: len(b)}
}
