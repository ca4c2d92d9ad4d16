package router_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/local"
	"github.com/tuist/fabrik-node/actors/remote"
	"github.com/tuist/fabrik-node/actors/router"
	"github.com/tuist/fabrik-node/internal/tiertest"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
)

// raceEnv is a router with one upstream and the P2P tier, both fakes
// hosted by the real remote actor.
type raceEnv struct {
	cache     *router.Cache
	store     *store.Store
	up, peers *tiertest.Fake
}

func newRaceEnv(t *testing.T) *raceEnv {
	t.Helper()
	st, err := store.Open(store.Options{Dir: filepath.Join(t.TempDir(), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	sys := actors.NewSystem()
	e := &raceEnv{store: st, up: tiertest.New("upstream-0", nil), peers: tiertest.New("p2p", nil)}
	lt, err := sys.Spawn("local", local.New(st, 0, 0, quiet))
	if err != nil {
		t.Fatal(err)
	}
	upRef, err := sys.Spawn("upstream-0", remote.New(e.up, remote.Options{Timeout: 10 * time.Second, Logger: quiet}))
	if err != nil {
		t.Fatal(err)
	}
	peerRef, err := sys.Spawn("p2p", remote.New(e.peers, remote.Options{Timeout: 10 * time.Second, Logger: quiet}))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := sys.Spawn("router", router.New(router.Options{Local: lt, Stager: st.Stager(), Logger: quiet,
		Upstreams: []router.Tier{{Name: "upstream-0", Ref: upRef, Timeout: 5 * time.Second, ReadOnly: true}},
		Peers:     &router.Tier{Name: "p2p", Ref: peerRef, Timeout: 5 * time.Second, ReadOnly: true}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sys.Stop(rt)
		sys.Stop(peerRef)
		sys.Stop(upRef)
		sys.Stop(lt)
		sys.Shutdown()
		st.Close()
	})
	e.cache = router.NewCache(rt, st)
	return e
}

func (e *raceEnv) read(t *testing.T, r messages.Ref) (string, []byte) {
	t.Helper()
	res, err := e.cache.Get(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Found {
		return "", nil
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.Tier, b
}

// A fast peer beats a slow upstream: the read does not wait for the
// upstream, and the peer's hit is written back locally.
func TestRaceFastPeerBeatsSlowUpstream(t *testing.T) {
	e := newRaceEnv(t)
	r := ref("k1")
	b := body(t, 4096)
	e.up.Seed(r, b)
	e.peers.Seed(r, b)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	e.up.OnGet = func(ctx context.Context, _ messages.Ref) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}
	start := time.Now()
	tierName, got := e.read(t, r)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("read waited for the slow upstream: %v", took)
	}
	if tierName != "p2p" || !bytes.Equal(got, b) {
		t.Fatalf("served by %q (%d bytes), want the peer's %d bytes", tierName, len(got), len(b))
	}
	waitLocal(t, e, r)
}

// A failing peer is a miss: the upstream serves.
func TestRaceFailingPeerIsAMiss(t *testing.T) {
	e := newRaceEnv(t)
	r := ref("k2")
	b := body(t, 1000)
	e.up.Seed(r, b)
	e.peers.OnGet = func(context.Context, messages.Ref) error { return errors.New("peer went away") }
	tierName, got := e.read(t, r)
	if tierName != "upstream-0" || !bytes.Equal(got, b) {
		t.Fatalf("served by %q, want upstream-0", tierName)
	}
}

// Nobody has it: a miss, with both asked.
func TestRaceBothMiss(t *testing.T) {
	e := newRaceEnv(t)
	if tierName, _ := e.read(t, ref("none")); tierName != "" {
		t.Fatalf("served by %q, want a miss", tierName)
	}
	if e.up.Count("get") != 1 || e.peers.Count("get") != 1 {
		t.Fatalf("upstream gets %d, peer gets %d; want 1 and 1", e.up.Count("get"), e.peers.Count("get"))
	}
}

// A ref only a peer holds exists; one nobody holds does not.
func TestRaceStat(t *testing.T) {
	e := newRaceEnv(t)
	r := ref("k4")
	e.peers.Seed(r, body(t, 10))
	if st, _ := e.cache.Stat(context.Background(), r); !st.Found || st.Tier != "p2p" {
		t.Fatalf("stat of a peer's artifact: %+v, want found on p2p", st)
	}
	if st, _ := e.cache.Stat(context.Background(), ref("none")); st.Found {
		t.Fatal("stat found what nobody holds")
	}
	if st, _ := e.cache.StatLocal(context.Background(), r); st.Found {
		t.Fatal("a local-only stat reached the peers")
	}
}

// A LocalOnly read (what a peer's request becomes) never reaches a tier.
func TestLocalOnlyReachesNoTier(t *testing.T) {
	e := newRaceEnv(t)
	r := ref("k3")
	e.up.Seed(r, body(t, 10))
	e.peers.Seed(r, body(t, 10))
	res, err := e.cache.GetLocal(context.Background(), r)
	if err != nil || res.Found {
		t.Fatalf("GetLocal found %v (%v), want a miss", res.Found, err)
	}
	if e.up.Count("get")+e.peers.Count("get") != 0 {
		t.Fatal("a local-only read reached a tier")
	}
}

func waitLocal(t *testing.T, e *raceEnv, r messages.Ref) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if res, _ := e.cache.GetLocal(context.Background(), r); res.Found {
			res.Body.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the peer's hit was not written back locally")
}
