package s3api

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestListObjects(t *testing.T) {
	s := newServer(t, Options{})
	c := s.client(t, "k", "s")
	ctx := context.Background()
	var keys []string
	for _, dir := range []string{"a", "b", "c"} {
		for i := range 3 {
			keys = append(keys, fmt.Sprintf("p/%s/%d", dir, i))
		}
	}
	keys = append(keys, "p/top", "q/other")
	for _, k := range keys {
		mustPut(t, c, "list", k, []byte(k))
	}

	// Every key, two a page through continuation tokens.
	var got []string
	pages := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("list"), MaxKeys: aws.Int32(2)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListObjectsV2: %v", err)
		}
		pages++
		for _, o := range out.Contents {
			got = append(got, aws.ToString(o.Key))
			if aws.ToInt64(o.Size) != int64(len(aws.ToString(o.Key))) || aws.ToString(o.ETag) != `"`+md5Hex([]byte(aws.ToString(o.Key)))+`"` {
				t.Fatalf("entry %s: size %d etag %s", aws.ToString(o.Key), aws.ToInt64(o.Size), aws.ToString(o.ETag))
			}
		}
	}
	slices.Sort(keys)
	if !slices.Equal(got, keys) || pages != 6 {
		t.Fatalf("paged listing: %d pages %v, want 6 pages %v", pages, got, keys)
	}

	// Prefix and delimiter: p/ holds three folders and one object.
	var prefixes, objects []string
	p = s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("list"), Prefix: aws.String("p/"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(1)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListObjectsV2 delimiter: %v", err)
		}
		for _, cp := range out.CommonPrefixes {
			prefixes = append(prefixes, aws.ToString(cp.Prefix))
		}
		for _, o := range out.Contents {
			objects = append(objects, aws.ToString(o.Key))
		}
	}
	if !slices.Equal(prefixes, []string{"p/a/", "p/b/", "p/c/"}) || !slices.Equal(objects, []string{"p/top"}) {
		t.Fatalf("delimited listing: prefixes %v objects %v", prefixes, objects)
	}

	// ListObjects v1 with markers (s3cmd).
	got = nil
	marker := ""
	for {
		out, err := c.ListObjects(ctx, &s3.ListObjectsInput{Bucket: aws.String("list"), Prefix: aws.String("p/b/"), Marker: aws.String(marker), MaxKeys: aws.Int32(2)})
		if err != nil {
			t.Fatalf("ListObjects: %v", err)
		}
		for _, o := range out.Contents {
			got = append(got, aws.ToString(o.Key))
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		marker = aws.ToString(out.NextMarker)
	}
	if !slices.Equal(got, []string{"p/b/0", "p/b/1", "p/b/2"}) {
		t.Fatalf("ListObjects v1: %v", got)
	}

	// start-after, and max-keys 0.
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("list"), StartAfter: aws.String("p/c/2")})
	if err != nil || len(out.Contents) != 2 || aws.ToString(out.Contents[0].Key) != "p/top" {
		t.Fatalf("start-after: %v %v", err, out)
	}

	mustPut(t, c, "other", "x", []byte("x"))
	buckets, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatalf("ListBuckets: %v", err)
	}
	var names []string
	for _, b := range buckets.Buckets {
		names = append(names, aws.ToString(b.Name))
	}
	if !slices.Equal(names, []string{"list", "other"}) {
		t.Fatalf("ListBuckets: %v", names)
	}

	// DeleteObjects (aws s3 rm --recursive).
	del, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("list"), Delete: &s3types.Delete{
		Objects: []s3types.ObjectIdentifier{{Key: aws.String("p/a/0")}, {Key: aws.String("p/a/1")}}}})
	if err != nil || len(del.Deleted) != 2 {
		t.Fatalf("DeleteObjects: %v %v", err, del)
	}
	if n := s.objects(t, "list"); n != len(keys)-2 {
		t.Fatalf("%d objects after DeleteObjects, want %d", n, len(keys)-2)
	}
}
