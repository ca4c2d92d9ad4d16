// Package s3 is the S3 tier: artifacts in an S3 (or S3-compatible) bucket
// under a tenant prefix, so that several customers can share one bucket.
//
// Layout under the prefix:
//
//	cas/<hash[0:2]>/<hash>    the blob, named by the SHA-256 of its content
//	keys/<namespace>/<key>    a small JSON key entry pointing at a blob (and
//	                          carrying it when it is at most 64 KiB, so a
//	                          key read is one request)
//
// Blobs are content-addressed, so two keys with the same content share one
// object and a blob that already exists is never uploaded again. A key entry
// is written only after its blob, so a reader never sees a key whose blob was
// never stored.
package s3

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	fabrikconfig "github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// DefaultTimeout bounds each wait on S3 when Options.Timeout is zero; it is
// the config's upstream timeout default, declared there.
const DefaultTimeout = fabrikconfig.DefaultUpstreamTimeout

// Options configures one S3 tier. Its fields mirror config.UpstreamConfig.
type Options struct {
	// Bucket holds the artifacts. Required.
	Bucket string
	// Prefix isolates a tenant inside a shared bucket ("tenant-acme/"). A
	// trailing slash is added when missing so that tenant "a" never sees the
	// objects of tenant "ab".
	Prefix string
	// Region is the bucket's region; empty falls back to AWS_REGION and the
	// shared config, then to us-east-1 (what S3-compatible servers expect).
	Region string
	// Endpoint is an S3-compatible server's URL (MinIO, R2); empty for AWS.
	Endpoint string
	// PathStyle addresses buckets as endpoint/bucket instead of as a
	// subdomain. Default: true when Endpoint is set, false otherwise.
	PathStyle *bool
	// AccessKey and SecretKey are static credentials. When empty, the SDK's
	// default chain is used (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, shared
	// files, instance roles).
	AccessKey string
	SecretKey string
	// Timeout bounds every wait on the server: connecting, the answer to a
	// request, and any stall while a body streams. It is not a bound on a
	// whole transfer, so large artifacts are not cut off while they progress.
	// Default: DefaultTimeout.
	Timeout time.Duration
}

// Tier stores artifacts in one bucket under one prefix. It is safe for
// concurrent use; it holds no state besides the SDK client.
type Tier struct {
	name    string
	bucket  string
	prefix  string
	timeout time.Duration
	client  *s3.Client
}

// New builds a tier. It does not contact the server: an unreachable S3 at
// start-up must not stop a node from serving its local cache.
func New(ctx context.Context, name string, opts Options) (*Tier, error) {
	if opts.Bucket == "" {
		return nil, fmt.Errorf("s3 tier %q: bucket is required", name)
	}
	// S3-compatible servers may reject the CRC32 checksums the SDK sends by
	// default; integrity comes from the SHA-256 we send explicitly instead.
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	if opts.AccessKey != "" || opts.SecretKey != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKey, opts.SecretKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3 tier %q: load AWS config: %w", name, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	pathStyle := opts.Endpoint != ""
	if opts.PathStyle != nil {
		pathStyle = *opts.PathStyle
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = pathStyle
	})
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Tier{
		name:    name,
		bucket:  opts.Bucket,
		prefix:  normalizePrefix(opts.Prefix),
		timeout: timeout,
		client:  client,
	}, nil
}

// ParseURL splits an upstream URL "s3://bucket/prefix/" into its bucket and
// its prefix (normalized to end in "/", or "" for the whole bucket).
func ParseURL(u string) (bucket, prefix string, err error) {
	parsed, err := url.Parse(u)
	if err != nil {
		return "", "", fmt.Errorf("parse s3 url %q: %w", u, err)
	}
	if parsed.Scheme != "s3" {
		return "", "", fmt.Errorf("s3 url %q: scheme must be s3", u)
	}
	if parsed.Host == "" {
		return "", "", fmt.Errorf("s3 url %q: no bucket", u)
	}
	if parsed.RawQuery != "" || parsed.Fragment != "" || parsed.User != nil {
		return "", "", fmt.Errorf("s3 url %q: only s3://bucket/prefix/ is accepted", u)
	}
	return parsed.Host, normalizePrefix(parsed.Path), nil
}

func normalizePrefix(p string) string {
	p = strings.TrimLeft(p, "/")
	if p != "" && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// Name identifies the tier in logs and metrics.
func (t *Tier) Name() string { return t.name }

// Close releases nothing today; it exists so the tier actor can treat every
// tier the same way when it stops.
func (t *Tier) Close() error { return nil }

var hexHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

// validate refuses refs that cannot map to an object key of their own: an
// empty, "." or ".." path segment would alias another key or be rejected by
// the server.
func validate(ref messages.Ref) error {
	if ref.IsCAS() {
		if !hexHash.MatchString(ref.Key) {
			return fmt.Errorf("%w: CAS key %q is not a lower-case hex SHA-256", tier.ErrInvalid, ref.Key)
		}
		return nil
	}
	if ref.Namespace == "" || ref.Key == "" {
		return fmt.Errorf("%w: empty namespace or key in %q", tier.ErrInvalid, ref.String())
	}
	for _, seg := range strings.Split(ref.String(), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: ref %q has an empty, . or .. segment", tier.ErrInvalid, ref.String())
		}
	}
	return nil
}

func (t *Tier) blobKey(hash string) string { return t.prefix + "cas/" + hash[:2] + "/" + hash }

func (t *Tier) entryKey(ref messages.Ref) string {
	return t.prefix + "keys/" + ref.Namespace + "/" + ref.Key
}

// objectKey is where ref's own object lives: the blob for CAS, else the entry.
func (t *Tier) objectKey(ref messages.Ref) string {
	if ref.IsCAS() {
		return t.blobKey(ref.Key)
	}
	return t.entryKey(ref)
}

// fail wraps err with the tier, the operation and, when the watchdog cut the
// request, the timeout that did it (the SDK only reports "context canceled").
func (t *Tier) fail(w *watchdog, op, key string, err error) error {
	if errors.Is(err, tier.ErrNotFound) || errors.Is(err, tier.ErrInvalid) {
		return fmt.Errorf("s3 tier %q: %s %s: %w", t.name, op, key, err)
	}
	if errors.Is(err, ErrTimeout) {
		return fmt.Errorf("s3 tier %q: %s %s: %w", t.name, op, key, err)
	}
	if cause := w.cause(); cause != nil {
		return fmt.Errorf("s3 tier %q: %s %s: %w (%v)", t.name, op, key, cause, err)
	}
	return fmt.Errorf("s3 tier %q: %s %s: %w", t.name, op, key, classify(err))
}

var _ tier.Tier = (*Tier)(nil)
