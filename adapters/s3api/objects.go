package s3api

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
)

// Attrs kept with each object's key.
const (
	attrETag        = "etag" // hex MD5, or <hex>-<parts> for a multipart object
	attrContentType = "content-type"
)

// etagOf is the object's ETag, quoted. An object that reached this node
// without one (written by a tool that kept no MD5) gets a stable stand-in
// in multipart form, so clients that check an MD5 ETag (s3cmd) skip it.
func etagOf(m messages.Meta) string {
	if e := m.Attrs[attrETag]; e != "" {
		return `"` + e + `"`
	}
	if len(m.Hash) >= 32 {
		return `"` + m.Hash[:32] + `-1"`
	}
	return `""`
}

func setObjectHeaders(w http.ResponseWriter, m messages.Meta, now time.Time) {
	h := w.Header()
	h.Set("ETag", etagOf(m))
	modified := m.CreatedAt
	if modified.IsZero() {
		modified = now
	}
	h.Set("Last-Modified", modified.UTC().Format(http.TimeFormat))
	ct := m.Attrs[attrContentType]
	if ct == "" {
		ct = "binary/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Accept-Ranges", "bytes")
}

// precondition answers If-Match / If-None-Match (OpenDAL maps 304 and 412
// to condition mismatches); 0 when the request may proceed.
func precondition(r *http.Request, etag string) int {
	if v := r.Header.Get("If-Match"); v != "" && !etagMatches(v, etag) {
		return http.StatusPreconditionFailed
	}
	if v := r.Header.Get("If-None-Match"); v != "" && etagMatches(v, etag) {
		return http.StatusNotModified
	}
	return 0
}

func etagMatches(list, etag string) bool {
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimSpace(e)
		if e == "*" || strings.Trim(e, `"`) == strings.Trim(etag, `"`) {
			return true
		}
	}
	return false
}

func (a *Adapter) headObject(w http.ResponseWriter, r *http.Request, t target, _ *request) {
	res, err := a.cache.Stat(r.Context(), objectRef(t))
	if err != nil || !res.Found {
		writeError(w, r, errNoSuchKey)
		return
	}
	setObjectHeaders(w, res.Meta, a.opts.Now())
	if st := precondition(r, etagOf(res.Meta)); st != 0 {
		w.WriteHeader(st)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(res.Meta.Size, 10))
	w.WriteHeader(http.StatusOK)
}

func (a *Adapter) getObject(w http.ResponseWriter, r *http.Request, t target, _ *request) {
	res, err := a.cache.Get(r.Context(), objectRef(t))
	if err != nil || !res.Found {
		a.opts.Metrics.Miss(BuildSystem)
		writeError(w, r, errNoSuchKey)
		return
	}
	defer res.Body.Close()
	a.opts.Metrics.Hit(BuildSystem)
	size := res.Meta.Size
	setObjectHeaders(w, res.Meta, a.opts.Now())
	if st := precondition(r, etagOf(res.Meta)); st != 0 {
		w.WriteHeader(st)
		return
	}
	start, length, partial, ok := parseRange(r.Header.Get("Range"), size)
	if !ok {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		writeError(w, r, errInvalidRange)
		return
	}
	body := io.Reader(res.Body)
	if start > 0 {
		if s, isSeeker := res.Body.(io.Seeker); isSeeker {
			if _, err := s.Seek(start, io.SeekStart); err != nil {
				writeError(w, r, errInternal)
				return
			}
		} else if _, err := io.CopyN(io.Discard, res.Body, start); err != nil {
			writeError(w, r, errInternal)
			return
		}
	}
	if partial {
		body = io.LimitReader(body, length)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, size))
	}
	w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	n, err := adapters.SendBody(w, body, length)
	a.opts.Metrics.Downloaded(n)
	if err != nil && !errors.Is(err, context.Canceled) {
		a.opts.Logger.Warn("s3: response aborted", "bucket", t.bucket, "key", t.key, "sent", n, "err", err)
	}
	if _, local := res.Body.(*os.File); partial && err == nil && !local {
		// A range of an object read from an upstream: read the rest too, so
		// the router's tee stores it here and the next ranges (awscli
		// downloads large objects in parallel ranges) are local hits.
		_, _ = io.Copy(io.Discard, res.Body)
	}
}

// parseRange reads a single-range "bytes=" header. Several ranges are
// answered with the whole object, as RFC 9110 allows. ok is false for a
// range that cannot be satisfied.
func parseRange(h string, size int64) (start, length int64, partial, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if h == "" || !found || strings.Contains(spec, ",") {
		return 0, size, false, true
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, size, false, true
	}
	if first == "" { // suffix: the last N bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil {
			return 0, size, false, true
		}
		if n <= 0 || size == 0 {
			return 0, 0, false, false
		}
		n = min(n, size)
		return size - n, n, true, true
	}
	s, err := strconv.ParseInt(first, 10, 64)
	if err != nil || s < 0 {
		return 0, size, false, true
	}
	if s >= size {
		return 0, 0, false, false
	}
	e := size - 1
	if last != "" {
		if e, err = strconv.ParseInt(last, 10, 64); err != nil || e < s {
			return 0, size, false, true
		}
		e = min(e, size-1)
	}
	return s, e - s + 1, true, true
}

// receive stages a request body through the shared write path, checking
// every digest the client declared; held is adapters.Upload.Held. The
// caller owns the returned blob.
func (a *Adapter) receive(r *http.Request, q *request, held bool) (*store.Staged, *digests, *apiError) {
	d, aerr := newDigests(r.Header)
	if aerr != nil {
		return nil, nil, aerr
	}
	var (
		body    io.Reader = r.Body
		length            = r.ContentLength
		chunked *chunkedReader
	)
	if q.streaming() {
		if length, aerr = decodedLength(r); aerr != nil {
			return nil, nil, aerr
		}
		chunked = newChunkedReader(r.Body, q)
		body = chunked
	}
	up := adapters.Upload{Body: body, Length: length, Hash: q.payloadHash(), Max: a.opts.MaxArtifactSize, Also: d, Held: held}
	blob, res := adapters.Receive(a.cache, up)
	a.opts.Metrics.Uploaded(res.Size)
	if res.Outcome != adapters.Stored {
		var ae *apiError
		if errors.As(res.Err, &ae) {
			return nil, nil, ae
		}
		return nil, nil, a.refusal(res, up.Hash != "")
	}
	var trailer http.Header
	if chunked != nil {
		trailer = chunked.trailer
	}
	if aerr := d.check(trailer); aerr != nil {
		blob.Discard()
		return nil, nil, aerr
	}
	return blob, d, nil
}

// refusal is the S3 error of a refused upload, logged when it is the node's fault.
func (a *Adapter) refusal(res adapters.Result, payloadHashed bool) *apiError {
	if res.Outcome == adapters.Internal || res.Outcome == adapters.Unavailable {
		a.opts.Logger.Error("s3: store failed", "outcome", res.Outcome, "err", res.Err)
	}
	return errorFor(res, payloadHashed)
}

func (a *Adapter) putObject(w http.ResponseWriter, r *http.Request, t target, q *request) {
	if r.Header.Get("If-None-Match") == "*" {
		// A conditional create (S3's If-None-Match: *): refused before the
		// body is read when the key exists.
		if res, err := a.cache.Stat(r.Context(), objectRef(t)); err == nil && res.Found {
			writeError(w, r, errPreconditionFailed)
			return
		}
	}
	blob, d, aerr := a.receive(r, q, false)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	etag := hex.EncodeToString(d.md5Sum())
	meta := messages.Meta{BuildSystem: BuildSystem, Attrs: map[string]string{attrETag: etag}}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		meta.Attrs[attrContentType] = ct
	}
	if res := adapters.Commit(r.Context(), a.cache, objectRef(t), meta, blob); res.Outcome != adapters.Stored {
		writeError(w, r, a.refusal(res, false))
		return
	}
	if err := a.rememberBucket(r.Context(), t.bucket); err != nil {
		a.opts.Logger.Warn("s3: record bucket", "bucket", t.bucket, "err", err)
	}
	w.Header().Set("ETag", `"`+etag+`"`)
	w.WriteHeader(http.StatusOK)
}

func (a *Adapter) deleteObject(w http.ResponseWriter, r *http.Request, t target, _ *request) {
	if err := a.cache.Delete(r.Context(), objectRef(t)); err != nil {
		a.opts.Logger.Error("s3: delete", "bucket", t.bucket, "key", t.key, "err", err)
		writeError(w, r, errInternal)
		return
	}
	// S3 answers 204 whether or not the key existed.
	w.WriteHeader(http.StatusNoContent)
}

// readSmallBody reads an XML request body (at most 1 MiB), checking
// Content-MD5 and a signed payload hash.
func readSmallBody(r *http.Request, q *request) ([]byte, *apiError) {
	var body io.Reader = r.Body
	if q.streaming() {
		body = newChunkedReader(r.Body, q)
	}
	b, err := io.ReadAll(io.LimitReader(body, 1<<20+1))
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return nil, ae
		}
		return nil, errIncompleteBody
	}
	if len(b) > 1<<20 {
		return nil, errInvalidRequest.with("request document larger than 1 MiB")
	}
	if v := r.Header.Get("Content-Md5"); v != "" {
		sum := md5.Sum(b)
		if v != base64.StdEncoding.EncodeToString(sum[:]) {
			return nil, errBadDigest
		}
	}
	if h := q.payloadHash(); h != "" {
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != h {
			return nil, errContentSHA256Mismatch
		}
	}
	return b, nil
}

func (a *Adapter) deleteObjects(w http.ResponseWriter, r *http.Request, t target, q *request) {
	b, aerr := readSmallBody(r, q)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	var in struct {
		Quiet   bool `xml:"Quiet"`
		Objects []struct {
			Key string `xml:"Key"`
		} `xml:"Object"`
	}
	if err := xml.Unmarshal(b, &in); err != nil || len(in.Objects) > 1000 {
		writeError(w, r, errMalformedXML)
		return
	}
	type deleted struct {
		Key string `xml:"Key"`
	}
	type failed struct {
		Key     string `xml:"Key"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	var out struct {
		XMLName xml.Name  `xml:"DeleteResult"`
		NS      string    `xml:"xmlns,attr"`
		Deleted []deleted `xml:"Deleted"`
		Errors  []failed  `xml:"Error"`
	}
	out.NS = xmlns
	for _, o := range in.Objects {
		if !validKey(o.Key) {
			out.Errors = append(out.Errors, failed{o.Key, errInvalidArgument.Code, "invalid key"})
			continue
		}
		if err := a.cache.Delete(r.Context(), objectRef(target{bucket: t.bucket, key: o.Key, scope: t.scope})); err != nil {
			out.Errors = append(out.Errors, failed{o.Key, errInternal.Code, errInternal.Message})
			continue
		}
		if !in.Quiet {
			out.Deleted = append(out.Deleted, deleted{o.Key})
		}
	}
	writeXML(w, http.StatusOK, out)
}
