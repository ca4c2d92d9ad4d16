package fabrik

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// selfSigned returns a server certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "regional-test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// bearer is the shape of the node's machine-token credentials.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return true }

// requireToken stands in for the auth package's interceptors: it proves the
// server accepts caller-supplied options and that the token arrives.
func requireToken(token string) []grpc.ServerOption {
	check := func(ctx context.Context) error {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get("authorization"); len(v) != 1 || v[0] != "Bearer "+token {
			return status.Error(codes.Unauthenticated, "missing or wrong token")
		}
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := check(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := check(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}

func TestTLSWithMachineToken(t *testing.T) {
	cert, pool := selfSigned(t)
	opts := append(requireToken("s3cret"), grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	reg := startRegional(t, nil, opts...)
	target := "grpcs://" + reg.addr
	tlsCfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	tr := newTier(t, target, Options{TLSConfig: tlsCfg, PerRPCCredentials: bearer("s3cret")})
	ref := messages.Ref{Namespace: "gradle", Key: "secure"}
	want := putContent(t, tr, ref, 9, 100<<10, nil)
	_, body, err := tr.Get(ctxT(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	if got := hashOf(t, body); got != want.Hash {
		t.Fatalf("content %s, want %s", got, want.Hash)
	}
	body.Close()

	// A wrong token is refused, and is not mistaken for a miss.
	wrong := newTier(t, target, Options{TLSConfig: tlsCfg, PerRPCCredentials: bearer("guess")})
	_, _, err = wrong.Get(ctxT(t), ref)
	if !isCode(err, codes.Unauthenticated) || errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("wrong token: %v, want UNAUTHENTICATED and not a miss", err)
	}
	// The default grpcs config trusts only system roots, so the self-signed
	// regional is refused.
	untrusted := newTier(t, target, Options{Timeout: 2 * time.Second, PerRPCCredentials: bearer("s3cret")})
	if _, err := untrusted.Stat(ctxT(t), ref); err == nil {
		t.Fatal("a certificate outside the system roots was accepted")
	}
}

func isCode(err error, c codes.Code) bool {
	var st interface{ GRPCStatus() *status.Status }
	return errors.As(err, &st) && st.GRPCStatus().Code() == c
}
