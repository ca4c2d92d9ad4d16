package bazel

import (
	"fmt"
	"strings"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/internal/hexhash"
	"github.com/tuist/fabrik-node/messages"
)

// emptyHash is the SHA-256 of no bytes. The REAPI lets clients assume the
// empty blob always exists, so it is never stored, never reported missing and
// always read back as nothing.
const emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// acNamespace is the prefix of Action Cache namespaces (see the package doc).
const acNamespace = "bazel-ac"

// digest is a validated REAPI digest.
type digest struct {
	hash string
	size int64
}

func (d digest) isEmpty() bool { return d.size == 0 && d.hash == emptyHash }

func (d digest) casRef() messages.Ref { return messages.Ref{Namespace: messages.CAS, Key: d.hash} }

func (d digest) String() string { return fmt.Sprintf("%s/%d", d.hash, d.size) }

// parseDigest validates a client digest: 64 lower-case hex characters (the
// only function we announce is SHA-256) and a non-negative size.
func parseDigest(d *repb.Digest) (digest, error) {
	if d == nil {
		return digest{}, fmt.Errorf("digest is missing")
	}
	if err := checkHash(d.Hash); err != nil {
		return digest{}, err
	}
	if d.SizeBytes < 0 {
		return digest{}, fmt.Errorf("digest %s has negative size %d", d.Hash, d.SizeBytes)
	}
	return digest{hash: d.Hash, size: d.SizeBytes}, nil
}

func checkHash(h string) error {
	if len(h) != 64 {
		return fmt.Errorf("hash %q is %d characters long, a SHA-256 hash has 64", truncate(h), len(h))
	}
	if !hexhash.Valid(h) {
		return fmt.Errorf("hash %q is not lower-case hex", truncate(h))
	}
	return nil
}

// truncate keeps error messages short when a client sends garbage.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// invalid builds an INVALID_ARGUMENT status naming what was wrong.
func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// reservedSegments may not appear in an instance name, so that resource names
// parse unambiguously (REAPI, "ByteStream resource names").
var reservedSegments = map[string]bool{
	"blobs": true, "uploads": true, "actions": true, "actionResults": true,
	"operations": true, "capabilities": true, "compressed-blobs": true,
}

// checkInstance validates an instance name. Any name is accepted (each gets
// its own Action Cache namespace) except ones that would make resource names
// ambiguous or namespaces odd: reserved words, empty, "." or ".." segments.
func checkInstance(name string) error {
	if name == "" {
		return nil
	}
	for _, seg := range strings.Split(name, "/") {
		switch {
		case seg == "" || seg == "." || seg == "..":
			return invalid("instance name %q has an empty, '.' or '..' segment", truncate(name))
		case reservedSegments[seg]:
			return invalid("instance name %q contains the reserved segment %q", truncate(name), seg)
		}
	}
	return nil
}

// checkDigestFunction rejects requests that name a digest function other
// than SHA-256 (UNKNOWN means the client relies on the hash length).
func checkDigestFunction(f repb.DigestFunction_Value) error {
	if f != repb.DigestFunction_UNKNOWN && f != repb.DigestFunction_SHA256 {
		return invalid("digest function %s is not supported, only SHA256", f)
	}
	return nil
}

// acRef is where the result of an action lives for an instance.
func acRef(instance string, action digest) messages.Ref {
	ns := acNamespace
	if instance != "" {
		ns += "/" + instance
	}
	return messages.Ref{Namespace: ns, Key: action.hash}
}
