package auth_test

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/config"
)

// byteStream is a real ByteStream service (Bazel's upload/download service)
// counting the calls that reached it. Read answers with the caller's sub,
// so a test sees the principal arrived in the handler's context.
type byteStream struct {
	reached atomic.Int64
	written atomic.Int64
}

func (b *byteStream) Read(_ *bytestream.ReadRequest, s bytestream.ByteStream_ReadServer) error {
	b.reached.Add(1)
	p, _ := auth.FromContext(s.Context())
	return s.Send(&bytestream.ReadResponse{Data: []byte(p.Subject)})
}

func (b *byteStream) Write(s bytestream.ByteStream_WriteServer) error {
	b.reached.Add(1)
	var n int64
	for {
		req, err := s.Recv()
		if err == io.EOF {
			b.written.Add(n)
			return s.SendAndClose(&bytestream.WriteResponse{CommittedSize: n})
		}
		if err != nil {
			return err
		}
		n += int64(len(req.Data))
	}
}

func (b *byteStream) QueryWriteStatus(ctx context.Context, _ *bytestream.QueryWriteStatusRequest) (*bytestream.QueryWriteStatusResponse, error) {
	b.reached.Add(1)
	if _, ok := auth.FromContext(ctx); !ok {
		return nil, status.Error(codes.Internal, "no principal in context")
	}
	return &bytestream.QueryWriteStatusResponse{Complete: true}, nil
}

func byteStreamScope(method string) auth.Scope {
	switch method {
	case "/google.bytestream.ByteStream/Read", "/google.bytestream.ByteStream/QueryWriteStatus":
		return auth.Read
	case "/google.bytestream.ByteStream/Write":
		return auth.Write
	}
	return auth.Admin
}

// startGRPC serves ByteStream and health on 127.0.0.1 behind a's
// interceptors and returns a plaintext connection to it.
func startGRPC(t *testing.T, a *auth.Authenticator, dialOpts ...grpc.DialOption) (*byteStream, *grpc.ClientConn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(a.GRPCServerOptions(byteStreamScope)...)
	bs := &byteStream{}
	bytestream.RegisterByteStreamServer(srv, bs)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, dialOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return bs, conn
}

func withToken(t *testing.T, token string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	return ctx
}

var wantCode = map[authtest.Want]codes.Code{
	authtest.Allowed:         codes.OK,
	authtest.Unauthenticated: codes.Unauthenticated,
	authtest.Forbidden:       codes.PermissionDenied,
}

func TestGRPCMatrix(t *testing.T) {
	keys := authtest.New(t)
	for srcName, cfg := range map[string]config.AuthConfig{
		"public_keys_dir": keys.Config(),
		"public_key_file": {PublicKeyFile: keys.File(), Leeway: config.Duration(5 * time.Second)},
	} {
		a, _ := newAuth(t, cfg)
		bs, conn := startGRPC(t, a)
		client := bytestream.NewByteStreamClient(conn)

		calls := []struct {
			name string
			need string
			call func(ctx context.Context) error
		}{
			{"unary QueryWriteStatus", "cache:read", func(ctx context.Context) error {
				_, err := client.QueryWriteStatus(ctx, &bytestream.QueryWriteStatusRequest{ResourceName: "x"})
				return err
			}},
			{"server stream Read", "cache:read", func(ctx context.Context) error {
				s, err := client.Read(ctx, &bytestream.ReadRequest{ResourceName: "x"})
				if err != nil {
					return err
				}
				_, err = s.Recv()
				return err
			}},
			{"client stream Write", "cache:write", func(ctx context.Context) error {
				s, err := client.Write(ctx)
				if err != nil {
					return err
				}
				if err := s.Send(&bytestream.WriteRequest{ResourceName: "uploads/x/blobs/h/5", Data: []byte("hello"), FinishWrite: true}); err != nil && err != io.EOF {
					return err
				}
				_, err = s.CloseAndRecv()
				return err
			}},
		}
		for _, call := range calls {
			for _, c := range keys.Matrix(t, call.need) {
				t.Run(srcName+"/"+call.name+"/"+c.Name, func(t *testing.T) {
					before, writtenBefore := bs.reached.Load(), bs.written.Load()
					err := call.call(withToken(t, c.Token))
					if got := status.Code(err); got != wantCode[c.Want] {
						t.Fatalf("code %v (%v), want %v", got, err, wantCode[c.Want])
					}
					reached := bs.reached.Load() != before
					if reached != (c.Want == authtest.Allowed) {
						t.Fatalf("handler reached=%v for %v", reached, c.Want)
					}
					if c.Want != authtest.Allowed && bs.written.Load() != writtenBefore {
						t.Fatal("a refused write stored bytes")
					}
				})
			}
		}
	}
}

func TestGRPCHealthIsPublicAndPrincipalArrives(t *testing.T) {
	keys := authtest.New(t)
	a, _ := newAuth(t, keys.Config())
	_, conn := startGRPC(t, a)
	resp, err := healthpb.NewHealthClient(conn).Check(withToken(t, ""), &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health without a token: %v %v", resp, err)
	}
	s, err := bytestream.NewByteStreamClient(conn).Read(withToken(t, keys.Token(t, authtest.Subject("ci-42"))), &bytestream.ReadRequest{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.Recv()
	if err != nil || string(msg.Data) != "ci-42" {
		t.Fatalf("principal in handler: %q %v, want ci-42", msg.GetData(), err)
	}
}

// An edge presents its own machine token through PerRPCCredentials over
// plaintext gRPC, as it does to a grpc:// upstream.
func TestGRPCClientCredentials(t *testing.T) {
	keys := authtest.New(t)
	a, _ := newAuth(t, keys.Config())
	machine := auth.NewTokenSource(config.AuthConfig{Token: keys.Token(t, authtest.Subject("edge-1"))}, nil)
	bs, conn := startGRPC(t, a, grpc.WithPerRPCCredentials(machine.Credentials()))
	s, err := bytestream.NewByteStreamClient(conn).Write(withToken(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&bytestream.WriteRequest{Data: []byte("abc"), FinishWrite: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CloseAndRecv(); err != nil {
		t.Fatalf("write with the machine token: %v", err)
	}
	if bs.written.Load() != 3 {
		t.Fatalf("written %d bytes, want 3", bs.written.Load())
	}

	// Without a configured token nothing is sent, and the node refuses.
	t.Setenv("FABRIK_TOKEN", "")
	empty := auth.NewTokenSource(config.AuthConfig{}, nil)
	_, conn = startGRPC(t, a, grpc.WithPerRPCCredentials(empty.Credentials()))
	_, err = bytestream.NewByteStreamClient(conn).QueryWriteStatus(withToken(t, ""), &bytestream.QueryWriteStatusRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no machine token: %v, want Unauthenticated", err)
	}
}

// rawCodec sends bytes as they are, so a test can put junk on the wire.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error)   { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(b []byte, v any) error { *(v.(*[]byte)) = b; return nil }
func (rawCodec) Name() string                    { return "proto" }

// A call without a token is refused from its headers, before its request is
// decoded: junk bytes get UNAUTHENTICATED, not INTERNAL from a failed
// decode, and the handler never runs.
func TestGRPCRefusesBeforeDecoding(t *testing.T) {
	keys := authtest.New(t)
	a, _ := newAuth(t, keys.Config())
	bs, conn := startGRPC(t, a)
	junk := []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x01}
	var out []byte
	err := conn.Invoke(withToken(t, ""), "/google.bytestream.ByteStream/QueryWriteStatus", &junk, &out, grpc.ForceCodec(rawCodec{}))
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("junk without a token: %v, want UNAUTHENTICATED", err)
	}
	if bs.reached.Load() != 0 {
		t.Fatal("the handler ran for an unauthenticated call")
	}
}
