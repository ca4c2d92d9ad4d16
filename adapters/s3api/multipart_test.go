package s3api

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/tuist/fabrik-node/internal/adaptertest"
)

// uploadParts starts an upload and sends parts; it returns the upload id
// and the completed parts.
func uploadParts(t *testing.T, c *s3.Client, bucket, key string, parts [][]byte) (string, []s3types.CompletedPart) {
	t.Helper()
	ctx := context.Background()
	mp, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("CreateMultipartUpload: %v", err)
	}
	var done []s3types.CompletedPart
	for i, p := range parts {
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: mp.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p)})
		if err != nil {
			t.Fatalf("UploadPart %d: %v", i+1, err)
		}
		if aws.ToString(out.ETag) != `"`+md5Hex(p)+`"` {
			t.Fatalf("part %d ETag %s, want its MD5", i+1, aws.ToString(out.ETag))
		}
		done = append(done, s3types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))})
	}
	return aws.ToString(mp.UploadId), done
}

func TestMultipartUpload(t *testing.T) {
	s := newServer(t, Options{})
	c := s.client(t, "k", "s")
	ctx := context.Background()
	parts := [][]byte{adaptertest.RandomBytes(t, 1<<20), adaptertest.RandomBytes(t, 1<<20), adaptertest.RandomBytes(t, 1000)}
	id, done := uploadParts(t, c, "mp", "big/object", parts)
	if n := s.stagingFiles(t); n != 3 {
		t.Fatalf("%d staging files with 3 parts uploaded, want 3", n)
	}
	lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("mp"), Key: aws.String("big/object"), UploadId: aws.String(id)})
	if err != nil || len(lp.Parts) != 3 || aws.ToInt64(lp.Parts[2].Size) != 1000 {
		t.Fatalf("ListParts: %v %+v", err, lp)
	}
	out, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("mp"), Key: aws.String("big/object"),
		UploadId: aws.String(id), MultipartUpload: &s3types.CompletedMultipartUpload{Parts: done}})
	if err != nil {
		t.Fatalf("CompleteMultipartUpload: %v", err)
	}
	sums := md5.New()
	var whole []byte
	for _, p := range parts {
		s := md5.Sum(p)
		sums.Write(s[:])
		whole = append(whole, p...)
	}
	want := fmt.Sprintf(`"%s-3"`, hex.EncodeToString(sums.Sum(nil)))
	if aws.ToString(out.ETag) != want {
		t.Fatalf("multipart ETag %s, want %s", aws.ToString(out.ETag), want)
	}
	if got := s.mustGet(t, c, "mp", "big/object"); !bytes.Equal(got, whole) {
		t.Fatalf("completed object: %d bytes, want %d", len(got), len(whole))
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("mp"), Key: aws.String("big/object")})
	if err != nil || aws.ToString(head.ETag) != want {
		t.Fatalf("HeadObject ETag: %v %s", err, aws.ToString(head.ETag))
	}
	if n := s.stagingFiles(t); n != 0 {
		t.Fatalf("%d staging files left after completion", n)
	}
	_, err = c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("mp"), Key: aws.String("big/object"), UploadId: aws.String(id)})
	if errorCode(err) != "NoSuchUpload" {
		t.Fatalf("ListParts after completion: %v, want NoSuchUpload", err)
	}
}

func TestMultipartRefusals(t *testing.T) {
	s := newServer(t, Options{MaxArtifactSize: 3000})
	c := s.client(t, "k", "s")
	ctx := context.Background()
	parts := [][]byte{adaptertest.RandomBytes(t, 1000), adaptertest.RandomBytes(t, 1000)}
	complete := func(id string, done []s3types.CompletedPart) error {
		_, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("mp"), Key: aws.String("k"),
			UploadId: aws.String(id), MultipartUpload: &s3types.CompletedMultipartUpload{Parts: done}})
		return err
	}
	id, done := uploadParts(t, c, "mp", "k", parts)

	wrong := []s3types.CompletedPart{done[0], {ETag: aws.String(`"00000000000000000000000000000000"`), PartNumber: aws.Int32(2)}}
	if err := complete(id, wrong); errorCode(err) != "InvalidPart" {
		t.Fatalf("wrong part ETag: %v, want InvalidPart", err)
	}
	missing := []s3types.CompletedPart{done[0], {ETag: done[1].ETag, PartNumber: aws.Int32(7)}}
	if err := complete(id, missing); errorCode(err) != "InvalidPart" {
		t.Fatalf("missing part: %v, want InvalidPart", err)
	}
	if err := complete(id, []s3types.CompletedPart{done[1], done[0]}); errorCode(err) != "InvalidPartOrder" {
		t.Fatalf("parts out of order: %v, want InvalidPartOrder", err)
	}
	if err := complete("nope", done); errorCode(err) != "NoSuchUpload" {
		t.Fatalf("unknown upload: %v, want NoSuchUpload", err)
	}
	_, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("mp"), Key: aws.String("k"), UploadId: aws.String(id),
		PartNumber: aws.Int32(10001), Body: bytes.NewReader([]byte("x"))})
	if errorCode(err) != "InvalidArgument" {
		t.Fatalf("part number 10001: %v, want InvalidArgument", err)
	}
	// A part over the size limit, then a whole over it.
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("mp"), Key: aws.String("k"), UploadId: aws.String(id),
		PartNumber: aws.Int32(3), Body: bytes.NewReader(adaptertest.RandomBytes(t, 3001))})
	if errorCode(err) != "EntityTooLarge" {
		t.Fatalf("part over the limit: %v, want EntityTooLarge", err)
	}
	big, bigDone := uploadParts(t, c, "mp", "k", [][]byte{adaptertest.RandomBytes(t, 2000), adaptertest.RandomBytes(t, 2000)})
	if err := complete(big, bigDone); errorCode(err) != "EntityTooLarge" {
		t.Fatalf("object over the limit: %v, want EntityTooLarge", err)
	}
	if s.objects(t, "mp") != 0 {
		t.Fatal("a refused completion stored an object")
	}
	// The refusals kept the upload: it still completes.
	if err := complete(id, done); err != nil {
		t.Fatalf("complete after refusals: %v", err)
	}

	// Abort leaves nothing; the aborted upload is gone.
	abortID, _ := uploadParts(t, c, "mp", "aborted", parts)
	if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("mp"), Key: aws.String("aborted"), UploadId: aws.String(abortID)}); err != nil {
		t.Fatalf("AbortMultipartUpload: %v", err)
	}
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("mp"), Key: aws.String("aborted"), UploadId: aws.String(abortID),
		PartNumber: aws.Int32(1), Body: bytes.NewReader([]byte("x"))})
	if errorCode(err) != "NoSuchUpload" {
		t.Fatalf("UploadPart after abort: %v, want NoSuchUpload", err)
	}
	_, err = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("mp"), Key: aws.String("aborted"), UploadId: aws.String(abortID)})
	if errorCode(err) != "NoSuchUpload" {
		t.Fatalf("second abort: %v, want NoSuchUpload", err)
	}
	if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("mp"), Key: aws.String("k"), UploadId: aws.String(big)}); err != nil {
		t.Fatal(err)
	}
	if n := s.stagingFiles(t); n != 0 {
		t.Fatalf("%d staging files left after abort", n)
	}
	if n := s.objects(t, "mp"); n != 1 {
		t.Fatalf("%d objects, want only the completed one", n)
	}
}

// An upload nobody completes or aborts is discarded after the expiry.
func TestMultipartExpiry(t *testing.T) {
	s := newServer(t, Options{MultipartExpiry: time.Hour})
	c := s.client(t, "k", "s")
	id, _ := uploadParts(t, c, "mp", "abandoned", [][]byte{adaptertest.RandomBytes(t, 1000)})
	s.clock.advance(2 * time.Hour)
	// Any multipart request sweeps.
	uploadParts(t, c, "mp", "fresh", nil)
	if n := s.stagingFiles(t); n != 0 {
		t.Fatalf("%d staging files left by an expired upload", n)
	}
	_, err := c.ListParts(context.Background(), &s3.ListPartsInput{Bucket: aws.String("mp"), Key: aws.String("abandoned"), UploadId: aws.String(id)})
	if errorCode(err) != "NoSuchUpload" {
		t.Fatalf("expired upload: %v, want NoSuchUpload", err)
	}
}
