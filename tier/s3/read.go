package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tuist/fabrik-node/messages"
)

// keyEntry is the object stored at keys/<namespace>/<key>: what a tool key
// resolves to. It is JSON so that operators can read it with any S3 client.
type keyEntry struct {
	Hash        string            `json:"hash"`
	Size        int64             `json:"size"`
	BuildSystem string            `json:"build_system,omitempty"`
	Attrs       map[string]string `json:"attrs,omitempty"`
	Created     time.Time         `json:"created"`
	// Data is the blob itself (base64 in the JSON) when it is at most
	// inlineMax bytes: reading such a key costs one request instead of
	// two. The blob is stored under cas/ all the same. Entries without it
	// (larger blobs, entries written before it existed) send readers to
	// the blob.
	Data []byte `json:"data,omitempty"`
}

// inlineMax is the largest blob a key entry carries: build tools' small
// outputs, where the second request would double a miss's latency, at a
// third more of the blob's size in the entry.
const inlineMax = 64 << 10

// inline returns the blob the entry carries, when it has one that matches
// its hash and size (an empty blob needs no data to be carried).
func (e keyEntry) inline() ([]byte, bool) {
	if int64(len(e.Data)) != e.Size {
		return nil, false
	}
	sum := sha256.Sum256(e.Data)
	return e.Data, hex.EncodeToString(sum[:]) == e.Hash
}

// maxEntrySize bounds what we read of a key entry: a corrupt or hostile
// object must not make us buffer megabytes.
const maxEntrySize = 1 << 20

func (e keyEntry) meta() messages.Meta {
	return messages.Meta{Hash: e.Hash, Size: e.Size, BuildSystem: e.BuildSystem, Attrs: e.Attrs, CreatedAt: e.Created}
}

// Get opens an artifact and streams it from S3; nothing is buffered but a
// blob its key entry carries. A key ref costs two requests, its entry and
// then the blob, or one when the entry carries the blob (keyEntry.Data).
func (t *Tier) Get(ctx context.Context, ref messages.Ref) (messages.Meta, io.ReadCloser, error) {
	if err := validate(ref); err != nil {
		return messages.Meta{}, nil, fmt.Errorf("s3 tier %q: get: %w", t.name, err)
	}
	w := t.watch(ctx)
	meta := messages.Meta{Hash: ref.Key}
	if !ref.IsCAS() {
		entry, err := t.readEntry(w, ref)
		if err != nil {
			w.stop()
			return messages.Meta{}, nil, err
		}
		meta = entry.meta()
		if data, ok := entry.inline(); ok {
			w.stop()
			return meta, io.NopCloser(bytes.NewReader(data)), nil
		}
	}
	key := t.blobKey(meta.Hash)
	out, err := t.client.GetObject(w.ctx, &s3.GetObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(key)}, readOnce)
	if err != nil {
		w.stop()
		return messages.Meta{}, nil, t.fail(w, "get", key, err)
	}
	w.pause()
	size := aws.ToInt64(out.ContentLength)
	if !ref.IsCAS() && size != meta.Size {
		w.stop()
		out.Body.Close()
		return messages.Meta{}, nil, fmt.Errorf("s3 tier %q: get %s: blob has %d bytes, key entry says %d", t.name, key, size, meta.Size)
	}
	meta.Size = size
	if ref.IsCAS() {
		meta.CreatedAt = aws.ToTime(out.LastModified)
	}
	body := &downloadBody{body: out.Body, w: w}
	body.fail = func(err error) error { return t.fail(w, "read", key, err) }
	return meta, body, nil
}

// Stat reports an artifact's metadata. For a key ref it also checks that the
// blob is still there, so Stat never promises what Get cannot deliver
// (unless the entry carries the blob: then Get needs nothing else).
func (t *Tier) Stat(ctx context.Context, ref messages.Ref) (messages.Meta, error) {
	if err := validate(ref); err != nil {
		return messages.Meta{}, fmt.Errorf("s3 tier %q: stat: %w", t.name, err)
	}
	w := t.watch(ctx)
	defer w.stop()
	meta := messages.Meta{Hash: ref.Key}
	if !ref.IsCAS() {
		entry, err := t.readEntry(w, ref)
		if err != nil {
			return messages.Meta{}, err
		}
		meta = entry.meta()
		if _, ok := entry.inline(); ok {
			return meta, nil
		}
	}
	key := t.blobKey(meta.Hash)
	out, err := t.client.HeadObject(w.ctx, &s3.HeadObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(key)}, readOnce)
	if err != nil {
		return messages.Meta{}, t.fail(w, "stat", key, err)
	}
	size := aws.ToInt64(out.ContentLength)
	if !ref.IsCAS() && size != meta.Size {
		return messages.Meta{}, fmt.Errorf("s3 tier %q: stat %s: blob has %d bytes, key entry says %d", t.name, key, size, meta.Size)
	}
	meta.Size = size
	if ref.IsCAS() {
		meta.CreatedAt = aws.ToTime(out.LastModified)
	}
	return meta, nil
}

// readEntry fetches and decodes a key entry.
func (t *Tier) readEntry(w *watchdog, ref messages.Ref) (keyEntry, error) {
	key := t.entryKey(ref)
	out, err := t.client.GetObject(w.ctx, &s3.GetObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(key)}, readOnce)
	if err != nil {
		return keyEntry{}, t.fail(w, "get entry", key, err)
	}
	defer out.Body.Close()
	var e keyEntry
	if err := json.NewDecoder(io.LimitReader(out.Body, maxEntrySize)).Decode(&e); err != nil {
		return keyEntry{}, t.fail(w, "decode entry", key, err)
	}
	if !hexHash.MatchString(e.Hash) || e.Size < 0 {
		return keyEntry{}, fmt.Errorf("s3 tier %q: entry %s: bad hash %q or size %d", t.name, key, e.Hash, e.Size)
	}
	return e, nil
}

// blobSize returns the stored size of a blob, or -1 when it is missing.
func (t *Tier) blobSize(w *watchdog, hash string) (int64, error) {
	key := t.blobKey(hash)
	out, err := t.client.HeadObject(w.ctx, &s3.HeadObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(key)}, readOnce)
	if err != nil {
		if isNotFound(err) && w.cause() == nil {
			return -1, nil
		}
		return 0, t.fail(w, "head", key, err)
	}
	return aws.ToInt64(out.ContentLength), nil
}

// readOnce limits reads to one quick retry: a read that fails is a miss for
// the router, which moves on, and its circuit breaker (not the SDK's three
// attempts with backoff of up to 20 s) decides when to stop asking a dead
// S3. The one retry absorbs a transient 503 (a server still starting).
// Uploads keep the SDK's retries; the upload pool adds its own on top.
func readOnce(o *s3.Options) {
	o.RetryMaxAttempts = 2
	o.Retryer = retry.AddWithMaxBackoffDelay(o.Retryer, 100*time.Millisecond)
}
