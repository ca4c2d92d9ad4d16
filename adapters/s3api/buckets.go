package s3api

import (
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
)

// Buckets and objects in the key index: each bucket is a namespace of its
// own (objects of "b" are keys of "s3/b"), and the namespace "s3" holds one
// empty marker per bucket, so ListBuckets and HeadBucket have something to
// read. Markers are ordinary entries: they flow to the upstreams, so an
// edge sharing a regional knows the bucket too.
const (
	bucketsNamespace = "s3"
	objectsPrefix    = "s3/"
	xmlns            = "http://s3.amazonaws.com/doc/2006-03-01/"
)

func objectRef(t target) messages.Ref {
	return messages.Ref{Namespace: objectsPrefix + t.bucket, Key: t.key}
}

func bucketRef(bucket string) messages.Ref {
	return messages.Ref{Namespace: bucketsNamespace, Key: bucket}
}

// bucketExists: a marker (here or upstream) or at least one object here.
// Reads of objects never ask: S3 clients treat NoSuchBucket and NoSuchKey
// alike on GET, and sccache uses a bucket nobody created.
func (a *Adapter) bucketExists(ctx context.Context, bucket string) bool {
	if _, ok := a.buckets.Load(bucket); ok {
		return true
	}
	if res, err := a.cache.Stat(ctx, bucketRef(bucket)); err == nil && res.Found {
		a.buckets.Store(bucket, true)
		return true
	}
	found := false
	if a.lister != nil {
		_ = a.lister.List(ctx, objectsPrefix+bucket, "", "", func(string, messages.Meta) bool { found = true; return false })
	}
	return found
}

// rememberBucket writes bucket's marker unless it is known to exist. A PUT
// into a bucket nobody created creates it (after the object is stored, so
// a refused upload stores nothing): sccache expects its bucket to exist.
func (a *Adapter) rememberBucket(ctx context.Context, bucket string) error {
	if _, ok := a.buckets.Load(bucket); ok {
		return nil
	}
	if res, err := a.cache.Stat(ctx, bucketRef(bucket)); err == nil && res.Found {
		a.buckets.Store(bucket, true)
		return nil
	}
	meta := messages.Meta{BuildSystem: BuildSystem, Attrs: map[string]string{"created": a.opts.Now().UTC().Format(time.RFC3339)}}
	res := adapters.Store(ctx, a.cache, bucketRef(bucket), meta, adapters.Upload{Body: strings.NewReader(""), Length: 0})
	if res.Outcome != adapters.Stored {
		return res.Err
	}
	a.buckets.Store(bucket, true)
	return nil
}

func (a *Adapter) createBucket(w http.ResponseWriter, r *http.Request, t target, _ *request) {
	// The body (CreateBucketConfiguration, a region) has nothing for us.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
	if err := a.rememberBucket(r.Context(), t.bucket); err != nil {
		a.opts.Logger.Error("s3: create bucket", "bucket", t.bucket, "err", err)
		writeError(w, r, errInternal)
		return
	}
	w.Header().Set("Location", "/"+t.bucket)
	w.WriteHeader(http.StatusOK)
}

func (a *Adapter) headBucket(w http.ResponseWriter, r *http.Request, t target, _ *request) {
	if !a.bucketExists(r.Context(), t.bucket) {
		writeError(w, r, errNoSuchBucket)
		return
	}
	w.Header().Set("x-amz-bucket-region", "us-east-1")
	w.WriteHeader(http.StatusOK)
}

func (a *Adapter) bucketLocation(w http.ResponseWriter, r *http.Request, t target, _ *request) {
	if !a.bucketExists(r.Context(), t.bucket) {
		writeError(w, r, errNoSuchBucket)
		return
	}
	// Empty is us-east-1, the region every client accepts without redirecting.
	writeXML(w, http.StatusOK, struct {
		XMLName xml.Name `xml:"LocationConstraint"`
		NS      string   `xml:"xmlns,attr"`
	}{NS: xmlns})
}

func (a *Adapter) deleteBucket(w http.ResponseWriter, r *http.Request, t target, _ *request) {
	if !a.bucketExists(r.Context(), t.bucket) {
		writeError(w, r, errNoSuchBucket)
		return
	}
	empty := true
	if a.lister != nil {
		_ = a.lister.List(r.Context(), objectsPrefix+t.bucket, "", "", func(string, messages.Meta) bool { empty = false; return false })
	}
	if !empty {
		writeError(w, r, errBucketNotEmpty)
		return
	}
	if err := a.cache.Delete(r.Context(), bucketRef(t.bucket)); err != nil {
		a.opts.Logger.Error("s3: delete bucket", "bucket", t.bucket, "err", err)
		writeError(w, r, errInternal)
		return
	}
	a.buckets.Delete(t.bucket)
	w.WriteHeader(http.StatusNoContent)
}

type bucketEntry struct {
	Name         string `xml:"Name"`
	CreationDate string `xml:"CreationDate"`
}

func (a *Adapter) listBuckets(w http.ResponseWriter, r *http.Request, _ target, _ *request) {
	if a.lister == nil {
		writeError(w, r, errNotImplemented.with("this cache cannot list"))
		return
	}
	var out struct {
		XMLName xml.Name      `xml:"ListAllMyBucketsResult"`
		NS      string        `xml:"xmlns,attr"`
		Owner   owner         `xml:"Owner"`
		Buckets []bucketEntry `xml:"Buckets>Bucket"`
	}
	out.NS, out.Owner = xmlns, theOwner
	err := a.lister.List(r.Context(), bucketsNamespace, "", "", func(key string, m messages.Meta) bool {
		created := m.CreatedAt
		if t, err := time.Parse(time.RFC3339, m.Attrs["created"]); err == nil {
			created = t
		}
		out.Buckets = append(out.Buckets, bucketEntry{Name: key, CreationDate: s3Time(created)})
		return true
	})
	if err != nil {
		a.opts.Logger.Error("s3: list buckets", "err", err)
		writeError(w, r, errInternal)
		return
	}
	writeXML(w, http.StatusOK, out)
}

type owner struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

var theOwner = owner{ID: "fabrik", DisplayName: "fabrik"}

// s3Time is the timestamp format of S3's XML documents.
func s3Time(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
