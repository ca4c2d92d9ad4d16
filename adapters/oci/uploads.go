package oci

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
)

// startUpload answers POST /v2/<name>/blobs/uploads/: a cross-repository
// mount (?mount=&from=), a monolithic upload (?digest=, the body is the
// blob), or a new upload session for PATCH and PUT.
func (a *Adapter) startUpload(w http.ResponseWriter, r *http.Request, rt route) {
	start := time.Now()
	defer a.observe("put", start)
	q := r.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		if a.mount(w, r, rt, mount, q.Get("from")) {
			return
		}
		// Not mountable: the spec's answer is a plain upload session.
	} else if d := q.Get("digest"); d != "" {
		hex, ok := blobDigest(w, r, d)
		if !ok {
			return
		}
		res := adapters.Store(r.Context(), a.cache, blobRef(rt.name, hex), messages.Meta{BuildSystem: buildSystem}, adapters.Upload{
			Body: r.Body, Length: r.ContentLength, Hash: hex, Max: a.opts.MaxArtifactSize,
		})
		a.answerBlobPut(w, r, rt, d, res)
		return
	}
	up, err := adapters.BeginChunked(a.cache, a.opts.MaxArtifactSize)
	if err != nil {
		a.opts.Logger.Error("oci: open upload", "repo", rt.name, "err", err)
		writeError(w, r, http.StatusInternalServerError, codeUnknown, "cannot start an upload")
		return
	}
	sess, err := a.uploads.open(rt.name, up)
	if err != nil {
		up.Discard()
		w.Header().Set("Retry-After", "10")
		writeError(w, r, http.StatusTooManyRequests, codeTooManyRequests, err.Error())
		return
	}
	a.sessionHeaders(w, sess, 0)
	w.WriteHeader(http.StatusAccepted)
}

// mount links a blob of repository from into rt's repository without a
// transfer. It answers 201 and reports true when the blob was there.
func (a *Adapter) mount(w http.ResponseWriter, r *http.Request, rt route, digest, from string) bool {
	hex, ok := parseDigest(digest)
	if !ok {
		return false
	}
	dst := blobRef(rt.name, hex)
	if res, err := a.cache.Stat(r.Context(), dst); err == nil && res.Found {
		a.blobCreated(w, rt, digest)
		return true
	}
	if from == "" || !validName(from) {
		return false
	}
	src, err := a.cache.Get(r.Context(), blobRef(from, hex))
	if err != nil || !src.Found {
		return false
	}
	defer src.Body.Close()
	// The link needs a staged file of its own; the store keeps one copy of
	// the bytes (the commit finds the blob and drops the staged copy).
	res := adapters.Store(r.Context(), a.cache, dst, messages.Meta{BuildSystem: buildSystem}, adapters.Upload{
		Body: src.Body, Length: src.Meta.Size, Hash: hex, Max: a.opts.MaxArtifactSize,
	})
	if res.Outcome != adapters.Stored {
		a.opts.Logger.Warn("oci: mount failed; falling back to an upload", "repo", rt.name, "from", from, "digest", digest, "outcome", res.Outcome, "err", res.Err)
		return false
	}
	a.blobCreated(w, rt, digest)
	return true
}

// answerBlobPut answers a finished upload.
func (a *Adapter) answerBlobPut(w http.ResponseWriter, r *http.Request, rt route, digest string, res adapters.Result) {
	a.opts.Metrics.Uploaded(res.Size)
	if res.Outcome == adapters.Stored {
		a.blobCreated(w, rt, digest)
		return
	}
	if res.Outcome == adapters.Internal || res.Outcome == adapters.Unavailable {
		a.opts.Logger.Error("oci: store blob failed", "repo", rt.name, "digest", digest, "outcome", res.Outcome, "err", res.Err)
	}
	ans := blobAnswers.For(res)
	writeError(w, r, ans.Status, outcomeCode(res.Outcome, codeDigestInvalid), ans.Message)
}

func (a *Adapter) blobCreated(w http.ResponseWriter, rt route, digest string) {
	h := w.Header()
	h.Set("Location", "/v2/"+rt.name+"/blobs/"+digest)
	h.Set("Docker-Content-Digest", digest)
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// sessionHeaders are the headers of every answer about an open upload:
// where to send the next request and what has been received.
func (a *Adapter) sessionHeaders(w http.ResponseWriter, sess *session, size int64) {
	h := w.Header()
	h.Set("Location", "/v2/"+sess.repo+"/blobs/uploads/"+sess.id)
	h.Set("Docker-Upload-UUID", sess.id)
	h.Set("Range", receivedRange(size))
	h.Set("Content-Length", "0")
}

// receivedRange is the Range header of an upload: "0-<last byte>". An empty
// upload says "0-0", as Docker's registry does and clients expect.
func receivedRange(size int64) string { return "0-" + strconv.FormatInt(max(size-1, 0), 10) }

// patchUpload appends one chunk. With Content-Range the chunk must start
// where the upload ends (416 otherwise); without it (a streamed PATCH, as
// crane and skopeo send) the body is appended whole.
func (a *Adapter) patchUpload(w http.ResponseWriter, r *http.Request, rt route) {
	sess := a.uploads.lock(rt.name, rt.arg)
	if sess == nil {
		writeError(w, r, http.StatusNotFound, codeBlobUploadUnknown, "upload unknown")
		return
	}
	defer sess.mu.Unlock()
	if !a.appendChunk(w, r, sess) {
		return
	}
	a.sessionHeaders(w, sess, sess.up.Size())
	w.WriteHeader(http.StatusAccepted)
}

// appendChunk appends the request body to the upload, or answers the
// refusal and reports false. The caller holds sess.mu.
func (a *Adapter) appendChunk(w http.ResponseWriter, r *http.Request, sess *session) bool {
	length := r.ContentLength
	if cr := r.Header.Get("Content-Range"); cr != "" {
		first, last, ok := parseContentRange(cr)
		if !ok {
			writeError(w, r, http.StatusBadRequest, codeBlobUploadInvalid, "malformed Content-Range "+quote(cr))
			return false
		}
		if have := sess.up.Size(); first != have {
			a.sessionHeaders(w, sess, have)
			writeError(w, r, http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid,
				fmt.Sprintf("chunk starts at %d but the upload has %d bytes: chunks must be sent in order without overlap", first, have))
			return false
		}
		n := last - first + 1
		if length >= 0 && length != n {
			writeError(w, r, http.StatusBadRequest, codeBlobUploadInvalid,
				fmt.Sprintf("Content-Range %q names %d bytes but Content-Length is %d", cr, n, length))
			return false
		}
		length = n
	}
	res := sess.up.Append(r.Body, length)
	if res.Outcome == adapters.Stored {
		a.opts.Metrics.Uploaded(res.Size)
		return true
	}
	if res.Outcome != adapters.Truncated {
		// Past the limit, on a full disk or a broken file the upload cannot
		// go on; a truncated chunk can (the client asks where to resume).
		a.uploads.end(sess)
		sess.up.Discard()
	}
	if res.Outcome == adapters.Internal || res.Outcome == adapters.Unavailable {
		a.opts.Logger.Error("oci: upload chunk failed", "repo", sess.repo, "upload", sess.id, "outcome", res.Outcome, "err", res.Err)
	}
	ans := blobAnswers.For(res)
	writeError(w, r, ans.Status, outcomeCode(res.Outcome, codeBlobUploadInvalid), ans.Message)
	return false
}

// parseContentRange reads "<first>-<last>", also with a "bytes " or
// "bytes=" prefix and a "/<total>" suffix, which some clients send.
func parseContentRange(s string) (first, last int64, ok bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "bytes "), "bytes=")
	s, _, _ = strings.Cut(s, "/")
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	f, err1 := strconv.ParseInt(a, 10, 64)
	l, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || f < 0 || l < f {
		return 0, 0, false
	}
	return f, l, true
}

// finishUpload answers PUT <location>?digest=: the last chunk (if the body
// has one) is appended, the upload sealed and verified against the digest,
// and the blob committed. A digest that does not match stores nothing.
func (a *Adapter) finishUpload(w http.ResponseWriter, r *http.Request, rt route) {
	start := time.Now()
	defer a.observe("put", start)
	d := r.URL.Query().Get("digest")
	hex, ok := blobDigest(w, r, d)
	if !ok {
		return
	}
	sess := a.uploads.lock(rt.name, rt.arg)
	if sess == nil {
		writeError(w, r, http.StatusNotFound, codeBlobUploadUnknown, "upload unknown")
		return
	}
	defer sess.mu.Unlock()
	if r.ContentLength != 0 && !a.appendChunk(w, r, sess) {
		return
	}
	a.uploads.end(sess)
	blob, res := sess.up.Finish(hex)
	if res.Outcome == adapters.Stored {
		res = adapters.Commit(r.Context(), a.cache, blobRef(rt.name, hex), messages.Meta{BuildSystem: buildSystem}, blob)
	}
	if res.Outcome != adapters.Stored {
		ans := blobAnswers.For(res)
		if res.Outcome == adapters.Internal || res.Outcome == adapters.Unavailable {
			a.opts.Logger.Error("oci: store blob failed", "repo", rt.name, "digest", d, "outcome", res.Outcome, "err", res.Err)
		}
		writeError(w, r, ans.Status, outcomeCode(res.Outcome, codeDigestInvalid), ans.Message)
		return
	}
	a.blobCreated(w, rt, d)
}

// uploadStatus answers GET <location>: what the upload has received.
func (a *Adapter) uploadStatus(w http.ResponseWriter, r *http.Request, rt route) {
	sess := a.uploads.lock(rt.name, rt.arg)
	if sess == nil {
		writeError(w, r, http.StatusNotFound, codeBlobUploadUnknown, "upload unknown")
		return
	}
	defer sess.mu.Unlock()
	a.sessionHeaders(w, sess, sess.up.Size())
	w.WriteHeader(http.StatusNoContent)
}

// cancelUpload answers DELETE <location>.
func (a *Adapter) cancelUpload(w http.ResponseWriter, r *http.Request, rt route) {
	sess := a.uploads.lock(rt.name, rt.arg)
	if sess == nil {
		writeError(w, r, http.StatusNotFound, codeBlobUploadUnknown, "upload unknown")
		return
	}
	defer sess.mu.Unlock()
	a.uploads.end(sess)
	sess.up.Discard()
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
}
