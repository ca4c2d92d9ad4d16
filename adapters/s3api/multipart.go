package s3api

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
)

// maxParts is S3's bound on part numbers.
const maxParts = 10000

// Multipart uploads. Each part goes through the shared write path into a
// sealed staging file of the store (on disk, never in memory); this table
// holds only their names and digests. Completion streams the listed parts,
// in order, through the write path once more into one blob and commits it;
// abort, expiry and completion discard every part file. The table is not
// persisted: the store empties its staging directory at start, so a
// restart forgets the uploads in progress (clients start them again).
type uploads struct {
	mu sync.Mutex
	m  map[string]*upload
}

type upload struct {
	id          string
	t           target
	contentType string
	created     time.Time
	parts       map[int]*part
	completing  bool // a Complete is streaming the parts: they must stay
}

type part struct {
	blob     *store.Staged
	md5      []byte
	size     int64
	modified time.Time
}

func (p *part) etag() string { return hex.EncodeToString(p.md5) }

func newUploads() *uploads { return &uploads{m: map[string]*upload{}} }

// get returns the upload id of t, nil if there is none.
func (u *uploads) get(id string, t target) *upload {
	up := u.m[id]
	if up == nil || up.t != t {
		return nil
	}
	return up
}

// expire discards uploads older than ttl. Called on every multipart
// request, so abandoned uploads go without a timer of their own.
func (u *uploads) expire(now time.Time, ttl time.Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, up := range u.m {
		if !up.completing && now.Sub(up.created) > ttl {
			up.discard()
			delete(u.m, id)
		}
	}
}

func (u *uploads) discardAll() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, up := range u.m {
		up.discard()
		delete(u.m, id)
	}
}

func (up *upload) discard() {
	for _, p := range up.parts {
		p.blob.Discard()
	}
	up.parts = nil
}

func newUploadID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (a *Adapter) createUpload(w http.ResponseWriter, r *http.Request, t target, _ *request) {
	now := a.opts.Now()
	a.uploads.expire(now, a.opts.MultipartExpiry)
	up := &upload{id: newUploadID(), t: t, contentType: r.Header.Get("Content-Type"), created: now, parts: map[int]*part{}}
	a.uploads.mu.Lock()
	a.uploads.m[up.id] = up
	a.uploads.mu.Unlock()
	writeXML(w, http.StatusOK, struct {
		XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
		NS       string   `xml:"xmlns,attr"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		UploadID string   `xml:"UploadId"`
	}{NS: xmlns, Bucket: t.bucket, Key: t.key, UploadID: up.id})
}

func (a *Adapter) uploadPart(w http.ResponseWriter, r *http.Request, t target, q *request) {
	a.uploads.expire(a.opts.Now(), a.opts.MultipartExpiry)
	query := r.URL.Query()
	n, err := strconv.Atoi(query.Get("partNumber"))
	if err != nil || n < 1 || n > maxParts {
		writeError(w, r, errInvalidArgument.with("part number must be an integer between 1 and %d", maxParts))
		return
	}
	id := query.Get("uploadId")
	a.uploads.mu.Lock()
	known := a.uploads.get(id, t) != nil
	a.uploads.mu.Unlock()
	if !known {
		writeError(w, r, errNoSuchUpload)
		return
	}
	// A part waits for CompleteMultipartUpload, and the client chooses how
	// many there are: small ones are staged on disk too, never in memory.
	blob, d, aerr := a.receive(r, q, true)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	p := &part{blob: blob, md5: d.md5Sum(), size: blob.Size(), modified: a.opts.Now()}
	a.uploads.mu.Lock()
	up := a.uploads.get(id, t)
	if up == nil || up.completing {
		a.uploads.mu.Unlock()
		blob.Discard()
		writeError(w, r, errNoSuchUpload)
		return
	}
	if old := up.parts[n]; old != nil {
		old.blob.Discard()
	}
	up.parts[n] = p
	a.uploads.mu.Unlock()
	w.Header().Set("ETag", `"`+p.etag()+`"`)
	w.WriteHeader(http.StatusOK)
}

func (a *Adapter) abortUpload(w http.ResponseWriter, r *http.Request, t target, _ *request) {
	id := r.URL.Query().Get("uploadId")
	a.uploads.mu.Lock()
	up := a.uploads.get(id, t)
	if up != nil && !up.completing {
		up.discard()
		delete(a.uploads.m, id)
	}
	a.uploads.mu.Unlock()
	if up == nil {
		writeError(w, r, errNoSuchUpload)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type completeRequest struct {
	Parts []struct {
		PartNumber int    `xml:"PartNumber"`
		ETag       string `xml:"ETag"`
	} `xml:"Part"`
}

func (a *Adapter) completeUpload(w http.ResponseWriter, r *http.Request, t target, q *request) {
	b, aerr := readSmallBody(r, q)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	var in completeRequest
	if err := xml.Unmarshal(b, &in); err != nil || len(in.Parts) == 0 {
		writeError(w, r, errMalformedXML)
		return
	}
	id := r.URL.Query().Get("uploadId")
	a.uploads.mu.Lock()
	up := a.uploads.get(id, t)
	if up == nil || up.completing {
		a.uploads.mu.Unlock()
		writeError(w, r, errNoSuchUpload)
		return
	}
	chosen := make([]*part, 0, len(in.Parts))
	for i, p := range in.Parts {
		if i > 0 && p.PartNumber <= in.Parts[i-1].PartNumber {
			a.uploads.mu.Unlock()
			writeError(w, r, errInvalidPartOrder)
			return
		}
		have := up.parts[p.PartNumber]
		if have == nil || strings.Trim(p.ETag, `"`) != have.etag() {
			a.uploads.mu.Unlock()
			writeError(w, r, errInvalidPart.with("part %d is missing or its ETag is not %s", p.PartNumber, p.ETag))
			return
		}
		chosen = append(chosen, have)
	}
	up.completing = true
	a.uploads.mu.Unlock()

	blob, etag, aerr := a.concatenate(chosen)
	a.uploads.mu.Lock()
	up.completing = false
	a.uploads.mu.Unlock()
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	meta := messages.Meta{BuildSystem: BuildSystem, Attrs: map[string]string{attrETag: etag}}
	if up.contentType != "" {
		meta.Attrs[attrContentType] = up.contentType
	}
	if res := adapters.Commit(r.Context(), a.cache, objectRef(t), meta, blob); res.Outcome != adapters.Stored {
		writeError(w, r, a.refusal(res, false))
		return
	}
	a.uploads.mu.Lock()
	up.discard()
	delete(a.uploads.m, id)
	a.uploads.mu.Unlock()
	if err := a.rememberBucket(r.Context(), t.bucket); err != nil {
		a.opts.Logger.Warn("s3: record bucket", "bucket", t.bucket, "err", err)
	}
	writeXML(w, http.StatusOK, struct {
		XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
		NS       string   `xml:"xmlns,attr"`
		Location string   `xml:"Location"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		ETag     string   `xml:"ETag"`
	}{NS: xmlns, Location: "/" + t.bucket + "/" + t.key, Bucket: t.bucket, Key: t.key, ETag: `"` + etag + `"`})
}

// concatenate streams the parts, in order, into one staged blob through the
// shared write path (bounded by the artifact size limit), and returns it
// with S3's multipart ETag: the MD5 of the parts' MD5s, then -<count>.
func (a *Adapter) concatenate(parts []*part) (*store.Staged, string, *apiError) {
	var total int64
	sums := md5.New()
	for _, p := range parts {
		total += p.size
		sums.Write(p.md5)
	}
	body := &partsReader{parts: parts}
	defer body.Close()
	blob, res := adapters.Receive(a.cache, adapters.Upload{Body: body, Length: total, Max: a.opts.MaxArtifactSize})
	if res.Outcome != adapters.Stored {
		return nil, "", a.refusal(res, false)
	}
	return blob, fmt.Sprintf("%s-%d", hex.EncodeToString(sums.Sum(nil)), len(parts)), nil
}

// partsReader reads the staged parts one after the other, one open at a time.
type partsReader struct {
	parts []*part
	f     io.ReadCloser
}

func (p *partsReader) Read(b []byte) (int, error) {
	for {
		if p.f == nil {
			if len(p.parts) == 0 {
				return 0, io.EOF
			}
			f, err := p.parts[0].blob.Open()
			if err != nil {
				return 0, fmt.Errorf("open part: %w", err)
			}
			p.f, p.parts = f, p.parts[1:]
		}
		n, err := p.f.Read(b)
		if err == io.EOF {
			p.f.Close()
			p.f = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (p *partsReader) Close() {
	if p.f != nil {
		p.f.Close()
	}
}

type partEntry struct {
	PartNumber   int    `xml:"PartNumber"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
}

func (a *Adapter) listParts(w http.ResponseWriter, r *http.Request, t target, _ *request) {
	query := r.URL.Query()
	id := query.Get("uploadId")
	marker, _ := strconv.Atoi(query.Get("part-number-marker"))
	max := 1000
	if v := query.Get("max-parts"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, r, errInvalidArgument.with("max-parts %q is not a count", v))
			return
		}
		max = min(n, 1000)
	}
	a.uploads.mu.Lock()
	up := a.uploads.get(id, t)
	var entries []partEntry
	if up != nil {
		for n, p := range up.parts {
			if n > marker {
				entries = append(entries, partEntry{n, s3Time(p.modified), `"` + p.etag() + `"`, p.size})
			}
		}
	}
	a.uploads.mu.Unlock()
	if up == nil {
		writeError(w, r, errNoSuchUpload)
		return
	}
	slices.SortFunc(entries, func(x, y partEntry) int { return x.PartNumber - y.PartNumber })
	out := struct {
		XMLName              xml.Name    `xml:"ListPartsResult"`
		NS                   string      `xml:"xmlns,attr"`
		Bucket               string      `xml:"Bucket"`
		Key                  string      `xml:"Key"`
		UploadID             string      `xml:"UploadId"`
		PartNumberMarker     int         `xml:"PartNumberMarker"`
		NextPartNumberMarker int         `xml:"NextPartNumberMarker,omitempty"`
		MaxParts             int         `xml:"MaxParts"`
		IsTruncated          bool        `xml:"IsTruncated"`
		StorageClass         string      `xml:"StorageClass"`
		Parts                []partEntry `xml:"Part"`
	}{NS: xmlns, Bucket: t.bucket, Key: t.key, UploadID: id, PartNumberMarker: marker, MaxParts: max, StorageClass: "STANDARD"}
	if len(entries) > max {
		entries = entries[:max]
		out.IsTruncated = true
		if max > 0 {
			out.NextPartNumberMarker = entries[max-1].PartNumber
		}
	}
	out.Parts = entries
	writeXML(w, http.StatusOK, out)
}

type uploadEntry struct {
	Key          string `xml:"Key"`
	UploadID     string `xml:"UploadId"`
	Initiated    string `xml:"Initiated"`
	StorageClass string `xml:"StorageClass"`
}

// listUploads lists the bucket's uploads in progress (one page; an edge
// holds a handful).
func (a *Adapter) listUploads(w http.ResponseWriter, r *http.Request, t target, _ *request) {
	prefix := r.URL.Query().Get("prefix")
	var entries []uploadEntry
	a.uploads.mu.Lock()
	for _, up := range a.uploads.m {
		if up.t.bucket == t.bucket && up.t.scope == t.scope && strings.HasPrefix(up.t.key, prefix) {
			entries = append(entries, uploadEntry{up.t.key, up.id, s3Time(up.created), "STANDARD"})
		}
	}
	a.uploads.mu.Unlock()
	slices.SortFunc(entries, func(x, y uploadEntry) int { return strings.Compare(x.Key+x.UploadID, y.Key+y.UploadID) })
	writeXML(w, http.StatusOK, struct {
		XMLName     xml.Name      `xml:"ListMultipartUploadsResult"`
		NS          string        `xml:"xmlns,attr"`
		Bucket      string        `xml:"Bucket"`
		Prefix      string        `xml:"Prefix"`
		MaxUploads  int           `xml:"MaxUploads"`
		IsTruncated bool          `xml:"IsTruncated"`
		Uploads     []uploadEntry `xml:"Upload"`
	}{NS: xmlns, Bucket: t.bucket, Prefix: prefix, MaxUploads: 1000, Uploads: entries})
}
