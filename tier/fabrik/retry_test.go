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
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/messages"
	fabrikv1 "github.com/tuist/fabrik-node/proto/fabrik/v1"
)

// flaky fails the first `fail` calls of every method with UNAVAILABLE, as a
// load balancer does for a stream it sent to a regional that just died.
// With headersFirst the stream dies after its response headers, so gRPC's
// own transparent retry cannot help and only the tier's retry can.
type flaky struct {
	fail         atomic.Int32
	headersFirst bool
	calls        map[string]*atomic.Int32
}

func newFlaky(fail int32, headersFirst bool) *flaky {
	f := &flaky{headersFirst: headersFirst, calls: map[string]*atomic.Int32{}}
	f.fail.Store(fail)
	for _, m := range []string{fabrikv1.FabrikCache_Exists_FullMethodName, fabrikv1.FabrikCache_Get_FullMethodName, fabrikv1.FabrikCache_Put_FullMethodName} {
		f.calls[m] = &atomic.Int32{}
	}
	return f
}

func (f *flaky) options() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if f.calls[info.FullMethod].Add(1) <= f.fail.Load() {
				return nil, status.Error(codes.Unavailable, "regional went away")
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if f.calls[info.FullMethod].Add(1) <= f.fail.Load() {
				if f.headersFirst {
					ss.SendHeader(metadata.Pairs("x-test", "dying"))
				}
				return status.Error(codes.Unavailable, "regional went away")
			}
			return h(srv, ss)
		}),
	}
}

func TestReadsRetryAStreamThatDiesBeforeItsFirstByte(t *testing.T) {
	for _, headersFirst := range []bool{false, true} {
		f := newFlaky(0, headersFirst)
		reg := startRegional(t, nil, f.options()...)
		tr := newTier(t, "grpc://"+reg.addr, Options{})
		ref := messages.Ref{Namespace: "gradle", Key: "retry"}
		meta := putContent(t, tr, ref, 7, 300<<10, nil)

		// Every method now fails its first two calls: reads get through on
		// the third try, writes are not retried.
		f.fail.Store(2)
		for _, c := range f.calls {
			c.Store(0)
		}
		got, err := tr.Stat(ctxT(t), ref)
		if err != nil || got.Hash != meta.Hash {
			t.Fatalf("headersFirst=%v: stat: %+v, %v", headersFirst, got, err)
		}
		gm, body, err := tr.Get(ctxT(t), ref)
		if err != nil {
			t.Fatalf("headersFirst=%v: get: %v", headersFirst, err)
		}
		data, err := io.ReadAll(body)
		body.Close()
		if err != nil || gm.Size != meta.Size || !bytes.Equal(data, mustRead(t, content(7, 300<<10))) {
			t.Fatalf("headersFirst=%v: get body: %d bytes, %v", headersFirst, len(data), err)
		}
		if n := f.calls[fabrikv1.FabrikCache_Exists_FullMethodName].Load(); n != 3 {
			t.Errorf("headersFirst=%v: Exists reached the regional %d times, want 3 (2 failures + 1)", headersFirst, n)
		}
		if n := f.calls[fabrikv1.FabrikCache_Get_FullMethodName].Load(); n != 3 {
			t.Errorf("headersFirst=%v: Get reached the regional %d times, want 3", headersFirst, n)
		}
		err = tr.Put(ctxT(t), ref, meta, content(7, 300<<10))
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("headersFirst=%v: put against a failing regional: %v, want ErrUnavailable", headersFirst, err)
		}
		if n := f.calls[fabrikv1.FabrikCache_Put_FullMethodName].Load(); n != 1 {
			t.Errorf("headersFirst=%v: Put reached the regional %d times, want 1 (writes are not retried)", headersFirst, n)
		}
	}
}

// Retries are bounded: a regional that keeps failing is reported
// unavailable after readAttempts tries.
func TestReadRetriesAreBounded(t *testing.T) {
	f := newFlaky(1000, true)
	reg := startRegional(t, nil, f.options()...)
	tr := newTier(t, "grpc://"+reg.addr, Options{})
	ref := messages.Ref{Namespace: "gradle", Key: "never"}
	if _, _, err := tr.Get(ctxT(t), ref); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("get: %v, want ErrUnavailable", err)
	}
	if n := f.calls[fabrikv1.FabrikCache_Get_FullMethodName].Load(); n != readAttempts {
		t.Fatalf("Get reached the regional %d times, want %d", n, readAttempts)
	}
}

func mustRead(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
