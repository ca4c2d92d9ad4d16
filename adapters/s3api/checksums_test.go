package s3api

import (
	"context"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/internal/adaptertest"
	"github.com/tuist/fabrik-node/internal/cachetest"
)

func rawPut(t *testing.T, url string, body string, header map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestCRC64NVME(t *testing.T) {
	// The CRC-64/NVME check value.
	if got := crc64.Checksum([]byte("123456789"), crc64NVME); got != 0xae8b14860a799888 {
		t.Fatalf("crc64nvme(123456789) = %x", got)
	}
}

func TestWrongDigestsAreBadDigest(t *testing.T) {
	s := newServer(t, Options{})
	wrong := base64.StdEncoding.EncodeToString(make([]byte, 16))
	crc := make([]byte, 4)
	for name, h := range map[string]map[string]string{
		"Content-MD5":           {"Content-MD5": wrong},
		"x-amz-checksum-crc32":  {"x-amz-checksum-crc32": base64.StdEncoding.EncodeToString(crc)},
		"x-amz-checksum-crc32c": {"x-amz-checksum-crc32c": base64.StdEncoding.EncodeToString(crc)},
		"x-amz-checksum-sha256": {"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(make([]byte, 32))},
	} {
		st, body := rawPut(t, s.URL+"/b/"+name, "some body", h)
		if st != 400 || !strings.Contains(body, "<Code>BadDigest</Code>") {
			t.Errorf("%s wrong: %d %s", name, st, body)
		}
	}
	if st, body := rawPut(t, s.URL+"/b/garbled", "x", map[string]string{"Content-MD5": "not base64!"}); st != 400 || !strings.Contains(body, "InvalidDigest") {
		t.Errorf("garbled Content-MD5: %d %s", st, body)
	}
	if st, body := rawPut(t, s.URL+"/b/sha", "x", map[string]string{"X-Amz-Content-Sha256": strings.Repeat("0", 64)}); st != 400 || !strings.Contains(body, "XAmzContentSHA256Mismatch") {
		t.Errorf("wrong x-amz-content-sha256: %d %s", st, body)
	}
	good := crc32.ChecksumIEEE([]byte("some body"))
	st, body := rawPut(t, s.URL+"/b/right", "some body", map[string]string{
		"x-amz-checksum-crc32": base64.StdEncoding.EncodeToString([]byte{byte(good >> 24), byte(good >> 16), byte(good >> 8), byte(good)})})
	if st != 200 {
		t.Fatalf("right crc32: %d %s", st, body)
	}
	if n := s.objects(t, "b"); n != 1 {
		t.Fatalf("%d objects stored, want only the one with a right checksum", n)
	}
	if n := s.stagingFiles(t); n != 0 {
		t.Fatalf("%d staging files left", n)
	}
}

// The SDK's flexible checksums: over plain HTTP in headers, over TLS as
// aws-chunked trailers (STREAMING-UNSIGNED-PAYLOAD-TRAILER).
func TestSDKChecksums(t *testing.T) {
	cache := cachetest.New(t)
	api := New(cache, Options{})
	mux := http.NewServeMux()
	api.Routes(mux)
	for _, tls := range []bool{false, true} {
		var srv *httptest.Server
		if tls {
			srv = httptest.NewTLSServer(mux)
		} else {
			srv = httptest.NewServer(mux)
		}
		defer srv.Close()
		c := s3.New(s3.Options{BaseEndpoint: aws.String(srv.URL), Region: "us-east-1", UsePathStyle: true, HTTPClient: srv.Client(),
			Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""), Retryer: aws.NopRetryer{}})
		for _, alg := range []s3types.ChecksumAlgorithm{s3types.ChecksumAlgorithmCrc32, s3types.ChecksumAlgorithmCrc32c, s3types.ChecksumAlgorithmSha256, s3types.ChecksumAlgorithmCrc64nvme} {
			body := adaptertest.RandomBytes(t, 200_000)
			key := fmt.Sprintf("%v-%s", tls, alg)
			_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String(key),
				Body: strings.NewReader(string(body)), ChecksumAlgorithm: alg})
			if err != nil {
				t.Fatalf("tls=%v %s: %v", tls, alg, err)
			}
			res, err := cache.Stat(context.Background(), objectRef(target{bucket: "b", key: key}))
			if err != nil || !res.Found || res.Meta.Size != int64(len(body)) || res.Meta.Attrs[attrETag] != md5Hex(body) {
				t.Fatalf("tls=%v %s: stored %+v", tls, alg, res)
			}
		}
	}
}

// Every outcome of the shared write path answers with writeAnswers' status
// and stores nothing on refusal.
func TestUploadOutcomes(t *testing.T) {
	cache := cachetest.New(t)
	adaptertest.Outcomes{
		Table: writeAnswers,
		Cache: cache,
		Serve: func(c adapters.Cache, max int64) http.Handler {
			mux := http.NewServeMux()
			api := New(c, Options{MaxArtifactSize: max})
			// The bucket exists already, so the only write is the object's.
			api.buckets.Store("outcomes", true)
			api.Routes(mux)
			return mux
		},
		Path: func(i int) string { return fmt.Sprintf("/outcomes/key-%d", i) },
	}.Run(t)
}
