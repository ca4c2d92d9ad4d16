package s3api

import (
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"

	"github.com/tuist/fabrik-node/messages"
)

// maxKeys is S3's page size bound (and default).
const maxKeys = 1000

type listEntry struct {
	Key          string `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
	StorageClass string `xml:"StorageClass"`
}

type commonPrefix struct {
	Prefix string `xml:"Prefix"`
}

// page is one page of a listing: objects and common prefixes in key
// order, and the last name returned (the next page starts after it).
type page struct {
	contents  []listEntry
	prefixes  []commonPrefix
	truncated bool
	last      string
}

// list walks the bucket's keys after after, folding keys that share a
// prefix up to the delimiter into one common prefix, until max entries.
func (a *Adapter) list(r *http.Request, bucket, prefix, delimiter, after string, max int) (*page, error) {
	p := &page{}
	if max == 0 {
		return p, nil
	}
	count := 0
	lastPrefix := ""
	// A continuation after a common prefix skips every key under it.
	if delimiter != "" && strings.HasSuffix(after, delimiter) && strings.HasPrefix(after, prefix) {
		lastPrefix = after
	}
	now := a.opts.Now()
	err := a.lister.List(r.Context(), objectsPrefix+bucket, prefix, after, func(key string, m messages.Meta) bool {
		if delimiter != "" {
			if i := strings.Index(key[len(prefix):], delimiter); i >= 0 {
				cp := key[:len(prefix)+i+len(delimiter)]
				if cp == lastPrefix {
					return true
				}
				if count == max {
					p.truncated = true
					return false
				}
				lastPrefix = cp
				p.prefixes = append(p.prefixes, commonPrefix{cp})
				p.last = cp
				count++
				return true
			}
		}
		if count == max {
			p.truncated = true
			return false
		}
		modified := m.CreatedAt
		if modified.IsZero() {
			modified = now
		}
		p.contents = append(p.contents, listEntry{Key: key, LastModified: s3Time(modified), ETag: etagOf(m), Size: m.Size, StorageClass: "STANDARD"})
		p.last = key
		count++
		return true
	})
	return p, err
}

// listArgs reads the parameters both list versions share.
func (a *Adapter) listArgs(w http.ResponseWriter, r *http.Request, t target) (prefix, delimiter string, max int, ok bool) {
	if a.lister == nil {
		writeError(w, r, errNotImplemented.with("this cache cannot list"))
		return "", "", 0, false
	}
	query := r.URL.Query()
	max = maxKeys
	if v := query.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, r, errInvalidArgument.with("max-keys %q is not a count", v))
			return "", "", 0, false
		}
		max = min(n, maxKeys)
	}
	if !a.bucketExists(r.Context(), t.bucket) {
		writeError(w, r, errNoSuchBucket)
		return "", "", 0, false
	}
	return query.Get("prefix"), query.Get("delimiter"), max, true
}

func (a *Adapter) listObjectsV2(w http.ResponseWriter, r *http.Request, t target, _ *request) {
	prefix, delimiter, max, ok := a.listArgs(w, r, t)
	if !ok {
		return
	}
	query := r.URL.Query()
	after := query.Get("start-after")
	token := query.Get("continuation-token")
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil {
			writeError(w, r, errInvalidArgument.with("the continuation token is not valid"))
			return
		}
		after = string(b)
	}
	p, err := a.list(r, t.bucket, prefix, delimiter, after, max)
	if err != nil {
		a.opts.Logger.Error("s3: list", "bucket", t.bucket, "err", err)
		writeError(w, r, errInternal)
		return
	}
	out := struct {
		XMLName               xml.Name       `xml:"ListBucketResult"`
		NS                    string         `xml:"xmlns,attr"`
		Name                  string         `xml:"Name"`
		Prefix                string         `xml:"Prefix"`
		Delimiter             string         `xml:"Delimiter,omitempty"`
		StartAfter            string         `xml:"StartAfter,omitempty"`
		ContinuationToken     string         `xml:"ContinuationToken,omitempty"`
		NextContinuationToken string         `xml:"NextContinuationToken,omitempty"`
		KeyCount              int            `xml:"KeyCount"`
		MaxKeys               int            `xml:"MaxKeys"`
		IsTruncated           bool           `xml:"IsTruncated"`
		Contents              []listEntry    `xml:"Contents"`
		CommonPrefixes        []commonPrefix `xml:"CommonPrefixes"`
	}{NS: xmlns, Name: t.bucket, Prefix: prefix, Delimiter: delimiter, StartAfter: query.Get("start-after"),
		ContinuationToken: token, KeyCount: len(p.contents) + len(p.prefixes), MaxKeys: max, IsTruncated: p.truncated,
		Contents: p.contents, CommonPrefixes: p.prefixes}
	if p.truncated {
		out.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(p.last))
	}
	writeXML(w, http.StatusOK, out)
}

func (a *Adapter) listObjectsV1(w http.ResponseWriter, r *http.Request, t target, _ *request) {
	prefix, delimiter, max, ok := a.listArgs(w, r, t)
	if !ok {
		return
	}
	marker := r.URL.Query().Get("marker")
	p, err := a.list(r, t.bucket, prefix, delimiter, marker, max)
	if err != nil {
		a.opts.Logger.Error("s3: list", "bucket", t.bucket, "err", err)
		writeError(w, r, errInternal)
		return
	}
	out := struct {
		XMLName        xml.Name       `xml:"ListBucketResult"`
		NS             string         `xml:"xmlns,attr"`
		Name           string         `xml:"Name"`
		Prefix         string         `xml:"Prefix"`
		Marker         string         `xml:"Marker"`
		NextMarker     string         `xml:"NextMarker,omitempty"`
		Delimiter      string         `xml:"Delimiter,omitempty"`
		MaxKeys        int            `xml:"MaxKeys"`
		IsTruncated    bool           `xml:"IsTruncated"`
		Contents       []listEntry    `xml:"Contents"`
		CommonPrefixes []commonPrefix `xml:"CommonPrefixes"`
	}{NS: xmlns, Name: t.bucket, Prefix: prefix, Marker: marker, Delimiter: delimiter, MaxKeys: max,
		IsTruncated: p.truncated, Contents: p.contents, CommonPrefixes: p.prefixes}
	if p.truncated {
		out.NextMarker = p.last
	}
	writeXML(w, http.StatusOK, out)
}
