package fabrik

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// smallWindows stops gRPC's flow-control windows from growing, so a server
// cannot push a whole artifact into the client's buffers before a test
// breaks it.
var smallWindows = []grpc.DialOption{grpc.WithInitialWindowSize(64 << 10), grpc.WithInitialConnWindowSize(64 << 10)}

func TestServerStoppedMidGetIsReadError(t *testing.T) {
	reg := startRegional(t, nil)
	tr := newTier(t, "grpc://"+reg.addr, Options{DialOptions: smallWindows})
	ref := messages.Ref{Namespace: "gradle", Key: "interrupted"}
	size := int64(16 << 20)
	putContent(t, tr, ref, 11, size, nil)

	_, body, err := tr.Get(ctxT(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if _, err := io.CopyN(io.Discard, body, 256<<10); err != nil {
		t.Fatal(err)
	}
	reg.srv.Stop()
	n, err := io.Copy(io.Discard, body)
	if err == nil {
		t.Fatalf("read %d more bytes and a clean EOF after the server stopped", n)
	}
	if 256<<10+n >= size {
		t.Fatalf("the whole artifact arrived; the test did not interrupt anything")
	}
	t.Logf("after %d bytes: %v", 256<<10+n, err)
}

func TestServerDownFailsFast(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens: connections are refused
	tr := newTier(t, "grpc://"+addr, Options{Timeout: 5 * time.Second})
	ref := messages.Ref{Namespace: "gradle", Key: "k"}
	start := time.Now()
	_, _, err = tr.Get(ctxT(t), ref)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("get from a dead regional: %v, want ErrUnavailable", err)
	}
	if _, err := tr.Stat(ctxT(t), ref); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("stat: %v", err)
	}
	if err := tr.Put(ctxT(t), ref, messages.Meta{Hash: hashOf(t, content(1, 10)), Size: 10}, content(1, 10)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("put: %v", err)
	}
	// A refused connection must not wait for the timeout.
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v against a refused port", d)
	}
}

// blackhole accepts TCP connections and never speaks: a regional that hangs.
func blackhole(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return lis.Addr().String()
}

func TestHungServerTimesOut(t *testing.T) {
	timeout := 300 * time.Millisecond
	addr := blackhole(t)
	ref := messages.Ref{Namespace: "gradle", Key: "k"}
	// A fresh tier per call: once one call has timed out the connection is
	// in backoff and later calls fail at once, which hides the timeout path.
	check := func(op string, f func(tr *Tier) error) {
		tr := newTier(t, "grpc://"+addr, Options{Timeout: timeout})
		start := time.Now()
		err := f(tr)
		d := time.Since(start)
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s against a hung regional: %v, want ErrUnavailable", op, err)
		}
		if d < timeout/2 || d > 5*timeout {
			t.Errorf("%s took %v with a %v timeout", op, d, timeout)
		}
		// Now in backoff: the next call fails without waiting.
		start = time.Now()
		if err := f(tr); !errors.Is(err, ErrUnavailable) || time.Since(start) > timeout/2 {
			t.Errorf("%s again: %v after %v, want a fast ErrUnavailable", op, err, time.Since(start))
		}
	}
	check("get", func(tr *Tier) error { _, _, err := tr.Get(context.Background(), ref); return err })
	check("stat", func(tr *Tier) error { _, err := tr.Stat(context.Background(), ref); return err })
	check("put", func(tr *Tier) error {
		return tr.Put(context.Background(), ref, messages.Meta{Hash: hashOf(t, content(1, 10)), Size: 10}, content(1, 10))
	})
}

// pacedCache serves a real cache's bodies with a pause before each read the
// server makes (from the from-th on), to stand in for a regional reading
// slowly from S3. It honours the request's context so a cancelled stream
// ends at once.
type pacedCache struct {
	adapters.Cache
	pause time.Duration
	from  int
}

func (c pacedCache) Get(ctx context.Context, ref messages.Ref) (*messages.GetResult, error) {
	res, err := c.Cache.Get(ctx, ref)
	if err == nil && res.Found {
		res.Body = &pacedBody{ReadCloser: res.Body, ctx: ctx, pause: c.pause, prompt: c.from}
	}
	return res, err
}

type pacedBody struct {
	io.ReadCloser
	ctx    context.Context
	pause  time.Duration
	prompt int // reads left before the pauses start
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.prompt > 0 {
		b.prompt--
		return b.ReadCloser.Read(p)
	}
	select {
	case <-time.After(b.pause):
	case <-b.ctx.Done():
		return 0, b.ctx.Err()
	}
	return b.ReadCloser.Read(p)
}

func TestGetTimeoutIsPerChunkNotPerTransfer(t *testing.T) {
	cache := cachetest.New(t)
	ref := messages.Ref{Namespace: "gradle", Key: "slow"}
	size := int64(8 * 256 << 10) // eight chunks
	putContent(t, newTier(t, "grpc://"+startRegional(t, cache).addr, Options{}), ref, 5, size, nil)

	timeout := 400 * time.Millisecond
	// Each chunk takes 100 ms: the transfer outlasts the timeout and must
	// still succeed, because the regional never goes quiet for that long.
	moving := newTier(t, "grpc://"+startRegional(t, pacedCache{cache, 100 * time.Millisecond, 0}).addr, Options{Timeout: timeout, DialOptions: smallWindows})
	start := time.Now()
	_, body, err := moving.Get(ctxT(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, body)
	body.Close()
	if err != nil || n != size {
		t.Fatalf("slow but moving transfer: %d bytes, %v", n, err)
	}
	if d := time.Since(start); d < timeout {
		t.Fatalf("transfer took %v, not longer than the %v timeout; the test proves nothing", d, timeout)
	}

	// A regional that stalls longer than the timeout before the first
	// chunk fails Get itself, which waits for that chunk.
	stalled := newTier(t, "grpc://"+startRegional(t, pacedCache{cache, 3 * timeout, 0}).addr, Options{Timeout: timeout})
	start = time.Now()
	if _, _, err := stalled.Get(ctxT(t), ref); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("regional stalled before the first chunk: get %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*timeout {
		t.Fatalf("stall before the first chunk detected after %v with a %v timeout", d, timeout)
	}

	// A regional that stalls longer than the timeout between chunks is cut.
	stalled = newTier(t, "grpc://"+startRegional(t, pacedCache{cache, 3 * timeout, 1}).addr, Options{Timeout: timeout})
	// The metadata and the first chunk come before the pauses, so Get
	// succeeds and the stall surfaces as a read error.
	_, body, err = stalled.Get(ctxT(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	start = time.Now()
	n, err = io.Copy(io.Discard, body)
	if !errors.Is(err, ErrUnavailable) || n == size {
		t.Fatalf("stalled regional: read %d bytes, %v; want ErrUnavailable", n, err)
	}
	if d := time.Since(start); d > 3*timeout {
		t.Fatalf("stall detected after %v with a %v timeout", d, timeout)
	}
}
