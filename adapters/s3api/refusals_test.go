package s3api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The refusals raw HTTP can provoke: each is S3 XML with S3's code and
// status, and none stores anything.
func TestRefusalsAreS3XML(t *testing.T) {
	s := newServer(t, Options{})
	c := s.client(t, "k", "s")
	mp, err := c.CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(mp.UploadId)
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("b")}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		code                     string
	}{
		{"bad bucket name", "PUT", "/bad!bucket/k", "x", nil, 400, "InvalidBucketName"},
		{"key too long", "PUT", "/b/" + strings.Repeat("k", 1025), "x", nil, 400, "InvalidArgument"},
		{"malformed presign", "GET", "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=x", "", nil, 400, "AuthorizationQueryParametersError"},
		{"presign expiry too long", "GET", "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a/20260101/us-east-1/s3/aws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=999999&X-Amz-SignedHeaders=host&X-Amz-Signature=" + strings.Repeat("a", 64), "", nil, 400, "AuthorizationQueryParametersError"},
		{"unknown payload mode", "PUT", "/b/k", "x", map[string]string{"X-Amz-Content-Sha256": "SOMETHING"}, 400, "InvalidArgument"},
		{"complete with bad XML", "POST", "/b/k?uploadId=" + id, "<CompleteMultipartUpload><Part>", nil, 400, "MalformedXML"},
		{"complete with no parts", "POST", "/b/k?uploadId=" + id, "<CompleteMultipartUpload></CompleteMultipartUpload>", nil, 400, "MalformedXML"},
		{"upload to another key's upload", "PUT", "/b/other?partNumber=1&uploadId=" + id, "x", nil, 404, "NoSuchUpload"},
		{"part number not a number", "PUT", "/b/k?partNumber=x&uploadId=" + id, "x", nil, 400, "InvalidArgument"},
		{"bad max-keys", "GET", "/b?list-type=2&max-keys=-1", "", nil, 400, "InvalidArgument"},
		{"bad continuation token", "GET", "/b?list-type=2&continuation-token=not*base64!", "", nil, 400, "InvalidArgument"},
		{"list of an unknown bucket", "GET", "/nobucket", "", nil, 404, "NoSuchBucket"},
		{"location of an unknown bucket", "GET", "/nobucket?location", "", nil, 404, "NoSuchBucket"},
		{"missing key", "GET", "/b/missing", "", nil, 404, "NoSuchKey"},
		{"aws-chunked garbage", "PUT", "/b/chunked", "zz;chunk-signature=00\r\n", map[string]string{"X-Amz-Content-Sha256": streamingSigned, "X-Amz-Decoded-Content-Length": "5"}, 400, "IncompleteBody"},
	} {
		req, _ := http.NewRequest(tc.method, s.URL+tc.path, strings.NewReader(tc.body))
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), "<Code>"+tc.code+"</Code>") || resp.Header.Get("Content-Type") != "application/xml" {
			t.Errorf("%s: %d %s, want %d %s", tc.name, resp.StatusCode, b, tc.status, tc.code)
		}
	}
	// A body cut short is IncompleteBody.
	conn, err := net.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "PUT /b/short HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\nonly ten b", s.Listener.Addr())
	conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(b), "IncompleteBody") {
		t.Errorf("short body: %d %s", resp.StatusCode, b)
	}
	if n := s.objects(t, "b"); n != 0 {
		t.Fatalf("%d objects stored by refused requests", n)
	}
}

func TestBucketLocationAndUploadsListing(t *testing.T) {
	s := newServer(t, Options{})
	c := s.client(t, "k", "s")
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("loc")}); err != nil {
		t.Fatal(err)
	}
	loc, err := c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("loc")})
	if err != nil || loc.LocationConstraint != "" {
		t.Fatalf("GetBucketLocation: %v %q", err, loc.LocationConstraint)
	}
	id, _ := uploadParts(t, c, "loc", "in/progress", nil)
	ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("loc")})
	if err != nil || len(ups.Uploads) != 1 || aws.ToString(ups.Uploads[0].UploadId) != id || aws.ToString(ups.Uploads[0].Key) != "in/progress" {
		t.Fatalf("ListMultipartUploads: %v %+v", err, ups)
	}
}
