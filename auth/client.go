package auth

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/tuist/fabrik-node/config"
)

// tokenFileCheckInterval bounds how often token_file is looked at again: a
// `tuist auth login` is picked up within a second, without a stat per RPC.
const tokenFileCheckInterval = time.Second

// TokenSource is this node's own machine token, presented to its upstreams.
// An edge forwards this token, never the build tool's: the upstream trusts
// the node, and a developer's token may lack what the node needs.
//
// Precedence: auth.token, then auth.token_file (re-read when it changes),
// then the FABRIK_TOKEN environment variable. With none, requests carry no
// credentials. A nil *TokenSource carries none either.
type TokenSource struct {
	logger *slog.Logger

	mu        sync.Mutex // guards everything below
	static    string     // auth.token or FABRIK_TOKEN
	file      string     // auth.token_file
	fileToken string
	fileRaw   []byte
	checked   time.Time // when file was last read
}

// NewTokenSource builds the source from [auth].
func NewTokenSource(cfg config.AuthConfig, logger *slog.Logger) *TokenSource {
	if logger == nil {
		logger = slog.Default()
	}
	s := &TokenSource{logger: logger}
	s.configure(cfg)
	return s
}

func (s *TokenSource) configure(cfg config.AuthConfig) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.static, s.file = cfg.Token, ""
	s.fileToken, s.fileRaw, s.checked = "", nil, time.Time{}
	switch {
	case cfg.Token != "":
	case cfg.TokenFile != "":
		s.file = cfg.TokenFile
	default:
		s.static = os.Getenv("FABRIK_TOKEN")
	}
}

// Token returns the current token, "" when none is configured. A token file
// that does not exist yet (the user has not logged in) is not an error; one
// that exists but cannot be read is.
func (s *TokenSource) Token() (string, error) {
	if s == nil {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == "" {
		return s.static, nil
	}
	now := time.Now()
	if !s.checked.IsZero() && now.Sub(s.checked) < tokenFileCheckInterval {
		return s.fileToken, nil
	}
	s.checked = now
	raw, err := os.ReadFile(s.file)
	if os.IsNotExist(err) {
		s.fileToken, s.fileRaw = "", nil
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("auth.token_file: %w", err)
	}
	if !bytes.Equal(raw, s.fileRaw) {
		s.fileRaw = raw
		s.fileToken = string(bytes.TrimSpace(raw))
		s.logger.Info("auth: machine token loaded", "path", s.file)
	}
	return s.fileToken, nil
}

// SetHeader sets Authorization: Bearer on h when a token is configured.
func (s *TokenSource) SetHeader(h http.Header) error {
	tok, err := s.Token()
	if err != nil {
		return err
	}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

// Credentials returns the token as gRPC per-RPC credentials, for
// grpc.WithPerRPCCredentials. It works over plaintext (grpc:// on loopback
// or inside a private network) as well as TLS.
func (s *TokenSource) Credentials() credentials.PerRPCCredentials { return perRPC{s} }

type perRPC struct{ s *TokenSource }

func (p perRPC) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	tok, err := p.s.Token()
	if err != nil || tok == "" {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity is false: whether plaintext is acceptable is the
// operator's choice of grpc:// or grpcs://, not this package's.
func (perRPC) RequireTransportSecurity() bool { return false }

var _ credentials.PerRPCCredentials = perRPC{}
