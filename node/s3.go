package node

import (
	"context"

	"github.com/tuist/fabrik-node/auth"
	"net"
	"strconv"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/adapters/httpfront"
	"github.com/tuist/fabrik-node/adapters/s3api"
	"github.com/tuist/fabrik-node/config"
)

// startS3 serves the S3 API (sccache's S3 backend) on its own listener,
// "s3": S3 addresses buckets at the root of a host, so it cannot share the
// HTTP listener's paths.
func (n *Node) startS3(grace time.Duration) error {
	sc := n.cfg.BuildTools.Sccache
	opts := s3api.Options{
		MaxArtifactSize:   int64(n.cfg.Cache.MaxArtifactSize),
		AccessKeyID:       sc.AccessKeyID,
		SecretAccessKey:   sc.SecretAccessKey,
		VirtualHostDomain: sc.VirtualHostDomain,
		MultipartExpiry:   time.Duration(sc.MultipartExpiry),
		Metrics:           n.metrics,
		Logger:            n.log,
	}
	if n.authn.Enabled() {
		// The JWT travels as the session token; its scopes decide reads
		// and writes like a Bearer token's on the other adapters.
		opts.Authorize = func(ctx context.Context, token string, acc adapters.Access) (context.Context, error) {
			p, err := n.authn.Authenticate(token, scopeOf[acc])
			if err != nil {
				return ctx, err
			}
			return auth.NewContext(ctx, p), nil
		}
		if sc.AccessKeyID == "" {
			n.log.Warn("s3: auth is on but build_tools.sccache has no access_key_id/secret_access_key: tokens are checked, signatures are not")
		}
	}
	api := s3api.New(n.cache, opts)
	n.closers = append(n.closers, api.Close)
	front := httpfront.New()
	// Actor "adapter-s3", not "-sccache": sccache's WebDAV backend is an
	// adapter of the shared HTTP front under the same tool name.
	if err := n.mountAdapter("s3", api, front); err != nil {
		return err
	}
	return n.serveHTTP("s3", s3Addr(sc), front, grace)
}

// s3Addr is bind, with its port replaced by port when that is set.
func s3Addr(sc config.SccacheConfig) string {
	if sc.Port == 0 {
		return sc.Bind
	}
	host, _, err := net.SplitHostPort(sc.Bind)
	if err != nil {
		host = sc.Bind // a bare host
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(sc.Port))
}
