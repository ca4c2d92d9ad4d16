package auth

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// healthPrefix is the standard health service, public so that load
// balancers and orchestrators can probe without a token.
const healthPrefix = "/grpc.health.v1.Health/"

// MethodScope maps a full gRPC method name ("/package.Service/Method") to
// the scope it needs. A nil MethodScope asks every method for a valid token
// (Authenticated).
type MethodScope func(fullMethod string) Scope

// GRPCServerOptions returns the tap handle and the unary and stream
// interceptors as server options: grpc.NewServer(a.GRPCServerOptions(scopeFor)...).
// The tap handle refuses a call from its headers alone, before gRPC reads
// or decodes a byte of the request, so junk without a token costs nothing
// and is answered UNAUTHENTICATED (not INTERNAL from a failed decode). The
// interceptors then hand the principal to the handler; they chain with any
// other interceptors. A server can have only one tap handle.
func (a *Authenticator) GRPCServerOptions(scopeFor MethodScope) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InTapHandle(a.TapHandle(scopeFor)),
		grpc.ChainUnaryInterceptor(a.UnaryInterceptor(scopeFor)),
		grpc.ChainStreamInterceptor(a.StreamInterceptor(scopeFor)),
	}
}

// TapHandle authenticates a call from its metadata before the request is
// decoded. It only refuses; the interceptors attach the principal (the
// verified-token cache makes the second check a map lookup).
func (a *Authenticator) TapHandle(scopeFor MethodScope) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		tokenCtx := metadata.NewIncomingContext(ctx, info.Header)
		if _, err := a.authenticateGRPC(tokenCtx, info.FullMethodName, scopeFor); err != nil {
			return ctx, err
		}
		return ctx, nil
	}
}

// UnaryInterceptor checks the authorization metadata of unary calls.
func (a *Authenticator) UnaryInterceptor(scopeFor MethodScope) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.authenticateGRPC(ctx, info.FullMethod, scopeFor)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor checks the authorization metadata of streaming calls
// before the handler sees the first message.
func (a *Authenticator) StreamInterceptor(scopeFor MethodScope) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.authenticateGRPC(ss.Context(), info.FullMethod, scopeFor)
		if err != nil {
			return err
		}
		return handler(srv, &principalStream{ServerStream: ss, ctx: ctx})
	}
}

func (a *Authenticator) authenticateGRPC(ctx context.Context, method string, scopeFor MethodScope) (context.Context, error) {
	need := Public
	switch {
	case strings.HasPrefix(method, healthPrefix):
	case scopeFor == nil:
		need = Authenticated
	default:
		need = scopeFor(method)
	}
	p, err := a.Authenticate(GRPCToken(ctx), need)
	if err == nil {
		return NewContext(ctx, p), nil
	}
	code := codes.Unauthenticated
	if errors.Is(err, ErrForbidden) {
		code = codes.PermissionDenied
	}
	remote := ""
	if pr, ok := peer.FromContext(ctx); ok {
		remote = pr.Addr.String()
	}
	a.logger.Info("auth: call refused", "code", code.String(), "method", method, "remote", remote,
		"need", string(need), "err", err)
	return ctx, status.Error(code, err.Error())
}

// GRPCToken extracts the token from the authorization metadata
// ("Bearer <token>"; Bazel's --remote_header=Authorization=Bearer $T).
func GRPCToken(ctx context.Context) string {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ""
	}
	for _, v := range md.Get("authorization") {
		scheme, rest, ok := strings.Cut(v, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// principalStream hands the handler a context carrying the principal.
type principalStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *principalStream) Context() context.Context { return s.ctx }
