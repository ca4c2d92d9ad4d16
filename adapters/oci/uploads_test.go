package oci

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/internal/adaptertest"
	"github.com/tuist/fabrik-node/messages"
)

func TestChunkedUpload(t *testing.T) {
	e := start(t, Options{})
	layer := adaptertest.RandomBytes(t, 300_000)
	d := digest(layer)

	r := e.do("POST", "/v2/app/blobs/uploads/", nil).want(t, 202)
	loc, id := r.Header.Get("Location"), r.Header.Get("Docker-Upload-UUID")
	if loc != "/v2/app/blobs/uploads/"+id || id == "" || r.Header.Get("Range") != "0-0" {
		t.Fatalf("POST headers %v", r.Header)
	}
	chunk := func(first, last int) reply {
		return e.do("PATCH", loc, layer[first:last+1], fmt.Sprintf("Content-Range: %d-%d", first, last), "Content-Type: application/octet-stream")
	}
	r = chunk(0, 99_999).want(t, 202)
	if r.Header.Get("Range") != "0-99999" || r.Header.Get("Location") != loc {
		t.Fatalf("PATCH headers %v", r.Header)
	}
	// Out of order and overlapping chunks: 416, with the upload's Range.
	r = chunk(150_000, 199_999).want(t, 416, codeBlobUploadInvalid)
	if r.Header.Get("Range") != "0-99999" {
		t.Fatalf("416 Range %q", r.Header.Get("Range"))
	}
	chunk(50_000, 149_999).want(t, 416)
	// A Content-Range that disagrees with the body's length.
	e.do("PATCH", loc, layer[100_000:100_010], "Content-Range: 100000-100099").want(t, 400, codeBlobUploadInvalid)
	e.do("PATCH", loc, layer[100_000:100_010], "Content-Range: nonsense").want(t, 400, codeBlobUploadInvalid)

	s := e.do("GET", loc, nil).want(t, 204)
	if s.Header.Get("Range") != "0-99999" || s.Header.Get("Docker-Upload-UUID") != id {
		t.Fatalf("status headers %v", s.Header)
	}
	// A streamed chunk (no Content-Range), then the last one with the PUT.
	e.do("PATCH", loc, layer[100_000:250_000]).want(t, 202)
	r = e.do("PUT", loc+"?digest="+d, layer[250_000:], "Content-Range: 250000-299999").want(t, 201)
	if r.Header.Get("Location") != "/v2/app/blobs/"+d || r.Header.Get("Docker-Content-Digest") != d {
		t.Fatalf("PUT headers %v", r.Header)
	}
	if g := e.do("GET", "/v2/app/blobs/"+d, nil).want(t, 200); !bytes.Equal(g.body, layer) {
		t.Fatal("chunked blob has other bytes")
	}
	// The session is gone once finished.
	e.do("GET", loc, nil).want(t, 404, codeBlobUploadUnknown)
	e.do("PATCH", loc, []byte("x")).want(t, 404, codeBlobUploadUnknown)
	e.do("PUT", loc+"?digest="+d, nil).want(t, 404, codeBlobUploadUnknown)
}

func TestUploadFinishWithoutBody(t *testing.T) {
	e := start(t, Options{})
	layer := []byte("patched whole")
	loc := e.do("POST", "/v2/app/blobs/uploads/", nil).want(t, 202).Header.Get("Location")
	e.do("PATCH", loc, layer).want(t, 202)
	e.do("PUT", loc, nil).want(t, 400, codeDigestInvalid) // no digest: the session stays
	e.do("PUT", loc+"?digest="+digest(layer), nil).want(t, 201)
	e.do("HEAD", "/v2/app/blobs/"+digest(layer), nil).want(t, 200)
}

func TestUploadDigestMismatchStoresNothing(t *testing.T) {
	e := start(t, Options{})
	layer := []byte("chunked bytes")
	wrong := digest([]byte("something else"))
	loc := e.do("POST", "/v2/app/blobs/uploads/", nil).want(t, 202).Header.Get("Location")
	e.do("PATCH", loc, layer).want(t, 202)
	e.do("PUT", loc+"?digest="+wrong, nil).want(t, 400, codeDigestInvalid)
	for _, d := range []string{wrong, digest(layer)} {
		e.do("HEAD", "/v2/app/blobs/"+d, nil).want(t, 404)
		if st, _ := e.cache.Stat(t.Context(), messages.Ref{Namespace: messages.CAS, Key: d[7:]}); st.Found {
			t.Fatalf("a refused upload stored %s", d)
		}
	}
	e.do("GET", loc, nil).want(t, 404)
}

func TestUploadCancelAndScope(t *testing.T) {
	e := start(t, Options{})
	loc := e.do("POST", "/v2/app/blobs/uploads/", nil).want(t, 202).Header.Get("Location")
	e.do("PATCH", loc, []byte("abc")).want(t, 202)
	// An upload belongs to its repository.
	id := loc[len("/v2/app/blobs/uploads/"):]
	e.do("GET", "/v2/other/blobs/uploads/"+id, nil).want(t, 404, codeBlobUploadUnknown)
	e.do("DELETE", loc, nil).want(t, 204)
	e.do("GET", loc, nil).want(t, 404, codeBlobUploadUnknown)
	e.do("DELETE", loc, nil).want(t, 404, codeBlobUploadUnknown)
	e.do("GET", "/v2/app/blobs/uploads/nonexistent", nil).want(t, 404, codeBlobUploadUnknown)
}

func TestUploadLimits(t *testing.T) {
	e := start(t, Options{MaxUploads: 2, UploadTimeout: time.Hour})
	e.do("POST", "/v2/app/blobs/uploads/", nil).want(t, 202)
	e.do("POST", "/v2/app/blobs/uploads/", nil).want(t, 202)
	e.do("POST", "/v2/app/blobs/uploads/", nil).want(t, 429, codeTooManyRequests)
	// Idle sessions are dropped when a new one needs room.
	now := time.Now().Add(2 * time.Hour)
	e.a.uploads.now = func() time.Time { return now }
	e.do("POST", "/v2/app/blobs/uploads/", nil).want(t, 202)
	if n := len(e.a.uploads.m); n != 1 {
		t.Fatalf("%d sessions after the idle ones expired, want 1", n)
	}
}

// A chunk cut short keeps what arrived: the client asks where the upload
// stands and resumes from there.
func TestUploadResumesAfterTruncatedChunk(t *testing.T) {
	e := start(t, Options{})
	layer := adaptertest.RandomBytes(t, 4000)
	loc := e.do("POST", "/v2/app/blobs/uploads/", nil).want(t, 202).Header.Get("Location")
	head := fmt.Sprintf("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Range: 0-3999\r\nContent-Length: 4000\r\n\r\n", loc)
	adaptertest.Raw(t, e.addr, head, layer[:1000])
	r := e.do("GET", loc, nil).want(t, 204)
	if r.Header.Get("Range") != "0-999" {
		t.Fatalf("after a truncated chunk Range = %q, want 0-999", r.Header.Get("Range"))
	}
	e.do("PATCH", loc, layer[1000:], "Content-Range: 1000-3999").want(t, 202)
	e.do("PUT", loc+"?digest="+digest(layer), nil).want(t, 201)
}

// BuildKit pushes layers in parallel, and parallel builds push the same
// layers: every concurrent push of one blob succeeds and one copy is kept.
func TestConcurrentPushes(t *testing.T) {
	e := start(t, Options{})
	layer := adaptertest.RandomBytes(t, 200_000)
	d := digest(layer)
	done := make(chan int, 16)
	for i := range 16 {
		go func() {
			if i%2 == 0 {
				done <- e.status("POST", "/v2/app/blobs/uploads/?digest="+d, layer)
				return
			}
			resp, err := http.Post(e.url+"/v2/app/blobs/uploads/", "", nil)
			if err != nil {
				done <- -1
				return
			}
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			if s := e.status("PATCH", loc, layer[:100_000]); s != 202 {
				done <- s
				return
			}
			done <- e.status("PUT", loc+"?digest="+d, layer[100_000:])
		}()
	}
	for range 16 {
		if s := <-done; s != 201 {
			t.Fatalf("concurrent push answered %d", s)
		}
	}
	if g := e.do("GET", "/v2/app/blobs/"+d, nil).want(t, 200); !bytes.Equal(g.body, layer) {
		t.Fatal("wrong bytes after concurrent pushes")
	}
}

// status sends one request and returns its status only, so it may run off
// the test goroutine (-1: no answer).
func (e *env) status(method, path string, body []byte) int {
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		return -1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	resp.Body.Close()
	return resp.StatusCode
}
