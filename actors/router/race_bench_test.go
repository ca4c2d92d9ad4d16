package router_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/local"
	"github.com/tuist/fabrik-node/actors/remote"
	"github.com/tuist/fabrik-node/actors/router"
	"github.com/tuist/fabrik-node/internal/tiertest"
	"github.com/tuist/fabrik-node/messages"
	p2pv1 "github.com/tuist/fabrik-node/proto/fabrik/p2p/v1"
	"github.com/tuist/fabrik-node/store"
	"github.com/tuist/fabrik-node/tier/p2p"
)

// emptyLocal is a peer's local tier that holds nothing.
type emptyLocal struct{}

func (emptyLocal) GetLocal(context.Context, messages.Ref) (*messages.GetResult, error) {
	return &messages.GetResult{}, nil
}
func (emptyLocal) StatLocal(context.Context, messages.Ref) (*messages.StatResult, error) {
	return &messages.StatResult{}, nil
}

// BenchmarkRaceCost is the racing cost when no peer has the artifact: a
// 4 KiB upstream hit after a local miss, without P2P and with one real
// peer (gRPC over loopback) that misses. No write-back (no stager), so
// every read is a local miss.
func BenchmarkRaceCost(b *testing.B) {
	st, err := store.Open(store.Options{Dir: filepath.Join(b.TempDir(), "cache")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	sys := actors.NewSystem()
	defer sys.Shutdown()
	lt, _ := sys.Spawn("local", local.New(st, 0, 0, quiet))
	up := tiertest.New("upstream-0", nil)
	r := messages.Ref{Namespace: "gradle", Key: "0123456789abcdef0123456789abcdef"}
	up.Seed(r, make([]byte, 4096))
	upRef, _ := sys.Spawn("upstream-0", remote.New(up, remote.Options{Timeout: 10 * time.Second, Logger: quiet}))
	upstreams := []router.Tier{{Name: "upstream-0", Ref: upRef, Timeout: 5 * time.Second, ReadOnly: true}}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	p2pv1.RegisterPeerServer(srv, &p2p.Server{Local: emptyLocal{}, Verifier: p2p.NewVerifier([]byte("bench-secret-0123456789"), nil),
		Consent: &p2p.Consent{Mode: p2p.ModeAutoApprove}, Stats: &p2p.Stats{}, Logger: slog.New(slog.DiscardHandler)})
	go srv.Serve(ln)
	defer srv.Stop()
	set := &p2p.Set{Signer: p2p.Signer{Secret: []byte("bench-secret-0123456789"), MachineID: "bench"}, Stats: &p2p.Stats{}, Logger: quiet}
	set.See(p2p.PeerInfo{Addr: ln.Addr().String(), Static: true})
	defer set.Close()
	peerRef, _ := sys.Spawn("p2p", remote.New(set, remote.Options{Timeout: 10 * time.Second, Logger: quiet}))

	for _, c := range []struct {
		name  string
		peers *router.Tier
	}{
		{"no-p2p", nil},
		{"p2p-peer-misses", &router.Tier{Name: "p2p", Ref: peerRef, Timeout: 5 * time.Second, ReadOnly: true}},
	} {
		rt, _ := sys.Spawn("router-"+c.name, router.New(router.Options{Local: lt, Upstreams: upstreams, Peers: c.peers, Logger: quiet}))
		cache := router.NewCache(rt, st)
		ctx := context.Background()
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				res, _ := cache.Get(ctx, r)
				if !res.Found || res.Tier != "upstream-0" {
					b.Fatalf("want an upstream hit, got %+v", res)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
		sys.Stop(rt)
	}
}
