package node

import (
	"fmt"
	"net"
)

// checkExposure refuses to serve a listener on a non-loopback address while
// authentication is off, unless the operator said so explicitly with
// auth.required = false (then it is only warned about, once per listener).
// A regional started with no config used to bind 0.0.0.0 with no auth: an
// open cache anyone on the network could read and poison. The health
// listener is exempt: it serves no cache data, is public by design, and a
// load balancer must reach it.
//
// The p2p listener is exempt when a p2p secret is set: it must be reachable
// on the LAN by design, its peers carry no JWT (teammates' edges share a
// team secret, not a token), and every request is authenticated by HMAC
// with that secret instead (tier/p2p: window, replay), then by consent; it
// only answers reads of the local tier. It is gRPC, so the browser Host
// policy of serveHTTP never wraps it either.
func (n *Node) checkExposure(name, addr string) error {
	if name == p2pListener && n.cfg.P2P.Secret != "" {
		return nil
	}
	if name == "health" || n.authn.Enabled() || isLoopback(addr) {
		return nil
	}
	if r := n.cfg.Auth.Required; r != nil && !*r {
		n.log.Warn("[fabrik] serving without authentication on a non-loopback address (auth.required = false)", "listener", name, "addr", addr)
		return nil
	}
	return fmt.Errorf("listener %s would serve %s without authentication: no [auth] key source is configured. "+
		"Set auth.public_key_file, auth.public_keys_dir or auth.jwks_url; or bind it to 127.0.0.1; "+
		"or set auth.required = false to run an open cache on purpose", name, addr)
}

// isLoopback reports whether a listen address only accepts connections from
// this machine. An empty host (":7070") listens on every interface, and a
// host name other than localhost is not trusted to resolve to loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
