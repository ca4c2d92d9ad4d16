package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/internal/minio"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// A dead or hung S3 must turn into an error within the tier's timeout: the
// router counts it and answers a miss, and the build goes on.
func TestUnavailableServerFailsWithinTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 1500 * time.Millisecond
	const slack = 2 * time.Second
	srv := minio.Start(t)
	srv.CreateBucket(t, "cache")
	tr := newTier(t, srv, "cache", "", timeout)
	ctx := context.Background()
	data, meta := content(10, 128<<20)
	ref := messages.Ref{Namespace: messages.CAS, Key: meta.Hash}
	if err := tr.Put(ctx, ref, meta, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}

	// within runs op and checks it fails, not as a miss, before the deadline.
	within := func(t *testing.T, what string, wantTimeout bool, op func() error) {
		t.Helper()
		start := time.Now()
		err := op()
		elapsed := time.Since(start)
		if err == nil || errors.Is(err, tier.ErrNotFound) {
			t.Fatalf("%s: %v, want a failure that is not a miss", what, err)
		}
		if elapsed > timeout+slack {
			t.Fatalf("%s took %s, timeout is %s", what, elapsed, timeout)
		}
		if wantTimeout && !errors.Is(err, ErrTimeout) {
			t.Fatalf("%s: %v, want ErrTimeout", what, err)
		}
		t.Logf("%s failed after %s: %v", what, elapsed.Round(time.Millisecond), err)
	}

	t.Run("paused mid-stream", func(t *testing.T) {
		_, body, err := tr.Get(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		defer body.Close()
		if _, err := io.ReadFull(body, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		srv.Pause(t)
		defer srv.Resume(t)
		// 128 MiB is far more than the loopback socket buffers hold, so the read
		// must wait on the frozen server.
		within(t, "read", true, func() error { _, err := io.Copy(io.Discard, body); return err })
	})

	t.Run("paused", func(t *testing.T) {
		srv.Pause(t)
		defer srv.Resume(t)
		within(t, "get", true, func() error { _, _, err := tr.Get(ctx, ref); return err })
		within(t, "stat", true, func() error { _, err := tr.Stat(ctx, ref); return err })
		b, m := content(11, 1000)
		within(t, "put", true, func() error {
			return tr.Put(ctx, messages.Ref{Namespace: "gradle", Key: "k"}, m, bytes.NewReader(b))
		})
	})

	t.Run("stopped", func(t *testing.T) {
		srv.Stop()
		within(t, "get", false, func() error { _, _, err := tr.Get(ctx, ref); return err })
		within(t, "delete", false, func() error { return tr.Delete(ctx, ref) })
	})

	t.Run("restarted", func(t *testing.T) {
		srv.Restart(t)
		// The same Tier (and its connection pool) recovers once S3 is back.
		if _, got := readAll(t, tr, ref); !bytes.Equal(got, data) {
			t.Fatal("content differs after restart")
		}
	})
}

// A Get for a caller whose context is cancelled must not wait for the timeout.
func TestCallerCancellation(t *testing.T) {
	t.Parallel()
	srv := minio.Start(t)
	srv.CreateBucket(t, "cache")
	tr := newTier(t, srv, "cache", "", time.Minute)
	srv.Pause(t)
	defer srv.Resume(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := tr.Stat(ctx, messages.Ref{Namespace: "gradle", Key: "k"})
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("stat with cancelled caller: %v after %s", err, time.Since(start))
	}
	if errors.Is(err, ErrTimeout) {
		t.Fatalf("caller cancellation reported as tier timeout: %v", err)
	}
}
