package fabrik

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/messages"
	fabrikv1 "github.com/tuist/fabrik-node/proto/fabrik/v1"
	"github.com/tuist/fabrik-node/tier"
)

// cutter cuts the first `cut` Get streams after `after` messages (the
// metadata and after-1 chunks) with INTERNAL "unexpected EOF": what a load
// balancer reports when the regional behind a stream is killed mid-body.
// Later Gets are served whole.
type cutter struct {
	cut, after int32
	gets       atomic.Int32
	// before runs once, just before the first cut (e.g. to change the
	// artifact under the stream).
	before func()
}

var errCut = errors.New("cut")

type cutStream struct {
	grpc.ServerStream
	left int32
}

func (s *cutStream) SendMsg(m any) error {
	if s.left == 0 {
		return errCut
	}
	s.left--
	return s.ServerStream.SendMsg(m)
}

func (c *cutter) options() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if info.FullMethod != fabrikv1.FabrikCache_Get_FullMethodName {
			return h(srv, ss)
		}
		n := c.gets.Add(1)
		if n > c.cut {
			return h(srv, ss)
		}
		cs := &cutStream{ServerStream: ss, left: c.after}
		err := h(srv, cs)
		if cs.left == 0 {
			if n == 1 && c.before != nil {
				c.before()
			}
			return status.Error(codes.Internal, "unexpected EOF")
		}
		return err
	})}
}

// A Get stream that breaks mid-body, as behind a load balancer when its
// regional dies, continues on a new stream from where the reader was: the
// reader sees the artifact whole and byte-identical, never the break.
func TestGetResumesAStreamCutMidBody(t *testing.T) {
	for _, after := range []int32{1, 2, 5} { // right after the metadata; after 1 and 4 chunks
		c := &cutter{cut: 1, after: after}
		reg := startRegional(t, nil, c.options()...)
		tr := newTier(t, "grpc://"+reg.addr, Options{})
		ref := messages.Ref{Namespace: "gradle", Key: "resumed"}
		size := int64(3<<20 + 12345) // 13 chunks, the last one short
		meta := putContent(t, tr, ref, 21, size, nil)

		gm, body, err := tr.Get(ctxT(t), ref)
		if err != nil {
			t.Fatalf("after=%d: get: %v", after, err)
		}
		// Odd-sized reads, so the resume point falls inside a chunk of
		// the reader's buffer as well as on the stream's chunk boundary.
		var got bytes.Buffer
		buf := make([]byte, 100_003)
		for {
			n, err := body.Read(buf)
			got.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("after=%d: read after %d bytes: %v", after, got.Len(), err)
			}
		}
		body.Close()
		if gm.Hash != meta.Hash || !bytes.Equal(got.Bytes(), mustRead(t, content(21, size))) {
			t.Fatalf("after=%d: %d bytes read, not the %d stored", after, got.Len(), size)
		}
		if n := c.gets.Load(); n != 2 {
			t.Fatalf("after=%d: %d Get streams, want 2 (one cut, one resumed)", after, n)
		}
	}
}

// Resuming is bounded like retrying: a body whose every stream is cut
// fails after readAttempts streams, never with a clean EOF.
func TestGetResumesAreBounded(t *testing.T) {
	c := &cutter{cut: 1000, after: 3}
	reg := startRegional(t, nil, c.options()...)
	tr := newTier(t, "grpc://"+reg.addr, Options{})
	ref := messages.Ref{Namespace: "gradle", Key: "always-cut"}
	putContent(t, tr, ref, 22, 2<<20, nil)

	_, body, err := tr.Get(ctxT(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	n, err := io.Copy(io.Discard, body)
	if err == nil || status.Code(err) != codes.Internal {
		t.Fatalf("read %d bytes of an always-cut stream: %v, want the cut's INTERNAL error", n, err)
	}
	if got := c.gets.Load(); got != readAttempts {
		t.Fatalf("%d Get streams, want %d", got, readAttempts)
	}
}

// A resumed stream must serve the artifact that was being read: when the
// key names another blob by then, the read fails rather than splice two
// artifacts together.
func TestGetResumeRefusesAnotherArtifact(t *testing.T) {
	c := &cutter{cut: 1, after: 3}
	reg := startRegional(t, nil, c.options()...)
	tr := newTier(t, "grpc://"+reg.addr, Options{})
	ref := messages.Ref{Namespace: "gradle", Key: "rewritten"}
	putContent(t, tr, ref, 23, 2<<20, nil)
	c.before = func() {
		if err := tr.Put(context.Background(), ref, messages.Meta{Hash: hashOf(t, content(24, 2<<20)), Size: 2 << 20}, content(24, 2<<20)); err != nil {
			t.Errorf("rewrite the key: %v", err)
		}
	}

	_, body, err := tr.Get(ctxT(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if n, err := io.Copy(io.Discard, body); err == nil || !bytes.Contains([]byte(err.Error()), []byte("another artifact")) {
		t.Fatalf("read %d bytes across a rewrite of the key: %v, want a refused resume", n, err)
	}
}

// Get receives the first chunk before it returns, so an artifact of one
// chunk is whole or absent: cut before its chunk, and gone from the
// regional the resumed stream reaches (its only copy was on the regional
// that died), it is a miss, not a body that breaks after "found".
func TestGetOfACutOneChunkArtifactIsAMiss(t *testing.T) {
	c := &cutter{cut: 1, after: 1} // the metadata only
	reg := startRegional(t, nil, c.options()...)
	tr := newTier(t, "grpc://"+reg.addr, Options{})
	ref := messages.Ref{Namespace: "gradle", Key: "only-copy"}
	putContent(t, tr, ref, 25, 100<<10, nil)
	c.before = func() {
		if err := tr.Delete(context.Background(), ref); err != nil {
			t.Errorf("delete: %v", err)
		}
	}
	if _, body, err := tr.Get(ctxT(t), ref); !errors.Is(err, tier.ErrNotFound) {
		if body != nil {
			body.Close()
		}
		t.Fatalf("get of a one-chunk artifact cut before its chunk and gone: %v, want ErrNotFound", err)
	}
	if n := c.gets.Load(); n != 2 {
		t.Fatalf("%d Get streams, want 2 (one cut, one resumed)", n)
	}
}
