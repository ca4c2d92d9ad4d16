package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"

	"google.golang.org/grpc"

	"github.com/tuist/fabrik-node/messages"
	p2pv1 "github.com/tuist/fabrik-node/proto/fabrik/p2p/v1"
	"github.com/tuist/fabrik-node/tier"
)

const testSecret = "team-secret-0123456789"

// local is a peer's local tier: body is served under meta, and fails with
// failAfter bytes when failAfter > 0 (the peer dying mid-stream).
type local struct {
	meta      messages.Meta
	body      []byte
	failAfter int
}

func (l *local) GetLocal(context.Context, messages.Ref) (*messages.GetResult, error) {
	var r io.Reader = bytes.NewReader(l.body)
	if l.failAfter > 0 {
		r = io.MultiReader(bytes.NewReader(l.body[:l.failAfter]), errReader{})
	}
	return &messages.GetResult{Found: true, Meta: l.meta, Body: io.NopCloser(r)}, nil
}

func (l *local) StatLocal(context.Context, messages.Ref) (*messages.StatResult, error) {
	return &messages.StatResult{Found: true, Meta: l.meta}, nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk gone") }

func servePeer(t *testing.T, l *local) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	p2pv1.RegisterPeerServer(srv, &Server{Local: l, Verifier: NewVerifier([]byte(testSecret), nil),
		Consent: &Consent{Mode: ModeAutoApprove}, Stats: &Stats{}, Logger: slog.New(slog.DiscardHandler)})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func newSet(addrs ...string) *Set {
	s := &Set{Signer: Signer{Secret: []byte(testSecret), MachineID: "me"}, Stats: &Stats{}, Logger: slog.New(slog.DiscardHandler)}
	for _, a := range addrs {
		s.See(PeerInfo{Addr: a, Static: true})
	}
	return s
}

func artifact(n int) (messages.Meta, []byte) {
	b := bytes.Repeat([]byte("fabrik!"), n)
	h := sha256.Sum256(b)
	return messages.Meta{Hash: hex.EncodeToString(h[:]), Size: int64(len(b))}, b
}

func TestSetHitIsVerified(t *testing.T) {
	meta, body := artifact(1000)
	s := newSet(servePeer(t, &local{meta: meta, body: body}))
	defer s.Close()
	m, r, err := s.Get(context.Background(), messages.Ref{Namespace: "gradle", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, body) || m.Hash != meta.Hash {
		t.Fatalf("read %d bytes (%v), want %d", len(got), err, len(body))
	}
	if st := s.Stats.Snapshot(); st.Hits != 1 || st.BytesIn != uint64(len(body)) {
		t.Fatalf("stats %+v", st)
	}
}

func TestSetPeerDyingMidStreamIsAMiss(t *testing.T) {
	meta, body := artifact(100_000)
	s := newSet(servePeer(t, &local{meta: meta, body: body, failAfter: 300_000}))
	defer s.Close()
	if _, _, err := s.Get(context.Background(), messages.Ref{Namespace: "gradle", Key: "k"}); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("peer failing mid-stream: %v, want a miss", err)
	}
}

func TestSetLyingPeerLosesToHonestOne(t *testing.T) {
	meta, body := artifact(1000)
	liar := append([]byte(nil), body...)
	liar[10] ^= 1
	s := newSet(servePeer(t, &local{meta: meta, body: liar}), servePeer(t, &local{meta: meta, body: body}))
	defer s.Close()
	_, r, err := s.Get(context.Background(), messages.Ref{Namespace: "gradle", Key: "k"})
	if err != nil {
		t.Fatalf("honest peer present: %v", err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, body) {
		t.Fatal("served the liar's bytes")
	}
	only := newSet(servePeer(t, &local{meta: meta, body: liar}))
	defer only.Close()
	if _, _, err := only.Get(context.Background(), messages.Ref{Namespace: "gradle", Key: "k"}); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("only a lying peer: %v, want a miss", err)
	}
}

func TestSetWrongSecretIsAMiss(t *testing.T) {
	meta, body := artifact(10)
	s := newSet(servePeer(t, &local{meta: meta, body: body}))
	s.Signer.Secret = []byte("wrong-secret-0123456789")
	defer s.Close()
	// See dialed with the signer of its time: re-add under the wrong one.
	s.Close()
	s.See(PeerInfo{Addr: servePeer(t, &local{meta: meta, body: body}), Static: true})
	if _, _, err := s.Get(context.Background(), messages.Ref{Namespace: "gradle", Key: "k"}); err == nil {
		t.Fatal("wrong secret was served")
	}
}
