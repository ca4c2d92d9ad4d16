package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

const (
	// multipartThreshold: bodies above it go up in parts, so one upload
	// never needs the whole artifact and a failed part is retried alone.
	multipartThreshold = 64 << 20
	// partSize is the memory one multipart upload holds (S3's minimum is 5 MiB).
	partSize = 16 << 20
)

// partBuffers recycles part buffers between uploads: the upload pool runs a
// few uploads per upstream at all times.
var partBuffers = sync.Pool{New: func() any { b := make([]byte, partSize); return &b }}

// unsignedPayload sends bodies as UNSIGNED-PAYLOAD. Signing the payload over
// plain HTTP would make the SDK read every body twice (once to hash it for the
// signature) or refuse non-seekable bodies; integrity comes from the
// x-amz-checksum-sha256 we send instead, which the server verifies.
var unsignedPayload = s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)

// Put stores the blob unless S3 already holds it, then, for a key ref, the key
// entry (carrying the blob when it is small, keyEntry.Data). body is read at
// most once; an *os.File (any io.ReadSeeker) lets the SDK rewind and retry a
// failed attempt. A large blob S3 already holds is not read at all; a small
// one of a key ref is read (and verified) first, for its entry.
func (t *Tier) Put(ctx context.Context, ref messages.Ref, meta messages.Meta, body io.Reader) error {
	if err := validate(ref); err != nil {
		return fmt.Errorf("s3 tier %q: put: %w", t.name, err)
	}
	if !hexHash.MatchString(meta.Hash) || meta.Size < 0 {
		return fmt.Errorf("s3 tier %q: put %s: %w: hash %q size %d", t.name, ref, tier.ErrInvalid, meta.Hash, meta.Size)
	}
	if ref.IsCAS() && ref.Key != meta.Hash {
		return fmt.Errorf("s3 tier %q: put %s: %w: content hash is %s", t.name, ref, tier.ErrInvalid, meta.Hash)
	}
	var inline []byte
	if !ref.IsCAS() && meta.Size <= inlineMax {
		var err error
		if inline, err = readSmall(body, meta); err != nil {
			return fmt.Errorf("s3 tier %q: put %s: %w", t.name, ref, err)
		}
		body = bytes.NewReader(inline)
	}
	w := t.watch(ctx)
	defer w.stop()

	size, err := t.blobSize(w, meta.Hash)
	if err != nil {
		return err
	}
	if size == meta.Size {
		slog.Debug("s3 blob already stored, upload skipped", "tier", t.name, "hash", meta.Hash)
	} else if err := t.putBlob(w, meta, body); err != nil {
		return err
	}
	if ref.IsCAS() {
		return nil
	}
	return t.putEntry(w, ref, meta, inline)
}

// readSmall reads a small blob whole and checks it against meta: a key
// entry never carries bytes that are not the blob.
func readSmall(body io.Reader, meta messages.Meta) ([]byte, error) {
	b := make([]byte, meta.Size)
	if _, err := io.ReadFull(body, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: body shorter than %d bytes", tier.ErrInvalid, meta.Size)
		}
		return nil, fmt.Errorf("read body: %w", err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != meta.Hash {
		return nil, fmt.Errorf("%w: content hashes to %s", tier.ErrInvalid, hex.EncodeToString(sum[:]))
	}
	return b, nil
}

func (t *Tier) putBlob(w *watchdog, meta messages.Meta, body io.Reader) error {
	if meta.Size > multipartThreshold {
		return t.putMultipart(w, meta, body)
	}
	key := t.blobKey(meta.Hash)
	sum, _ := hex.DecodeString(meta.Hash) // validated by the caller
	wrapped, ub := wrapUpload(body, meta.Size, w)
	_, err := t.client.PutObject(w.ctx, &s3.PutObjectInput{
		Bucket:         aws.String(t.bucket),
		Key:            aws.String(key),
		Body:           wrapped,
		ContentLength:  aws.Int64(meta.Size),
		ContentType:    aws.String("application/octet-stream"),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum)),
	}, unsignedPayload)
	if err != nil {
		if ub.short {
			return fmt.Errorf("s3 tier %q: put %s: %w: body shorter than %d bytes", t.name, key, tier.ErrInvalid, meta.Size)
		}
		return t.fail(w, "put", key, err)
	}
	return nil
}

// putMultipart streams body up in partSize parts through one reused buffer,
// hashing as it goes, and completes the upload only when the content matches
// meta.Hash: no corrupt blob ever appears under a content address.
func (t *Tier) putMultipart(w *watchdog, meta messages.Meta, body io.Reader) (err error) {
	key := t.blobKey(meta.Hash)
	created, err := t.client.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{
		Bucket:      aws.String(t.bucket),
		Key:         aws.String(key),
		ContentType: aws.String("application/octet-stream"),
	})
	if err != nil {
		return t.fail(w, "create multipart upload", key, err)
	}
	uploadID := created.UploadId
	defer func() {
		if err == nil {
			return
		}
		// Parts of an abandoned upload are billed until aborted; abort even if
		// the caller's context is gone.
		actx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), t.timeout)
		defer cancel()
		if _, aerr := t.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(t.bucket), Key: aws.String(key), UploadId: uploadID,
		}); aerr != nil {
			slog.Warn("s3 abort multipart upload failed", "tier", t.name, "key", key, "err", aerr)
		}
	}()

	bufp := partBuffers.Get().(*[]byte)
	defer partBuffers.Put(bufp)
	buf := *bufp
	h := sha256.New()
	var parts []types.CompletedPart
	for n, remaining := int32(1), meta.Size; remaining > 0; n++ {
		part := buf[:min(int64(len(buf)), remaining)]
		if _, err := io.ReadFull(body, part); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("s3 tier %q: put %s: %w: body shorter than %d bytes", t.name, key, tier.ErrInvalid, meta.Size)
			}
			return fmt.Errorf("s3 tier %q: put %s: read body: %w", t.name, key, err)
		}
		w.kick()
		h.Write(part)
		partBody, _ := wrapUpload(bytes.NewReader(part), int64(len(part)), w)
		out, err := t.client.UploadPart(w.ctx, &s3.UploadPartInput{
			Bucket:        aws.String(t.bucket),
			Key:           aws.String(key),
			UploadId:      uploadID,
			PartNumber:    aws.Int32(n),
			Body:          partBody,
			ContentLength: aws.Int64(int64(len(part))),
		}, unsignedPayload)
		if err != nil {
			return t.fail(w, fmt.Sprintf("upload part %d of", n), key, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
		remaining -= int64(len(part))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != meta.Hash {
		return fmt.Errorf("s3 tier %q: put %s: %w: content hashes to %s", t.name, key, tier.ErrInvalid, got)
	}
	if _, err := t.client.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(t.bucket),
		Key:             aws.String(key),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}); err != nil {
		return t.fail(w, "complete multipart upload", key, err)
	}
	return nil
}

// putEntry writes the key entry, carrying inline (the blob, when small). It
// runs after the blob is stored.
func (t *Tier) putEntry(w *watchdog, ref messages.Ref, meta messages.Meta, inline []byte) error {
	created := meta.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	data, err := json.Marshal(keyEntry{
		Hash: meta.Hash, Size: meta.Size, BuildSystem: meta.BuildSystem, Attrs: meta.Attrs, Created: created.UTC(), Data: inline,
	})
	if err != nil {
		return fmt.Errorf("s3 tier %q: encode entry for %s: %w", t.name, ref, err)
	}
	key := t.entryKey(ref)
	sum := sha256.Sum256(data)
	if _, err := t.client.PutObject(w.ctx, &s3.PutObjectInput{
		Bucket:         aws.String(t.bucket),
		Key:            aws.String(key),
		Body:           bytes.NewReader(data),
		ContentLength:  aws.Int64(int64(len(data))),
		ContentType:    aws.String("application/json"),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	}, unsignedPayload); err != nil {
		return t.fail(w, "put entry", key, err)
	}
	return nil
}

// Delete removes ref's own object: the key entry, or for a CAS ref the blob.
// A key ref's blob stays, because other keys may share it.
func (t *Tier) Delete(ctx context.Context, ref messages.Ref) error {
	if err := validate(ref); err != nil {
		return fmt.Errorf("s3 tier %q: delete: %w", t.name, err)
	}
	w := t.watch(ctx)
	defer w.stop()
	key := t.objectKey(ref)
	if _, err := t.client.DeleteObject(w.ctx, &s3.DeleteObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(key)}); err != nil {
		if isNotFound(err) && w.cause() == nil {
			return nil
		}
		return t.fail(w, "delete", key, err)
	}
	return nil
}
