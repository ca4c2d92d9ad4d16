package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
)

// blobRef is the link that makes a blob visible in a repository; its bytes
// are the CAS blob with the same SHA-256.
func blobRef(repo, hex string) messages.Ref {
	return messages.Ref{Namespace: blobsNS(repo), Key: hex}
}

// blobDigest validates the digest of a blob route.
func blobDigest(w http.ResponseWriter, r *http.Request, d string) (string, bool) {
	hex, ok := parseDigest(d)
	if !ok {
		writeError(w, r, http.StatusBadRequest, codeDigestInvalid, "invalid or unsupported digest "+quote(d)+": want sha256:<64 lower-case hex>")
	}
	return hex, ok
}

// getBlob answers GET and HEAD /v2/<name>/blobs/<digest>, with single
// ranges (206) for clients that resume a download.
func (a *Adapter) getBlob(w http.ResponseWriter, r *http.Request, rt route) {
	start := time.Now()
	defer a.observe("get", start)
	hex, ok := blobDigest(w, r, rt.arg)
	if !ok {
		return
	}
	ref := blobRef(rt.name, hex)
	h := w.Header()
	if r.Method == http.MethodHead {
		res, err := a.cache.Stat(r.Context(), ref)
		if err != nil || !res.Found {
			writeError(w, r, http.StatusNotFound, codeBlobUnknown, "blob unknown to repository")
			return
		}
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(res.Meta.Size, 10))
		h.Set("Docker-Content-Digest", rt.arg)
		h.Set("Accept-Ranges", "bytes")
		w.WriteHeader(http.StatusOK)
		return
	}
	res, err := a.cache.Get(r.Context(), ref)
	if err != nil || !res.Found {
		a.count(false)
		writeError(w, r, http.StatusNotFound, codeBlobUnknown, "blob unknown to repository")
		return
	}
	a.count(true)
	defer res.Body.Close()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", rt.arg)
	h.Set("Accept-Ranges", "bytes")
	h.Set("ETag", `"`+rt.arg+`"`)
	n, err := a.sendRange(w, r, res.Body, res.Meta.Size)
	a.opts.Metrics.Downloaded(n)
	if err != nil && !errors.Is(err, context.Canceled) {
		a.opts.Logger.Warn("oci: blob response aborted", "repo", rt.name, "digest", rt.arg, "sent", n, "err", err)
	}
}

// sendRange writes the whole body (200) or the one range the request asks
// for (206). A local blob is a file and is sent with sendfile either way;
// an upstream stream is skipped forward to the range's start.
func (a *Adapter) sendRange(w http.ResponseWriter, r *http.Request, body io.Reader, size int64) (int64, error) {
	first, last, ok, err := parseRange(r.Header.Get("Range"), size)
	if err != nil {
		w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
		writeError(w, r, http.StatusRequestedRangeNotSatisfiable, codeBlobUnknown, err.Error())
		return 0, nil
	}
	if !ok {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		return adapters.SendBody(w, body, size)
	}
	if seeker, isSeeker := body.(io.Seeker); isSeeker {
		if _, err := seeker.Seek(first, io.SeekStart); err != nil {
			return 0, err
		}
	} else if _, err := io.CopyN(io.Discard, body, first); err != nil {
		return 0, err
	}
	n := last - first + 1
	w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, size))
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusPartialContent)
	return adapters.Copy(w, io.LimitReader(body, n))
}

// parseRange reads a single "bytes=a-b", "bytes=a-" or "bytes=-n" range.
// ok is false when there is no range to honour (none, or several: the whole
// blob is a correct answer to those).
func parseRange(h string, size int64) (first, last int64, ok bool, err error) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, nil
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, nil
	}
	switch {
	case a == "":
		n, perr := strconv.ParseInt(b, 10, 64)
		if perr != nil || n <= 0 {
			return 0, 0, false, fmt.Errorf("invalid range %q", h)
		}
		first, last = max(size-n, 0), size-1
	default:
		f, perr := strconv.ParseInt(a, 10, 64)
		if perr != nil || f < 0 {
			return 0, 0, false, fmt.Errorf("invalid range %q", h)
		}
		first, last = f, size-1
		if b != "" {
			l, perr := strconv.ParseInt(b, 10, 64)
			if perr != nil || l < f {
				return 0, 0, false, fmt.Errorf("invalid range %q", h)
			}
			last = min(l, size-1)
		}
	}
	if first >= size {
		return 0, 0, false, fmt.Errorf("range %q starts past the blob's %d bytes", h, size)
	}
	return first, last, true, nil
}

// deleteBlob removes a blob from a repository (its link; the bytes go with
// it when nothing else refers to them).
func (a *Adapter) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) {
	hex, ok := blobDigest(w, r, rt.arg)
	if !ok {
		return
	}
	ref := blobRef(rt.name, hex)
	res, err := a.cache.Stat(r.Context(), messages.Ref{Namespace: ref.Namespace, Key: ref.Key})
	if err != nil || !res.Found {
		writeError(w, r, http.StatusNotFound, codeBlobUnknown, "blob unknown to repository")
		return
	}
	if err := a.cache.Delete(r.Context(), ref); err != nil {
		a.opts.Logger.Error("oci: delete blob", "repo", rt.name, "digest", rt.arg, "err", err)
		writeError(w, r, http.StatusInternalServerError, codeUnknown, "cannot delete blob")
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}
