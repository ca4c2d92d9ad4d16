package p2p

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// Name is the P2P tier's name in logs, metrics and GetResult.Tier.
const Name = "p2p"

// PeerInfo describes one known peer for `p2p list` and /api/v1/p2p/peers.
type PeerInfo struct {
	Addr      string    `json:"addr"`
	Instance  string    `json:"instance,omitempty"`
	MachineID string    `json:"machine_id,omitempty"`
	Version   string    `json:"version,omitempty"`
	Static    bool      `json:"static"`
	LastSeen  time.Time `json:"last_seen"`
	// Consent is the peer's answer to our Hello: whether it lets us read.
	Consent string `json:"consent,omitempty"`
}

type entry struct {
	info PeerInfo
	peer *Peer
}

// Set is the P2P tier: one tier.Tier fronting every live peer. A read asks
// up to MaxConcurrent peers at once; the first that opens the artifact wins
// and the others are cancelled. Every failure or refusal is a miss.
type Set struct {
	Signer        Signer
	MaxPeers      int
	MaxConcurrent int
	// TTL is how long a discovered peer lives without being seen again.
	TTL     time.Duration
	Stats   *Stats
	Logger  *slog.Logger
	User    string
	Host    string
	Version string

	mu    sync.Mutex
	peers map[string]*entry
}

var _ tier.Tier = (*Set)(nil)

// Name implements tier.Tier.
func (s *Set) Name() string { return Name }

// See adds or refreshes a peer (a discovery answer or a static address).
func (s *Set) See(info PeerInfo) {
	s.mu.Lock()
	if s.peers == nil {
		s.peers = map[string]*entry{}
	}
	e := s.peers[info.Addr]
	if e != nil {
		e.info.LastSeen = time.Now()
		if info.MachineID != "" {
			e.info.MachineID, e.info.Version, e.info.Instance = info.MachineID, info.Version, info.Instance
		}
		s.mu.Unlock()
		return
	}
	if s.MaxPeers > 0 && len(s.peers) >= s.MaxPeers {
		s.mu.Unlock()
		s.Logger.Debug("p2p: max_peers reached; peer ignored", "addr", info.Addr)
		return
	}
	p, err := Dial(info.Addr, s.Signer)
	if err != nil {
		s.mu.Unlock()
		return
	}
	info.LastSeen = time.Now()
	e = &entry{info: info, peer: p}
	s.peers[info.Addr] = e
	s.mu.Unlock()
	s.Logger.Info("[fabrik] p2p peer found", "addr", info.Addr, "instance", info.Instance, "static", info.Static)
	go s.hello(e)
}

// hello introduces us, so the peer can ask its user for consent.
func (s *Set) hello(e *entry) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := e.peer.Hello(ctx, s.User, s.Host, s.Version)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		e.info.Consent = "unreachable"
		return
	}
	e.info.Consent, e.info.MachineID, e.info.Version = r.GetConsent(), r.GetMachineId(), r.GetVersion()
}

// Withdraw forgets a peer (an mDNS goodbye).
func (s *Set) Withdraw(addr string) {
	s.mu.Lock()
	e := s.peers[addr]
	if e != nil && !e.info.Static {
		delete(s.peers, addr)
	}
	s.mu.Unlock()
	if e != nil && !e.info.Static {
		e.peer.Close()
	}
}

// Expire drops discovered peers not seen for TTL; static peers stay.
func (s *Set) Expire(now time.Time) {
	s.mu.Lock()
	var gone []*entry
	for a, e := range s.peers {
		if !e.info.Static && s.TTL > 0 && now.Sub(e.info.LastSeen) > s.TTL {
			delete(s.peers, a)
			gone = append(gone, e)
		}
	}
	s.mu.Unlock()
	for _, e := range gone {
		s.Logger.Info("[fabrik] p2p peer expired", "addr", e.info.Addr)
		e.peer.Close()
	}
}

// Peers lists the known peers, sorted by address.
func (s *Set) Peers() []PeerInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PeerInfo, 0, len(s.peers))
	for _, e := range s.peers {
		out = append(out, e.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}

// live returns up to MaxConcurrent peers to ask.
func (s *Set) live() []*Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Peer
	for _, e := range s.peers {
		if e.info.Consent == Denied {
			continue
		}
		out = append(out, e.peer)
	}
	n := s.MaxConcurrent
	if n <= 0 {
		n = 5
	}
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// verifyFirst is the size up to which a peer's body is read and verified
// before it counts as a hit: a peer that dies or lies mid-stream is then a
// miss (the race goes on with the others and the upstream) instead of a
// failed read. Larger bodies stream, verified at their end like an
// upstream's.
const verifyFirst = 1 << 20

func readVerified(b io.ReadCloser) (io.ReadCloser, error) {
	defer b.Close()
	data, err := io.ReadAll(b)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

type opened struct {
	meta messages.Meta
	body io.ReadCloser
	err  error
}

// Get races the live peers; the first to open the artifact wins.
func (s *Set) Get(ctx context.Context, ref messages.Ref) (messages.Meta, io.ReadCloser, error) {
	peers := s.live()
	if len(peers) == 0 {
		return messages.Meta{}, nil, tier.ErrNotFound
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	results := make(chan opened, len(peers))
	for _, p := range peers {
		go func() {
			m, b, err := p.Get(ctx, ref)
			if err == nil && m.Size <= verifyFirst {
				b, err = readVerified(b)
			}
			results <- opened{m, b, err}
		}()
	}
	for i := range peers {
		r := <-results
		if r.err != nil {
			continue
		}
		// The losers still in flight are closed as they arrive; cancel
		// stops them once the winner's body is closed.
		go func(left int) {
			for ; left > 0; left-- {
				if o := <-results; o.err == nil {
					o.body.Close()
				}
			}
		}(len(peers) - 1 - i)
		s.Stats.hits.Add(1)
		if s.Stats.OnLatency != nil {
			s.Stats.OnLatency(time.Since(start))
		}
		s.Stats.bytesIn.Add(uint64(r.meta.Size))
		return r.meta, tier.OnClose(r.body, cancel), nil
	}
	cancel()
	s.Stats.misses.Add(1)
	return messages.Meta{}, nil, tier.ErrNotFound
}

// Stat asks the live peers; any that holds the ref answers.
func (s *Set) Stat(ctx context.Context, ref messages.Ref) (messages.Meta, error) {
	peers := s.live()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type res struct {
		m   messages.Meta
		err error
	}
	ch := make(chan res, len(peers))
	for _, p := range peers {
		go func() { m, err := p.Stat(ctx, ref); ch <- res{m, err} }()
	}
	for range peers {
		if r := <-ch; r.err == nil {
			return r.m, nil
		}
	}
	return messages.Meta{}, tier.ErrNotFound
}

// Put is refused: peers never receive writes.
func (s *Set) Put(context.Context, messages.Ref, messages.Meta, io.Reader) error {
	return errors.New("p2p peers never receive writes")
}

// Delete does nothing: a peer's cache is its own.
func (s *Set) Delete(context.Context, messages.Ref) error { return nil }

// Close drops every peer.
func (s *Set) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, e := range s.peers {
		e.peer.Close()
		delete(s.peers, a)
	}
}
