package node

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/remote"
	"github.com/tuist/fabrik-node/actors/router"
	"github.com/tuist/fabrik-node/actors/uploadpool"
	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/tier"
	"github.com/tuist/fabrik-node/tier/fabrik"
	"github.com/tuist/fabrik-node/tier/s3"
)

// upstreams is what startUpstreams built: the router's tier list, the
// actors hosting them and the upload pool.
type upstreams struct {
	tiers  []router.Tier
	actors []actors.Ref
	pool   actors.Ref
}

// startUpstreams builds one tier actor per [[upstream]], in array order,
// and the upload pool for those that are written through.
func (n *Node) startUpstreams() (upstreams, error) {
	var u upstreams
	var targets []uploadpool.Target
	for i, uc := range n.cfg.Upstream {
		name := fmt.Sprintf("upstream-%d", i)
		t, err := n.newTier(name, uc)
		if err != nil {
			return u, err
		}
		timeout := uc.RequestTimeout()
		ref, err := n.sys.Spawn(name, remote.New(t, remote.Options{
			Timeout:   timeout,
			Logger:    n.log,
			OnResult:  n.onTierResult,
			OnBreaker: n.breakers.record,
		}))
		if err != nil {
			return u, err
		}
		u.actors = append(u.actors, ref)
		n.breakers.add(name, uc.URL)
		rt := router.Tier{
			Name: name, Ref: ref, Timeout: timeout + time.Second,
			ReadOnly: uc.ReadOnly, WriteThrough: uc.IsWriteThrough(), Permanent: uc.Permanent,
		}
		if uc.IsReplica() {
			// Written through, never read: see config.UpstreamConfig.IsReplica.
			rt.ReadOnly, rt.WriteOnly = false, true
		}
		u.tiers = append(u.tiers, rt)
		if !rt.ReadOnly && rt.WriteThrough {
			targets = append(targets, uploadpool.Target{Tier: t, Workers: uc.UploadWorkers(), Timeout: timeout})
		}
	}
	if target, ok, err := n.startGitHubActions(&u); err != nil {
		return u, err
	} else if ok {
		targets = append(targets, target)
	}
	if len(targets) > 0 {
		pool, err := n.sys.Spawn("uploads", uploadpool.New(uploadpool.Options{
			Store: n.store, Targets: targets, Metrics: n.metrics, Logger: n.log,
		}))
		if err != nil {
			return u, err
		}
		u.pool = pool
	}
	return u, nil
}

// newTier builds the tier an upstream URL names, by scheme.
func (n *Node) newTier(name string, uc config.UpstreamConfig) (tier.Tier, error) {
	pu, err := url.Parse(uc.URL)
	if err != nil {
		return nil, fmt.Errorf("%s: url %q: %w", name, uc.URL, err)
	}
	switch pu.Scheme {
	case "grpc", "grpcs":
		t, err := fabrik.New(name, uc.URL, fabrik.Options{Timeout: uc.RequestTimeout(), PerRPCCredentials: n.upstreamCreds})
		if err != nil {
			return nil, err
		}
		n.closers = append(n.closers, func() { t.Close() })
		return t, nil
	case "s3":
		bucket, prefix, err := s3.ParseURL(uc.URL)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return s3.New(context.Background(), name, s3.Options{
			Bucket: bucket, Prefix: prefix, Region: uc.Region, Endpoint: uc.Endpoint,
			PathStyle: uc.PathStyle, AccessKey: uc.AccessKey, SecretKey: uc.SecretKey,
			Timeout: uc.RequestTimeout(),
		})
	}
	return nil, fmt.Errorf("%s: unsupported upstream scheme %q in %q (use grpc://, grpcs:// or s3://)", name, pu.Scheme, uc.URL)
}

// onTierResult feeds fabrik_upstream_requests_total and the per-tier
// latency histogram from the remote tier actors.
func (n *Node) onTierResult(tierName, result string, took time.Duration) {
	n.metrics.Upstream(tierName, result)
	if took > 0 {
		n.metrics.TierLatency(tierName, time.Now().Add(-took))
	}
}
