package p2p

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/messages"
	p2pv1 "github.com/tuist/fabrik-node/proto/fabrik/p2p/v1"
	"github.com/tuist/fabrik-node/tier"
	"github.com/tuist/fabrik-node/tier/fabrik"
)

// Peer is one remote edge, read over the P2P protocol.
type Peer struct {
	Addr   string
	signer Signer
	conn   *grpc.ClientConn
	client p2pv1.PeerClient
}

// Dial prepares a connection to addr (lazy: gRPC connects on first use).
func Dial(addr string, s Signer) (*Peer, error) {
	// Windows as large as the Fabrik protocol's: with gRPC's 64 KiB default
	// a 1 MiB hit spends most of its time waiting for window updates.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(fabrik.StreamWindow), grpc.WithInitialConnWindowSize(fabrik.ConnWindow))
	if err != nil {
		return nil, fmt.Errorf("p2p dial %s: %w", addr, err)
	}
	return &Peer{Addr: addr, signer: s, conn: conn, client: p2pv1.NewPeerClient(conn)}, nil
}

// Close releases the connection.
func (p *Peer) Close() error { return p.conn.Close() }

// Hello introduces this node and returns the peer's answer.
func (p *Peer) Hello(ctx context.Context, user, host, version string) (*p2pv1.HelloResponse, error) {
	return p.client.Hello(ctx, &p2pv1.HelloRequest{Auth: p.signer.Sign(HelloSubject), User: user, Host: host, Version: version})
}

func miss(err error) error {
	switch status.Code(err) {
	case codes.NotFound, codes.PermissionDenied:
		return fmt.Errorf("%w: %v", tier.ErrNotFound, err)
	}
	return err
}

// Stat asks the peer's local tier.
func (p *Peer) Stat(ctx context.Context, ref messages.Ref) (messages.Meta, error) {
	r, err := p.client.Exists(ctx, &p2pv1.ExistsRequest{Auth: p.signer.Sign(ref.String()), Ref: &p2pv1.Ref{Namespace: ref.Namespace, Key: ref.Key}})
	if err != nil {
		return messages.Meta{}, miss(err)
	}
	if !r.GetFound() {
		return messages.Meta{}, tier.ErrNotFound
	}
	return messages.Meta{Hash: r.GetHash(), Size: r.GetSize()}, nil
}

// Get opens the artifact on the peer. The body verifies size and SHA-256
// as it is read: a peer that sends other bytes, fewer or more, fails the
// read at its end instead of returning io.EOF.
func (p *Peer) Get(ctx context.Context, ref messages.Ref) (messages.Meta, io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	st, err := p.client.Get(ctx, &p2pv1.GetRequest{Auth: p.signer.Sign(ref.String()), Ref: &p2pv1.Ref{Namespace: ref.Namespace, Key: ref.Key}})
	if err != nil {
		cancel()
		return messages.Meta{}, nil, miss(err)
	}
	first, err := st.Recv()
	if err != nil {
		cancel()
		return messages.Meta{}, nil, miss(err)
	}
	md := first.GetMetadata()
	if md == nil {
		cancel()
		return messages.Meta{}, nil, fmt.Errorf("p2p %s: stream did not start with metadata", p.Addr)
	}
	meta := messages.Meta{Hash: md.GetHash(), Size: md.GetSize(), BuildSystem: md.GetBuildSystem(), Attrs: md.GetAttrs()}
	if ref.IsCAS() && meta.Hash != ref.Key {
		cancel()
		return messages.Meta{}, nil, fmt.Errorf("%w: p2p %s answered %s with hash %s", tier.ErrInvalid, p.Addr, ref.Key, meta.Hash)
	}
	return meta, &body{st: st, cancel: cancel, want: meta, h: sha256.New()}, nil
}

// Put is refused: peers never receive writes.
func (p *Peer) Put(context.Context, messages.Ref, messages.Meta, io.Reader) error {
	return errors.New("p2p peers never receive writes")
}

// Delete does nothing: a peer's cache is its own.
func (p *Peer) Delete(context.Context, messages.Ref) error { return nil }

// body is a verifying reader over a Get stream.
type body struct {
	st     p2pv1.Peer_GetClient
	cancel context.CancelFunc
	want   messages.Meta
	h      hash.Hash
	n      int64
	buf    []byte
	err    error
}

func (b *body) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		m, err := b.st.Recv()
		if errors.Is(err, io.EOF) {
			b.err = b.finish()
			continue
		}
		if err != nil {
			b.err = fmt.Errorf("p2p stream: %w", err)
			continue
		}
		b.buf = m.GetChunk()
		b.h.Write(b.buf)
		b.n += int64(len(b.buf))
		if b.n > b.want.Size {
			b.err, b.buf = fmt.Errorf("%w: p2p body longer than %d bytes", tier.ErrInvalid, b.want.Size), nil
		}
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

func (b *body) finish() error {
	if b.n != b.want.Size {
		return fmt.Errorf("%w: p2p body %d bytes, want %d", tier.ErrInvalid, b.n, b.want.Size)
	}
	if got := hex.EncodeToString(b.h.Sum(nil)); got != b.want.Hash {
		return fmt.Errorf("%w: p2p body hash %s, want %s", tier.ErrInvalid, got, b.want.Hash)
	}
	return io.EOF
}

func (b *body) Close() error { b.cancel(); return nil }
