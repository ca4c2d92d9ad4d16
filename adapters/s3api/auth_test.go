package s3api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tuist/fabrik-node/adapters"
)

func keyed() Options { return Options{AccessKeyID: testKeyID, SecretAccessKey: testSecret} }

func TestSignatureVerified(t *testing.T) {
	s := newServer(t, keyed())
	ctx := context.Background()
	good := s.client(t, testKeyID, testSecret)
	mustPut(t, good, "b", "signed", []byte("hello"))
	if got := s.mustGet(t, good, "b", "signed"); string(got) != "hello" {
		t.Fatalf("signed GET: %q", got)
	}
	// Keys that need escaping sign the path as sent.
	mustPut(t, good, "b", "dir/with space+plus=eq~tilde", []byte("odd"))
	if got := s.mustGet(t, good, "b", "dir/with space+plus=eq~tilde"); string(got) != "odd" {
		t.Fatalf("signed GET of an escaped key: %q", got)
	}

	for name, tc := range map[string]struct {
		client *s3.Client
		code   string
	}{
		"wrong secret": {s.client(t, testKeyID, "not-the-secret"), "SignatureDoesNotMatch"},
		"unknown key":  {s.client(t, "AKIDOTHER", testSecret), "InvalidAccessKeyId"},
		"anonymous":    {s.client(t, "", "", func(o *s3.Options) { o.Credentials = aws.AnonymousCredentials{} }), "AccessDenied"},
	} {
		_, err := tc.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("refused-" + name), Body: strings.NewReader("x")})
		if errorCode(err) != tc.code {
			t.Errorf("%s: PUT %v, want %s", name, err, tc.code)
		}
		var st interface{ HTTPStatusCode() int }
		if errors.As(err, &st) && st.HTTPStatusCode() != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", name, st.HTTPStatusCode())
		}
		_, err = tc.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("signed")})
		if errorCode(err) != tc.code {
			t.Errorf("%s: GET %v, want %s", name, err, tc.code)
		}
	}
	// Skew: the node's clock 20 minutes ahead of the client's.
	s.clock.advance(20 * time.Minute)
	_, err := good.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("skewed"), Body: strings.NewReader("x")})
	if errorCode(err) != "RequestTimeTooSkewed" {
		t.Fatalf("skewed PUT: %v, want RequestTimeTooSkewed", err)
	}
	s.clock.advance(-20 * time.Minute)
	if n := s.objects(t, "b"); n != 2 {
		t.Fatalf("%d objects after refused writes, want the 2 signed ones", n)
	}
}

func TestPresignedURL(t *testing.T) {
	s := newServer(t, keyed())
	ctx := context.Background()
	c := s.client(t, testKeyID, testSecret)
	mustPut(t, c, "b", "shared/file", []byte("presigned body"))
	ps := s3.NewPresignClient(c)
	req, err := ps.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("shared/file")}, s3.WithPresignExpires(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := get(req.URL); st != 200 || body != "presigned body" {
		t.Fatalf("presigned GET: %d %q", st, body)
	}
	tampered := strings.Replace(req.URL, "shared/file", "shared/other", 1)
	if st, body := get(tampered); st != 403 || !strings.Contains(body, "SignatureDoesNotMatch") {
		t.Fatalf("tampered presigned GET: %d %s", st, body)
	}
	// A presigned PUT stores; its signature covers method and key.
	put, err := ps.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("shared/up")}, s3.WithPresignExpires(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest(http.MethodPut, put.URL, strings.NewReader("uploaded"))
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || string(s.mustGet(t, c, "b", "shared/up")) != "uploaded" {
		t.Fatalf("presigned PUT: %d", resp.StatusCode)
	}
	s.clock.advance(2 * time.Minute)
	if st, body := get(req.URL); st != 403 || !strings.Contains(body, "<Code>AccessDenied</Code>") || !strings.Contains(body, "expired") {
		t.Fatalf("expired presigned GET: %d %s", st, body)
	}
}

// With no key pair, any well-formed signature passes and a malformed one
// does not.
func TestAuthOffAcceptsAnyWellFormedSignature(t *testing.T) {
	s := newServer(t, Options{})
	c := s.client(t, "whatever", "anything")
	mustPut(t, c, "b", "k", []byte("v"))
	for _, auth := range []string{"AWS4-HMAC-SHA256 Credential=broken", "Bearer xyz", "AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=nothex"} {
		req, _ := http.NewRequest(http.MethodPut, s.URL+"/b/malformed", strings.NewReader("x"))
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "AuthorizationHeaderMalformed") {
			t.Errorf("Authorization %q: %d %s", auth, resp.StatusCode, b)
		}
	}
	if n := s.objects(t, "b"); n != 1 {
		t.Fatalf("%d objects, want 1", n)
	}
}

// With auth on, the JWT is the session token: read-only tokens read.
func TestSessionTokenScopes(t *testing.T) {
	opts := keyed()
	opts.Authorize = func(ctx context.Context, token string, acc adapters.Access) (context.Context, error) {
		switch {
		case token == "rw":
			return ctx, nil
		case token == "ro" && acc == adapters.Read:
			return ctx, nil
		case token == "ro":
			return ctx, errors.New("token lacks cache:write")
		}
		return ctx, errors.New("invalid token")
	}
	s := newServer(t, opts)
	ctx := context.Background()
	withToken := func(tok string) *s3.Client {
		return s.client(t, testKeyID, testSecret, func(o *s3.Options) {
			o.Credentials = aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret, SessionToken: tok}, nil
			}))
		})
	}
	rw, ro, none, bad := withToken("rw"), withToken("ro"), withToken(""), withToken("forged")
	mustPut(t, rw, "b", "k", []byte("v"))
	if string(s.mustGet(t, ro, "b", "k")) != "v" {
		t.Fatal("read-only token cannot read")
	}
	for name, c := range map[string]*s3.Client{"read-only": ro, "no token": none, "invalid": bad} {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("w-" + name), Body: strings.NewReader("x")})
		if errorCode(err) != "AccessDenied" {
			t.Errorf("%s token PUT: %v, want AccessDenied", name, err)
		}
	}
	if _, err := none.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k")}); errorCode(err) != "AccessDenied" {
		t.Errorf("GET without token: %v, want AccessDenied", err)
	}
	// A presigned URL carries the token in its query.
	u, err := s3.NewPresignClient(ro).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("presigned GET with a read-only token: %d", resp.StatusCode)
	}
	if n := s.objects(t, "b"); n != 1 {
		t.Fatalf("%d objects, want 1", n)
	}
}

// signedPut sends a PUT signed with the test key pair whose
// x-amz-content-sha256 is the hash of declared, while the body is body.
func signedPut(t *testing.T, s *server, path string, declared, body []byte, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, s.URL+path, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	sum := sha256.Sum256(declared)
	payload := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", payload)
	creds := aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, payload, "s3", "us-east-1", time.Now(), func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestContentSHA256Checked(t *testing.T) {
	s := newServer(t, keyed())
	if st, body := signedPut(t, s, "/b/ok", []byte("body"), []byte("body"), nil); st != 200 {
		t.Fatalf("signed payload: %d %s", st, body)
	}
	st, body := signedPut(t, s, "/b/mismatch", []byte("declared"), []byte("sent something else"), nil)
	if st != 400 || !strings.Contains(body, "XAmzContentSHA256Mismatch") {
		t.Fatalf("payload hash mismatch: %d %s", st, body)
	}
	if n := s.objects(t, "b"); n != 1 {
		t.Fatalf("%d objects, want 1", n)
	}
	if n := s.stagingFiles(t); n != 0 {
		t.Fatalf("%d staging files left", n)
	}
}
