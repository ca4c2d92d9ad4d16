package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/messages"
)

// The S3 API with auth on: the JWT is the session token, and the refusal
// matrix every adapter passes holds for reads and writes (every refusal is
// S3's AccessDenied, and a refused write stores nothing).
func TestS3SessionTokenMatrix(t *testing.T) {
	keys := authtest.New(t)
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Auth.PublicKeyFile = keys.File()
	c.BuildTools.Sccache.AccessKeyID, c.BuildTools.Sccache.SecretAccessKey = "AKIDNODE", "node-secret"
	n, _ := startLogged(t, config.RoleEdge, c)
	if n.Addr("s3") == "" {
		t.Fatal(`no "s3" listener`)
	}
	client := func(token string) *s3.Client {
		return s3.New(s3.Options{BaseEndpoint: aws.String("http://" + n.Addr("s3")), Region: "us-east-1", UsePathStyle: true, Retryer: aws.NopRetryer{},
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: "AKIDNODE", SecretAccessKey: "node-secret", SessionToken: token}, nil
			})})
	}
	ctx := context.Background()
	seed := client(keys.Token(t, authtest.Scopes("cache:write")))
	if _, err := seed.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("seed"), Body: strings.NewReader("seed")}); err != nil {
		t.Fatalf("seed PUT: %v", err)
	}
	for _, need := range []string{"cache:read", "cache:write"} {
		for i, tc := range keys.Matrix(t, need) {
			t.Run(need+"/"+tc.Name, func(t *testing.T) {
				c := client(tc.Token)
				var err error
				key := fmt.Sprintf("k%d", i)
				if need == "cache:read" {
					var out *s3.GetObjectOutput
					if out, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("seed")}); err == nil {
						b, _ := io.ReadAll(out.Body)
						out.Body.Close()
						if string(b) != "seed" {
							t.Fatalf("GET: %q", b)
						}
					}
				} else {
					_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String(key), Body: strings.NewReader("x")})
				}
				var ae smithy.APIError
				switch {
				case tc.Want == authtest.Allowed && err != nil:
					t.Fatalf("refused: %v", err)
				case tc.Want != authtest.Allowed && (!errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied"):
					t.Fatalf("%v, want AccessDenied", err)
				}
				if need == "cache:write" && tc.Want != authtest.Allowed {
					if res, _ := n.Cache().Stat(ctx, messages.Ref{Namespace: "s3/b", Key: key}); res != nil && res.Found {
						t.Fatal("a refused PUT stored the object")
					}
				}
			})
		}
	}
}
