// Package fabrik is the tier an edge uses to reach a regional node over the
// Fabrik protocol (proto/fabrik/v1): grpc://host:port in plaintext,
// grpcs://host:port with TLS verified against the system roots.
package fabrik

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/messages"
	fabrikv1 "github.com/tuist/fabrik-node/proto/fabrik/v1"
	"github.com/tuist/fabrik-node/tier"
)

// DefaultTimeout applies when Options.Timeout is zero; it is the config's
// upstream timeout default (config.DefaultUpstreamTimeout), declared there.
const DefaultTimeout = config.DefaultUpstreamTimeout

// ErrUnavailable wraps failures that say the regional cannot be reached or did
// not answer in time (UNAVAILABLE, DEADLINE_EXCEEDED, an idle stream), so a
// circuit breaker can tell "down" from "refused this request".
var ErrUnavailable = errors.New("fabrik upstream unavailable")

// Flow-control windows of Fabrik protocol connections, on both ends: one
// stream may have 1 MiB in flight, a connection 8 MiB. That bounds the
// memory a slow reader can pin while letting a megabyte artifact arrive
// without waiting for window updates.
const (
	StreamWindow = 1 << 20
	ConnWindow   = 8 << 20
)

// Options configures a Tier.
type Options struct {
	// Timeout bounds each wait on the regional. Unary calls (Stat, Delete)
	// get it as a deadline. Streams (Get, Put) do not: a 2 GiB artifact may
	// legitimately take minutes, so instead Timeout bounds the time to the
	// first response and then every wait for the next chunk (Get) or for
	// flow control to accept the next chunk (Put). A stalled regional is
	// detected within Timeout; a slow but moving transfer is never cut.
	// Zero means DefaultTimeout.
	Timeout time.Duration
	// PerRPCCredentials attaches the node's machine token to every call.
	// Credentials that require transport security only work with grpcs://.
	PerRPCCredentials credentials.PerRPCCredentials
	// TLSConfig replaces the grpcs:// default (system roots, TLS 1.2+);
	// tests and private CAs set RootCAs here. Ignored for grpc://.
	TLSConfig *tls.Config
	// DialOptions are appended last, so they override the defaults.
	DialOptions []grpc.DialOption
}

// Tier is a regional node seen as a storage tier. One ClientConn per tier:
// gRPC multiplexes every concurrent request over it.
type Tier struct {
	name    string
	target  string
	timeout time.Duration
	conn    *grpc.ClientConn
	client  fabrikv1.FabrikCacheClient
}

// New parses target (grpc://host:port or grpcs://host:port) and prepares a
// connection. It does not dial: the connection is made by the first request
// and re-made after failures, so a regional that is down at start is a miss
// until it comes up, not a startup failure.
func New(name, target string, opts Options) (*Tier, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("fabrik tier %s: parse %q: %w", name, target, err)
	}
	if u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("fabrik tier %s: %q: want grpc://host:port or grpcs://host:port", name, target)
	}
	var tc credentials.TransportCredentials
	switch u.Scheme {
	case "grpc":
		tc = insecure.NewCredentials()
	case "grpcs":
		cfg := opts.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tc = credentials.NewTLS(cfg)
	default:
		return nil, fmt.Errorf("fabrik tier %s: scheme %q: want grpc or grpcs", name, u.Scheme)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(tc),
		// gRPC's default reconnect backoff grows to two minutes; a regional
		// restarted after a deploy should serve hits again within seconds.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: timeout,
		}),
		// Artifacts are megabytes: a stream that starts with gRPC's 64 KiB
		// window waits for window updates before its first megabyte arrives.
		grpc.WithInitialWindowSize(StreamWindow),
		grpc.WithInitialConnWindowSize(ConnWindow),
		// Ping an idle connection every 30 s (the regional permits pings
		// every 10 s): a load balancer or NAT between edge and regional
		// sees traffic and keeps the connection, and a half-dead one is
		// found within 40 s instead of at the next request.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		// Chunks are copied once instead of three times (wire unchanged).
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(fabrikv1.Codec)),
	}
	if opts.PerRPCCredentials != nil {
		dial = append(dial, grpc.WithPerRPCCredentials(opts.PerRPCCredentials))
	}
	dial = append(dial, opts.DialOptions...)
	conn, err := grpc.NewClient(u.Host, dial...)
	if err != nil {
		return nil, fmt.Errorf("fabrik tier %s: client for %s: %w", name, u.Host, err)
	}
	return &Tier{name: name, target: target, timeout: timeout, conn: conn, client: fabrikv1.NewFabrikCacheClient(conn)}, nil
}

// Name identifies the tier in logs and metrics.
func (t *Tier) Name() string { return t.name }

// Close releases the connection. Streams still open fail.
func (t *Tier) Close() error { return t.conn.Close() }

// Stat asks the regional whether ref exists (it reads through its own
// upstreams, so a hit may come from S3 behind it).
func (t *Tier) Stat(ctx context.Context, ref messages.Ref) (messages.Meta, error) {
	var res *fabrikv1.ExistsResponse
	err := t.retryRead(ctx, func() error {
		actx, cancel := context.WithTimeout(ctx, t.timeout)
		defer cancel()
		var err error
		res, err = t.client.Exists(actx, &fabrikv1.ExistsRequest{Ref: refToProto(ref)})
		return err
	})
	if err != nil {
		return messages.Meta{}, t.wrap("stat", ref, err)
	}
	if !res.GetFound() {
		return messages.Meta{}, fmt.Errorf("fabrik tier %s: stat %s: %w", t.name, ref, tier.ErrNotFound)
	}
	return metaFromProto(res.GetMeta()), nil
}

// Delete removes ref from the regional's local store.
func (t *Tier) Delete(ctx context.Context, ref messages.Ref) error {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	if _, err := t.client.Delete(ctx, &fabrikv1.DeleteRequest{Ref: refToProto(ref)}); err != nil {
		return t.wrap("delete", ref, err)
	}
	return nil
}

// Stats reports what the regional holds (zeros if it does not count).
func (t *Tier) Stats(ctx context.Context) (objects, bytes int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	res, err := t.client.GetStats(ctx, &fabrikv1.GetStatsRequest{})
	if err != nil {
		return 0, 0, t.wrap("stats", messages.Ref{}, err)
	}
	return res.GetTotalObjects(), res.GetTotalBytes(), nil
}

// wrap turns a gRPC status into the tier contract's errors.
func (t *Tier) wrap(op string, ref messages.Ref, err error) error {
	var kind error
	switch status.Code(err) {
	case codes.NotFound:
		kind = tier.ErrNotFound
	case codes.InvalidArgument:
		kind = tier.ErrInvalid
	case codes.ResourceExhausted:
		kind = tier.ErrFull
	case codes.Unavailable, codes.DeadlineExceeded:
		kind = ErrUnavailable
	default:
		return fmt.Errorf("fabrik tier %s: %s %s: %w", t.name, op, ref, err)
	}
	return fmt.Errorf("fabrik tier %s: %s %s: %w: %w", t.name, op, ref, kind, err)
}

func refToProto(r messages.Ref) *fabrikv1.Ref {
	return &fabrikv1.Ref{Namespace: r.Namespace, Key: r.Key}
}

func metaFromProto(m *fabrikv1.Meta) messages.Meta {
	return messages.Meta{Hash: m.GetHash(), Size: m.GetSize(), BuildSystem: m.GetBuildSystem(), Attrs: m.GetAttrs()}
}

var _ tier.Tier = (*Tier)(nil)
