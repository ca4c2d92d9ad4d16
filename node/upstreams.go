package node

import (
	"fmt"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/router"
)

// upstreams is what startUpstreams built: the router's tier list, the
// actors hosting them and the upload pool.
type upstreams struct {
	tiers  []router.Tier
	actors []actors.Ref
	pool   actors.Ref
}

// startUpstreams builds one tier actor per [[upstream]] and the upload pool.
func (n *Node) startUpstreams() (upstreams, error) {
	var u upstreams
	if len(n.cfg.Upstream) > 0 {
		return u, fmt.Errorf("upstreams are not wired yet")
	}
	return u, nil
}
