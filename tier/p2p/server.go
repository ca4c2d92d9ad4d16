package p2p

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/messages"
	p2pv1 "github.com/tuist/fabrik-node/proto/fabrik/p2p/v1"
)

// Local is what a peer may reach: the local tier only. A peer never
// triggers an upstream read on another machine, and there is no write.
type Local interface {
	GetLocal(ctx context.Context, ref messages.Ref) (*messages.GetResult, error)
	StatLocal(ctx context.Context, ref messages.Ref) (*messages.StatResult, error)
}

// chunkSize is the Get stream's chunk: large enough to amortize framing,
// small enough to keep gRPC's default flow-control windows busy.
const chunkSize = 256 << 10

// Server answers peers' reads of this node's local tier. It authenticates
// every request by HMAC (Verifier) and asks Consent before serving bytes.
type Server struct {
	p2pv1.UnimplementedPeerServer
	Local     Local
	Verifier  *Verifier
	Consent   *Consent
	MachineID string
	User      string
	Version   string
	Stats     *Stats
	Logger    *slog.Logger
}

func (s *Server) authorize(a *p2pv1.Auth, subject string) error {
	if err := s.Verifier.Verify(a, subject); err != nil {
		s.Stats.refused.Add(1)
		s.Logger.Debug("p2p request refused", "err", err, "machine", a.GetMachineId())
		return status.Error(codes.Unauthenticated, err.Error())
	}
	if d := s.Consent.Check(a.GetMachineId(), "", ""); d != Approved {
		return status.Errorf(codes.PermissionDenied, "p2p: consent %s", d)
	}
	return nil
}

// Hello introduces a peer; it needs a valid MAC but no consent (it is how
// consent is asked for).
func (s *Server) Hello(_ context.Context, r *p2pv1.HelloRequest) (*p2pv1.HelloResponse, error) {
	if err := s.Verifier.Verify(r.GetAuth(), HelloSubject); err != nil {
		s.Stats.refused.Add(1)
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	d := s.Consent.Check(r.GetAuth().GetMachineId(), r.GetUser(), r.GetHost())
	s.Consent.Introduce(r.GetAuth().GetMachineId(), r.GetUser(), r.GetHost())
	return &p2pv1.HelloResponse{MachineId: s.MachineID, User: s.User, Version: s.Version, Consent: d}, nil
}

func ref(r *p2pv1.Ref) (messages.Ref, error) {
	if r.GetNamespace() == "" || r.GetKey() == "" {
		return messages.Ref{}, status.Error(codes.InvalidArgument, "p2p: ref needs a namespace and a key")
	}
	return messages.Ref{Namespace: r.GetNamespace(), Key: r.GetKey()}, nil
}

// Exists reports whether the local tier holds a ref.
func (s *Server) Exists(ctx context.Context, r *p2pv1.ExistsRequest) (*p2pv1.ExistsResponse, error) {
	rf, err := ref(r.GetRef())
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r.GetAuth(), rf.String()); err != nil {
		return nil, err
	}
	st, err := s.Local.StatLocal(ctx, rf)
	if err != nil || !st.Found {
		return &p2pv1.ExistsResponse{}, nil
	}
	return &p2pv1.ExistsResponse{Found: true, Hash: st.Meta.Hash, Size: st.Meta.Size}, nil
}

// Get streams a local artifact: metadata first, then chunks.
func (s *Server) Get(r *p2pv1.GetRequest, stream p2pv1.Peer_GetServer) error {
	rf, err := ref(r.GetRef())
	if err != nil {
		return err
	}
	if err := s.authorize(r.GetAuth(), rf.String()); err != nil {
		return err
	}
	ctx := stream.Context()
	res, err := s.Local.GetLocal(ctx, rf)
	if err != nil || !res.Found || res.Body == nil {
		return status.Error(codes.NotFound, "p2p: not held here")
	}
	defer res.Body.Close()
	m := res.Meta
	if err := stream.Send(&p2pv1.GetResponse{Part: &p2pv1.GetResponse_Metadata{Metadata: &p2pv1.Metadata{
		Hash: m.Hash, Size: m.Size, BuildSystem: m.BuildSystem, Attrs: m.Attrs}}}); err != nil {
		return err
	}
	buf := make([]byte, chunkSize)
	for {
		n, err := res.Body.Read(buf)
		if n > 0 {
			if serr := stream.Send(&p2pv1.GetResponse{Part: &p2pv1.GetResponse_Chunk{Chunk: buf[:n]}}); serr != nil {
				return serr
			}
			s.Stats.served.Add(uint64(n))
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return status.Errorf(codes.Internal, "p2p: read local artifact: %v", err)
		}
	}
}
