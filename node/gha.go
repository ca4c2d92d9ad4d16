package node

import (
	"os"
	"time"

	"github.com/tuist/fabrik-node/actors/remote"
	"github.com/tuist/fabrik-node/actors/router"
	"github.com/tuist/fabrik-node/actors/uploadpool"
	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/tier/gha"
)

// githubActionsTier names the Actions cache tier in logs and metrics.
const githubActionsTier = "github-actions"

// githubActionsWorkers is the upload concurrency for the Actions cache:
// each artifact is three round trips (create, upload, finalize).
const githubActionsWorkers = 4

// startGitHubActions adds the GitHub Actions cache as the last upstream of
// an edge running inside an Actions job, unless [cache] github_actions =
// false. It comes after the configured upstreams: those are the operator's
// explicit choice. A token the tier cannot use is logged and the node runs
// without it: the cache is an optimisation, never a reason not to start.
func (n *Node) startGitHubActions(u *upstreams) (uploadpool.Target, bool, error) {
	if n.opts.Role != config.RoleEdge {
		return uploadpool.Target{}, false, nil
	}
	if on := n.cfg.Cache.GitHubActions; on != nil && !*on {
		return uploadpool.Target{}, false, nil
	}
	env, ok := gha.Detect(os.Getenv)
	if !ok {
		return uploadpool.Target{}, false, nil
	}
	t, err := gha.New(githubActionsTier, gha.Options{Env: env})
	if err != nil {
		n.log.Warn("[fabrik] GitHub Actions cache detected but not usable; running without it", "err", err)
		return uploadpool.Target{}, false, nil
	}
	n.log.Info("[fabrik] detected GitHub Actions cache: using it as a storage tier",
		"api", env.API, "service", env.String(), "scopes", t.Scopes(), "writable", t.Writable(),
		"token_expires", t.ExpiresAt().UTC().Format(time.RFC3339))
	timeout := gha.DefaultTimeout
	ref, err := n.sys.Spawn(githubActionsTier, remote.New(t, remote.Options{
		Timeout:  timeout,
		Logger:   n.log,
		OnResult: n.onTierResult,
	}))
	if err != nil {
		return uploadpool.Target{}, false, err
	}
	u.actors = append(u.actors, ref)
	u.tiers = append(u.tiers, router.Tier{
		Name: githubActionsTier, Ref: ref, Timeout: timeout + time.Second,
		ReadOnly: !t.Writable(), WriteThrough: t.Writable(),
	})
	if !t.Writable() {
		return uploadpool.Target{}, false, nil
	}
	return uploadpool.Target{Tier: t, Workers: githubActionsWorkers, Timeout: timeout}, true, nil
}
