package s3api

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

const fuzzSig = "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"

// FuzzHeaderAuth feeds Authorization, X-Amz-Date and Date headers: an
// accepted SigV4 header has a five-part credential for the s3 service, a
// 64-digit hex signature and signed headers, and rebuilding the canonical
// request from it (what verify does next) never panics.
func FuzzHeaderAuth(f *testing.F) {
	good := "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + fuzzSig
	f.Add(good, "20240101T000000Z", "")
	f.Add(good, "", "Mon, 01 Jan 2024 00:00:00 GMT")
	f.Add("AWS4-HMAC-SHA256 Credential=/20240101//s3/aws4_request,SignedHeaders=,Signature=zz", "x", "")
	f.Add("AWS AKID:sig", "", "")
	f.Add("AWS4-HMAC-SHA256 ", "", "")
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/s3/aws4_request/extra,SignedHeaders=;;;,Signature="+fuzzSig, "20240101T000000Z", "")
	f.Fuzz(func(t *testing.T, authz, amzDate, date string) {
		r, err := http.NewRequest(http.MethodGet, "http://127.0.0.1/bucket/key", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.RequestURI = "/bucket/key"
		r.Header.Set("Authorization", authz)
		r.Header.Set("X-Amz-Date", amzDate)
		r.Header.Set("Date", date)
		s, aerr := parseSigV4(r)
		if aerr != nil {
			return
		}
		if s == nil {
			if authz != "" {
				t.Fatalf("Authorization %q gave neither a signature nor an error", authz)
			}
			return
		}
		checkSig(t, s)
		if !strings.HasPrefix(authz, sigV4Algorithm+" ") {
			t.Fatalf("accepted a non-SigV4 header %q", authz)
		}
		_, _ = expectedSignature(r, s, aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}, unsignedPayload)
	})
}

// FuzzQueryAuth feeds raw query strings (presigned URLs): an accepted one
// names SigV4, has a valid credential and signature, and an expiry within
// the presign bound.
func FuzzQueryAuth(f *testing.F) {
	f.Add("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=" + fuzzSig)
	f.Add("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=0")
	f.Add("X-Amz-Signature=abc")
	f.Add("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a/20240101/r/s3/aws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=99999999999&X-Amz-SignedHeaders=host&X-Amz-Signature=" + fuzzSig)
	f.Fuzz(func(t *testing.T, rawQuery string) {
		r := &http.Request{Method: http.MethodGet, Host: "127.0.0.1", RequestURI: "/b/k?" + rawQuery, URL: &url.URL{Path: "/b/k", RawQuery: rawQuery}, Header: http.Header{}}
		s, aerr := parseSigV4(r)
		if aerr != nil || s == nil {
			return
		}
		checkSig(t, s)
		if !s.presigned || s.expires <= 0 || s.expires > maxPresignExpiry {
			t.Fatalf("query %q accepted with expiry %v", rawQuery, s.expires)
		}
		_, _ = expectedSignature(r, s, aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}, "")
	})
}

func checkSig(t *testing.T, s *sigV4) {
	t.Helper()
	if s.accessKey == "" || len(s.date) != 8 || s.region == "" || s.service != "s3" || !validSignature(s.signature) || len(s.signedHeaders) == 0 {
		t.Fatalf("accepted a malformed signature %+v", s)
	}
}

// FuzzRange: a partial answer lies inside the object; a header that is not
// a single "bytes=" range is answered with the whole object.
func FuzzRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=5-", "bytes=-3", "bytes=0-1,2-3", "bytes=9-1", "bytes=-0", "bytes=x-", "items=0-1", "", "bytes=-9223372036854775808", "bytes=0-9223372036854775807"} {
		f.Add(s, int64(10))
	}
	f.Add("bytes=-1", int64(0))
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		start, length, partial, ok := parseRange(h, size)
		switch {
		case !ok:
			if !strings.HasPrefix(h, "bytes=") {
				t.Fatalf("parseRange(%q) unsatisfiable without a bytes= prefix", h)
			}
		case partial:
			if start < 0 || length <= 0 || start+length > size || start+length < start {
				t.Fatalf("parseRange(%q, %d) = start %d length %d outside the object", h, size, start, length)
			}
		default:
			if start != 0 || length != size {
				t.Fatalf("parseRange(%q, %d) whole answer is %d+%d", h, size, start, length)
			}
		}
	})
}
