package fabrikgrpc

import (
	"context"
	"fmt"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
	fabrikv1 "github.com/tuist/fabrik-node/proto/fabrik/v1"
)

// Bounds on names: they end up in index keys and file names, so a client must
// not be able to send megabytes of key or bytes that break a path.
const (
	maxNamespaceLen = 256
	maxKeyLen       = 1024
)

// refFromProto validates a wire ref; errors are INVALID_ARGUMENT statuses.
func refFromProto(r *fabrikv1.Ref) (messages.Ref, error) {
	ref := messages.Ref{Namespace: r.GetNamespace(), Key: r.GetKey()}
	if err := checkName("namespace", ref.Namespace, maxNamespaceLen); err != nil {
		return ref, err
	}
	if err := checkName("key", ref.Key, maxKeyLen); err != nil {
		return ref, err
	}
	if ref.IsCAS() && !IsSHA256Hex(ref.Key) {
		return ref, status.Errorf(codes.InvalidArgument, "cas key %q is not a lower-case hex SHA-256", ref.Key)
	}
	return ref, nil
}

func checkName(what, s string, max int) error {
	switch {
	case s == "":
		return status.Errorf(codes.InvalidArgument, "ref %s is empty", what)
	case len(s) > max:
		return status.Errorf(codes.InvalidArgument, "ref %s is %d bytes, the limit is %d", what, len(s), max)
	case !utf8.ValidString(s):
		return status.Errorf(codes.InvalidArgument, "ref %s is not valid UTF-8", what)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return status.Errorf(codes.InvalidArgument, "ref %s contains a control character", what)
		}
	}
	return nil
}

// IsSHA256Hex reports whether s is a lower-case hex SHA-256, the only hash
// form the store uses (an upper-case digest would name a different file).
func IsSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func metaToProto(m messages.Meta) *fabrikv1.Meta {
	return &fabrikv1.Meta{Hash: m.Hash, Size: m.Size, BuildSystem: m.BuildSystem, Attrs: m.Attrs}
}

// status maps a cache error to the code a Fabrik client acts on: INVALID_ARGUMENT
// is never retried, RESOURCE_EXHAUSTED means stop writing, everything
// unexpected is INTERNAL and logged here because only the server can see why.
func (s *service) status(ctx context.Context, op, ref string, err error) error {
	if st, ok := adapters.GRPCStatus(err); ok {
		return st
	}
	s.log.ErrorContext(ctx, "fabrik request failed", "op", op, "ref", ref, "err", err)
	return status.Error(codes.Internal, fmt.Sprintf("%s %s: %v", op, ref, err))
}
