package oci

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
)

// maxManifestSize is the largest manifest accepted: the spec asks
// registries to take at least 4 MiB, and a manifest is parsed in memory.
const maxManifestSize = 4 << 20

// Attributes stored with each manifest (and tag) key.
const (
	attrContentType  = "content-type"
	attrSubject      = "subject"
	attrArtifactType = "artifact-type"
	attrAnnotations  = "annotations"
	// attrPushedAt (tags only) is when the tag was pushed, in Unix
	// nanoseconds of the pushing node's clock: of two copies of a tag (this
	// edge's, an upstream's), the later push wins.
	attrPushedAt = "pushed-at"
)

// maxAnnotations bounds the annotations kept for the referrers listing;
// larger sets are left out of it rather than bloating the key index.
const maxAnnotations = 4 << 10

// descriptor is the part of an OCI descriptor the registry reads.
type descriptor struct {
	MediaType    string            `json:"mediaType,omitempty"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// manifestDoc covers OCI image manifests and indexes and Docker schema 2
// manifests and manifest lists: they share these fields.
type manifestDoc struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptor       `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Manifests     []descriptor      `json:"manifests"`
	Subject       *descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// manifestRef resolves a manifest route's reference: a digest addresses the
// repository's manifests, anything else is a tag.
func manifestRef(w http.ResponseWriter, r *http.Request, rt route) (messages.Ref, bool) {
	if strings.Contains(rt.arg, ":") {
		hex, ok := parseDigest(rt.arg)
		if !ok {
			writeError(w, r, http.StatusBadRequest, codeDigestInvalid, "invalid or unsupported digest "+quote(rt.arg))
			return messages.Ref{}, false
		}
		return messages.Ref{Namespace: manifestsNS(rt.name), Key: hex}, true
	}
	if !validTag(rt.arg) {
		writeError(w, r, http.StatusBadRequest, codeManifestInvalid, "invalid tag "+quote(rt.arg))
		return messages.Ref{}, false
	}
	return messages.Ref{Namespace: tagsNS(rt.name), Key: rt.arg}, true
}

// getManifest answers GET and HEAD /v2/<name>/manifests/<reference> with
// the Content-Type the manifest was pushed with.
func (a *Adapter) getManifest(w http.ResponseWriter, r *http.Request, rt route) {
	start := time.Now()
	defer a.observe("get", start)
	ref, ok := manifestRef(w, r, rt)
	if !ok {
		return
	}
	refs := []messages.Ref{ref}
	if moved, ok := a.movedTag(r, rt, ref); ok {
		// Another edge moved the tag: read the manifest it points to now,
		// and the tag itself only if that manifest cannot be found.
		refs = []messages.Ref{moved, ref}
	}
	var (
		meta messages.Meta
		res  *messages.GetResult
	)
	if r.Method == http.MethodHead {
		var st *messages.StatResult
		var err error
		for _, ref := range refs {
			if st, err = a.cache.Stat(r.Context(), ref); err == nil && st.Found {
				break
			}
		}
		if err != nil || !st.Found {
			writeError(w, r, http.StatusNotFound, codeManifestUnknown, "manifest unknown")
			return
		}
		meta = st.Meta
	} else {
		var err error
		for _, ref := range refs {
			if res, err = a.cache.Get(r.Context(), ref); err == nil && res.Found {
				break
			}
		}
		if err != nil || !res.Found {
			a.count(false)
			writeError(w, r, http.StatusNotFound, codeManifestUnknown, "manifest unknown")
			return
		}
		a.count(true)
		defer res.Body.Close()
		meta = res.Meta
	}
	h := w.Header()
	ct := meta.Attrs[attrContentType]
	if ct == "" {
		ct = "application/vnd.oci.image.manifest.v1+json"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.FormatInt(meta.Size, 10))
	h.Set("Docker-Content-Digest", digestOf(meta.Hash))
	h.Set("ETag", `"`+digestOf(meta.Hash)+`"`)
	w.WriteHeader(http.StatusOK)
	if res != nil {
		n, err := adapters.SendBody(w, res.Body, meta.Size)
		a.opts.Metrics.Downloaded(n)
		if err != nil {
			a.opts.Logger.Debug("oci: manifest response aborted", "repo", rt.name, "ref", rt.arg, "err", err)
		}
	}
}

// movedTag checks a tag against the upstreams: reads go to the local tier
// first, and an edge that once read a tag through its upstream holds a
// copy, which another edge's push (BuildKit re-pushes its cache ref every
// build) does not replace. When an upstream holds a later push of the tag,
// movedTag returns the ref of the manifest it points to. One upstream Stat
// per tag read: a build resolves its cache ref once.
func (a *Adapter) movedTag(r *http.Request, rt route, ref messages.Ref) (messages.Ref, bool) {
	ts, ok := a.cache.(adapters.TierStat)
	if !ok || ref.Namespace != tagsNS(rt.name) {
		return messages.Ref{}, false
	}
	up, err := ts.StatUpstream(r.Context(), ref)
	if err != nil || !up.Found {
		return messages.Ref{}, false
	}
	local, err := ts.StatLocal(r.Context(), ref)
	if err == nil && local.Found && (local.Meta.Hash == up.Meta.Hash || pushedAt(local.Meta) >= pushedAt(up.Meta)) {
		return messages.Ref{}, false
	}
	return messages.Ref{Namespace: manifestsNS(rt.name), Key: up.Meta.Hash}, true
}

func pushedAt(m messages.Meta) int64 {
	n, _ := strconv.ParseInt(m.Attrs[attrPushedAt], 10, 64)
	return n
}

// limitedBuffer keeps up to max bytes of what is written to it; the
// shared write path bounds the upload itself.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// putManifest answers PUT /v2/<name>/manifests/<reference>. The body goes
// through the shared write path (verified against a digest reference) and
// is parsed; every blob it names must be in the repository. The manifest is
// stored by digest, and a tag reference points the tag at it.
func (a *Adapter) putManifest(w http.ResponseWriter, r *http.Request, rt route) {
	start := time.Now()
	defer a.observe("put", start)
	ref, ok := manifestRef(w, r, rt)
	if !ok {
		return
	}
	limit := int64(maxManifestSize)
	if m := a.opts.MaxArtifactSize; m > 0 && m < limit {
		limit = m
	}
	expect := ""
	if ref.Namespace == manifestsNS(rt.name) {
		expect = ref.Key
	}
	raw := &limitedBuffer{max: int(limit)}
	blob, res := adapters.Receive(a.cache, adapters.Upload{Body: r.Body, Length: r.ContentLength, Hash: expect, Max: limit, Also: raw})
	if res.Outcome != adapters.Stored {
		a.refuseManifest(w, r, rt, res)
		return
	}
	var doc manifestDoc
	if err := json.Unmarshal(raw.Bytes(), &doc); err != nil {
		blob.Discard()
		writeError(w, r, http.StatusBadRequest, codeManifestInvalid, "manifest is not valid JSON: "+err.Error())
		return
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = doc.MediaType
	}
	if ct == "" {
		blob.Discard()
		writeError(w, r, http.StatusBadRequest, codeManifestInvalid, "manifest has neither a Content-Type nor a mediaType")
		return
	}
	if doc.MediaType != "" && !sameMediaType(ct, doc.MediaType) {
		blob.Discard()
		writeError(w, r, http.StatusBadRequest, codeManifestInvalid, "Content-Type "+quote(ct)+" differs from the manifest's mediaType "+quote(doc.MediaType))
		return
	}
	if missing, ok := a.missingReference(r, rt, &doc); !ok {
		blob.Discard()
		writeError(w, r, http.StatusBadRequest, codeManifestBlobUnknown, "manifest references "+missing+", which is not in the repository")
		return
	}
	hex := res.Hash
	meta := messages.Meta{BuildSystem: buildSystem, Attrs: manifestAttrs(ct, &doc)}
	res = adapters.Commit(r.Context(), a.cache, messages.Ref{Namespace: manifestsNS(rt.name), Key: hex}, meta, blob)
	if res.Outcome == adapters.Stored && ref.Namespace == tagsNS(rt.name) {
		// The tag is a key of its own resolving to the same blob; a
		// re-push moves it, and the manifest it pointed to stays
		// addressable by digest until evicted.
		tag := messages.Meta{BuildSystem: buildSystem, Attrs: maps.Clone(meta.Attrs)}
		tag.Attrs[attrPushedAt] = strconv.FormatInt(time.Now().UnixNano(), 10)
		res = adapters.Store(r.Context(), a.cache, ref, tag, adapters.Upload{
			Body: bytes.NewReader(raw.Bytes()), Length: int64(raw.Len()), Hash: hex, Max: limit,
		})
	}
	if res.Outcome != adapters.Stored {
		a.refuseManifest(w, r, rt, res)
		return
	}
	a.opts.Metrics.Uploaded(res.Size)
	h := w.Header()
	h.Set("Location", "/v2/"+rt.name+"/manifests/"+digestOf(hex))
	h.Set("Docker-Content-Digest", digestOf(hex))
	if doc.Subject != nil && doc.Subject.Digest != "" {
		h.Set("OCI-Subject", doc.Subject.Digest)
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func (a *Adapter) refuseManifest(w http.ResponseWriter, r *http.Request, rt route, res adapters.Result) {
	if res.Outcome == adapters.Internal || res.Outcome == adapters.Unavailable {
		a.opts.Logger.Error("oci: store manifest failed", "repo", rt.name, "ref", rt.arg, "outcome", res.Outcome, "err", res.Err)
	}
	ans := manifestAnswers.For(res)
	code := outcomeCode(res.Outcome, codeDigestInvalid)
	if res.Outcome == adapters.TooLarge {
		code = codeManifestInvalid
	}
	writeError(w, r, ans.Status, code, ans.Message)
}

// sameMediaType compares media types without their parameters.
func sameMediaType(a, b string) bool {
	a, _, _ = strings.Cut(a, ";")
	b, _, _ = strings.Cut(b, ";")
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}

// missingReference checks that what the manifest points to was pushed to
// the repository: an image manifest's config and layers are blobs; an
// index's entries are manifests, or blobs (BuildKit's cache index lists its
// layers and cache config directly). Layers that name URLs (Docker's
// foreign layers) live elsewhere and are not checked. The subject may be
// absent: referrers can be pushed before what they refer to.
func (a *Adapter) missingReference(r *http.Request, rt route, doc *manifestDoc) (string, bool) {
	has := func(ns, d string) bool {
		hex, ok := parseDigest(d)
		if !ok {
			return false
		}
		res, err := a.cache.Stat(r.Context(), messages.Ref{Namespace: ns, Key: hex})
		return err == nil && res.Found
	}
	if doc.Config != nil && !has(blobsNS(rt.name), doc.Config.Digest) {
		return "config " + quote(doc.Config.Digest), false
	}
	for _, l := range doc.Layers {
		if len(l.URLs) == 0 && !has(blobsNS(rt.name), l.Digest) {
			return "layer " + quote(l.Digest), false
		}
	}
	for _, m := range doc.Manifests {
		if !has(manifestsNS(rt.name), m.Digest) && !has(blobsNS(rt.name), m.Digest) {
			return "manifest " + quote(m.Digest), false
		}
	}
	return "", true
}

// manifestAttrs is what the key index keeps about a manifest: its
// Content-Type (returned exactly on every read), and for the referrers API
// its subject, artifact type and annotations.
func manifestAttrs(ct string, doc *manifestDoc) map[string]string {
	attrs := map[string]string{attrContentType: ct}
	if doc.Subject != nil && doc.Subject.Digest != "" {
		attrs[attrSubject] = doc.Subject.Digest
	}
	at := doc.ArtifactType
	if at == "" && doc.Config != nil {
		at = doc.Config.MediaType
	}
	if at != "" {
		attrs[attrArtifactType] = at
	}
	if len(doc.Annotations) > 0 {
		if b, err := json.Marshal(doc.Annotations); err == nil && len(b) <= maxAnnotations {
			attrs[attrAnnotations] = string(b)
		}
	}
	return attrs
}

// deleteManifest removes a tag, or a manifest by digest together with the
// tags that point to it.
func (a *Adapter) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) {
	ref, ok := manifestRef(w, r, rt)
	if !ok {
		return
	}
	st, err := a.cache.Stat(r.Context(), ref)
	if err != nil || !st.Found {
		writeError(w, r, http.StatusNotFound, codeManifestUnknown, "manifest unknown")
		return
	}
	refs := []messages.Ref{ref}
	if ref.Namespace == manifestsNS(rt.name) {
		err := a.eachEntry(r, tagsNS(rt.name), func(e adapters.Entry) {
			if e.Meta.Hash == ref.Key {
				refs = append(refs, messages.Ref{Namespace: tagsNS(rt.name), Key: e.Key})
			}
		})
		if err != nil {
			a.opts.Logger.Warn("oci: list tags to delete", "repo", rt.name, "err", err)
		}
	}
	for _, ref := range refs {
		if err := a.cache.Delete(r.Context(), ref); err != nil {
			a.opts.Logger.Error("oci: delete manifest", "repo", rt.name, "ref", ref.Key, "err", err)
			writeError(w, r, http.StatusInternalServerError, codeUnknown, "cannot delete manifest")
			return
		}
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}
