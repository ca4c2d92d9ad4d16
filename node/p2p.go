package node

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/tuist/fabrik-node/actors/listener"
	"github.com/tuist/fabrik-node/actors/remote"
	"github.com/tuist/fabrik-node/actors/router"
	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/config"
	p2pv1 "github.com/tuist/fabrik-node/proto/fabrik/p2p/v1"
	"github.com/tuist/fabrik-node/tier/fabrik"
	"github.com/tuist/fabrik-node/tier/p2p"
)

// p2pListener names the peer-serving listener in Node.Addr.
const p2pListener = "p2p"

// peerTTL is how long a discovered peer lives without being seen in a
// browse (several browse rounds, so one lost multicast answer is not an
// expiry).
const peerTTL = 45 * time.Second

// p2pParts is what the node runs for P2P (nil without it).
type p2pParts struct {
	set       *p2p.Set
	consent   *p2p.Consent
	stats     *p2p.Stats
	machineID string
	discovery *p2p.Discovery
}

// p2pEnabled: P2P runs on edges only (a regional is the team's shared tier).
func (n *Node) p2pEnabled() bool {
	return n.cfg.P2P.Enabled && n.opts.Role == config.RoleEdge
}

// startP2PTier builds the peer set and hosts it in a remote actor (breaker,
// in-flight bound, metrics like every tier); the router races it against
// the first upstream.
func (n *Node) startP2PTier() (*router.Tier, error) {
	if !n.p2pEnabled() {
		return nil, nil
	}
	c := n.cfg.P2P
	id, err := machineID(n.cfg.Cache.Dir)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	usr := currentUser()
	stats := &p2p.Stats{}
	lat := n.metrics.Histogram("fabrik_p2p_hit_seconds")
	stats.OnLatency = func(d time.Duration) { lat.Update(d.Seconds()) }
	consent := &p2p.Consent{Mode: c.ConsentMode, Dir: p2p.StateDir(), Timeout: c.ConsentTimeout.D(),
		SameUserApprove: c.AutoApproveSameUser, LocalUser: usr, Logger: n.log,
		OnDecision: func(d string) { n.metrics.Counter(`fabrik_p2p_consent_decisions_total{decision="` + d + `"}`).Inc() }}
	set := &p2p.Set{Signer: p2p.Signer{Secret: []byte(c.Secret), MachineID: id}, MaxPeers: orDefault(c.MaxPeers, 20),
		MaxConcurrent: orDefault(c.MaxConcurrentRequests, 5), TTL: peerTTL, Stats: stats, Logger: n.log,
		User: usr, Host: host, Version: Version}
	n.p2p = &p2pParts{set: set, consent: consent, stats: stats, machineID: id}
	n.metrics.Gauge("fabrik_p2p_peers", func() float64 { return float64(len(set.Peers())) })
	n.metrics.Gauge("fabrik_p2p_hits_total", func() float64 { return float64(stats.Snapshot().Hits) })
	n.metrics.Gauge("fabrik_p2p_misses_total", func() float64 { return float64(stats.Snapshot().Misses) })
	n.metrics.Gauge("fabrik_p2p_bytes_received_total", func() float64 { return float64(stats.Snapshot().BytesIn) })
	n.metrics.Gauge("fabrik_p2p_bytes_served_total", func() float64 { return float64(stats.Snapshot().BytesServed) })
	n.metrics.Gauge("fabrik_p2p_refused_total", func() float64 { return float64(stats.Snapshot().Refused) })
	timeout := c.RequestTimeout.D()
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ref, err := n.sys.Spawn(p2p.Name, remote.New(set, remote.Options{Timeout: timeout, Logger: n.log}))
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, set.Close)
	n.stopOrder = append(n.stopOrder, ref)
	return &router.Tier{Name: p2p.Name, Ref: ref, Timeout: timeout, ReadOnly: true}, nil
}

func orDefault(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

// startP2PServing opens the "p2p" gRPC listener (HMAC, not JWT: see
// checkExposure), then advertises and browses, and adds static peers.
func (n *Node) startP2PServing(grace time.Duration) error {
	if n.p2p == nil {
		return nil
	}
	c := n.cfg.P2P
	addr := p2pBind(c)
	srv := grpc.NewServer(grpc.MaxConcurrentStreams(maxStreamsPerConn),
		grpc.InitialWindowSize(fabrik.StreamWindow), grpc.InitialConnWindowSize(fabrik.ConnWindow))
	p2pv1.RegisterPeerServer(srv, &p2p.Server{Local: n.cache, Verifier: p2p.NewVerifier([]byte(c.Secret), nil),
		Consent: n.p2p.consent, MachineID: n.p2p.machineID, User: currentUser(), Version: Version, Stats: n.p2p.stats, Logger: n.log})
	if err := n.serve(p2pListener, addr, listener.GRPC{Server: srv}, grace); err != nil {
		return err
	}
	for _, a := range c.Peers {
		n.p2p.set.See(p2p.PeerInfo{Addr: a, Static: true})
	}
	_, portStr, _ := net.SplitHostPort(n.Addr(p2pListener))
	port, _ := strconv.Atoi(portStr)
	host, _ := os.Hostname()
	d := &p2p.Discovery{Set: n.p2p.set, MachineID: n.p2p.machineID, Version: Version,
		Host: host + "-" + n.p2p.machineID[:8], Port: port, Logger: n.log}
	if h, _, _ := net.SplitHostPort(addr); h != "" && h != "0.0.0.0" && h != "::" {
		d.IPs = []string{h}
	}
	if c.Advertise == nil || *c.Advertise {
		if err := d.Advertise(); err != nil {
			n.log.Warn("[fabrik] p2p: mDNS advertise failed; static peers only", "err", err)
		}
	}
	if c.Discovery == nil || *c.Discovery {
		d.Browse()
	}
	n.p2p.discovery = d
	n.closers = append(n.closers, d.Stop)
	return nil
}

// p2pBind is [p2p] bind with bind_port, when set, replacing its port.
func p2pBind(c config.P2PConfig) string {
	addr := c.Bind
	if addr == "" {
		addr = "0.0.0.0:7071"
	}
	if c.BindPort > 0 {
		h, _, err := net.SplitHostPort(addr)
		if err != nil {
			h = addr
		}
		addr = net.JoinHostPort(h, strconv.Itoa(c.BindPort))
	}
	return addr
}

// machineID is this node's P2P identity, random and kept in the cache
// directory: /etc/machine-id is shared by every node of one host (and of
// its network namespaces), and a peer must tell them apart.
func machineID(cacheDir string) (string, error) {
	path := filepath.Join(cacheDir, "p2p-machine-id")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 16 {
		return strings.TrimSpace(string(b)), nil
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("p2p machine id: %w", err)
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("p2p machine id: %w", err)
	}
	return id, nil
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

// registerP2PAPI serves the P2P control endpoints the `fabrik-node p2p`
// CLI talks to, on the API listener with admin access:
//
//	GET  /api/v1/p2p/status   this node's identity, mode and counters
//	GET  /api/v1/p2p/peers    discovered peers and consent decisions
//	POST /api/v1/p2p/approve?peer=<machine id>
//	POST /api/v1/p2p/deny?peer=<machine id>
//	POST /api/v1/p2p/clear    forget every decision
func (n *Node) registerP2PAPI(mux *http.ServeMux, guard adapters.Guard) {
	if n.p2p == nil {
		return
	}
	p := n.p2p
	n.opsOf().api.P2P = func() any { return p.figures() }
	n.opsOf().api.P2PPeers = func() []string {
		peers := []string{}
		for _, pi := range p.set.Peers() {
			peers = append(peers, pi.Addr)
		}
		return peers
	}
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.Handle("GET /api/v1/p2p/status", guard.Wrap(adapters.Admin, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"machine_id": p.machineID, "consent_mode": p2p.NormalizeMode(n.cfg.P2P.ConsentMode),
			"addr": n.Addr(p2pListener), "peers": len(p.set.Peers()), "stats": p.stats.Snapshot()})
	})))
	mux.Handle("GET /api/v1/p2p/peers", guard.Wrap(adapters.Admin, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"peers": p.set.Peers(), "decisions": p.consent.List()})
	})))
	decide := func(approve bool) http.Handler {
		return guard.Wrap(adapters.Admin, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			peer := r.URL.Query().Get("peer")
			if peer == "" {
				http.Error(w, "peer is required", http.StatusBadRequest)
				return
			}
			if err := p.consent.Decide(peer, approve); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			writeJSON(w, map[string]any{"peer": peer, "approved": approve})
		}))
	}
	mux.Handle("POST /api/v1/p2p/approve", decide(true))
	mux.Handle("POST /api/v1/p2p/deny", decide(false))
	mux.Handle("POST /api/v1/p2p/clear", guard.Wrap(adapters.Admin, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if err := p.consent.Clear(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, map[string]any{"cleared": true})
	})))
}

// p2pFigures are the P2P part of /api/v1/stats.
type p2pFigures struct {
	p2p.Snapshot
	Peers     int            `json:"peers"`
	Decisions map[string]int `json:"consent_decisions"`
}

func (p *p2pParts) figures() p2pFigures {
	f := p2pFigures{Snapshot: p.stats.Snapshot(), Peers: len(p.set.Peers()), Decisions: map[string]int{}}
	for _, d := range p.consent.List() {
		f.Decisions[d.Decision]++
	}
	return f
}
