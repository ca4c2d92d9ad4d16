package oci

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tuist/fabrik-node/adapters"
)

// maxListed bounds one tags/list answer without ?n= and the manifests a
// referrers answer scans: a build cache repository holds a handful of tags.
const maxListed = 10000

const listPage = 1000

var errNoLister = errors.New("this cache cannot list keys")

// eachEntry calls fn for every key of namespace in the local tier, up to
// maxListed of them.
func (a *Adapter) eachEntry(r *http.Request, namespace string, fn func(adapters.Entry)) error {
	l, ok := a.cache.(adapters.Lister)
	if !ok {
		return errNoLister
	}
	after := ""
	for seen := 0; seen < maxListed; {
		page, err := adapters.ListN(r.Context(), l, namespace, "", after, min(listPage, maxListed-seen))
		if err != nil {
			return err
		}
		for _, e := range page {
			fn(e)
		}
		seen += len(page)
		if len(page) < listPage {
			return nil
		}
		after = page[len(page)-1].Key
	}
	return nil
}

// listTags answers GET /v2/<name>/tags/list in lexical order, n at a time
// after last, with a Link header to the next page. It lists the tags this
// node holds (pushed through it, or read through it from upstream).
func (a *Adapter) listTags(w http.ResponseWriter, r *http.Request, rt route) {
	q := r.URL.Query()
	n := maxListed
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			writeError(w, r, http.StatusBadRequest, codeUnsupported, "n must be a non-negative integer")
			return
		}
		n = min(v, maxListed)
	}
	last := q.Get("last")
	tags := []string{}
	if n > 0 {
		l, ok := a.cache.(adapters.Lister)
		if !ok {
			writeError(w, r, http.StatusInternalServerError, codeUnknown, errNoLister.Error())
			return
		}
		// One more than asked tells whether there is a next page.
		page, err := adapters.ListN(r.Context(), l, tagsNS(rt.name), "", last, n+1)
		if err != nil {
			a.opts.Logger.Error("oci: list tags", "repo", rt.name, "err", err)
			writeError(w, r, http.StatusInternalServerError, codeUnknown, "cannot list tags")
			return
		}
		for i, e := range page {
			if i == n {
				next := url.Values{"n": {strconv.Itoa(n)}, "last": {tags[len(tags)-1]}}
				w.Header().Set("Link", `</v2/`+rt.name+`/tags/list?`+next.Encode()+`>; rel="next"`)
				break
			}
			tags = append(tags, e.Key)
		}
	}
	writeJSON(w, r, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.name, tags})
}

// referrers answers GET /v2/<name>/referrers/<digest>: an image index of
// the manifests in the repository whose subject is digest, filtered by
// ?artifactType=.
func (a *Adapter) referrers(w http.ResponseWriter, r *http.Request, rt route) {
	if _, ok := parseDigest(rt.arg); !ok {
		writeError(w, r, http.StatusBadRequest, codeDigestInvalid, "invalid or unsupported digest "+quote(rt.arg))
		return
	}
	filter := r.URL.Query().Get("artifactType")
	found := []descriptor{}
	err := a.eachEntry(r, manifestsNS(rt.name), func(e adapters.Entry) {
		attrs := e.Meta.Attrs
		if attrs[attrSubject] != rt.arg || (filter != "" && attrs[attrArtifactType] != filter) {
			return
		}
		d := descriptor{MediaType: attrs[attrContentType], Digest: digestOf(e.Meta.Hash), Size: e.Meta.Size, ArtifactType: attrs[attrArtifactType]}
		if s := attrs[attrAnnotations]; s != "" {
			_ = json.Unmarshal([]byte(s), &d.Annotations)
		}
		found = append(found, d)
	})
	if err != nil {
		a.opts.Logger.Error("oci: list referrers", "repo", rt.name, "err", err)
		writeError(w, r, http.StatusInternalServerError, codeUnknown, "cannot list referrers")
		return
	}
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	const indexType = "application/vnd.oci.image.index.v1+json"
	writeJSON(w, r, indexType, struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}{2, indexType, found})
}

func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, codeUnknown, "cannot encode the answer")
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}
