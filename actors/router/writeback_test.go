package router_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/internal/tiertest"
	"github.com/tuist/fabrik-node/messages"
)

// readers are the two ways a client consumes a body: io.Copy (the edge's
// HTTP responses and the regional's Fabrik chunks, through WriteTo) and
// plain Reads of a small buffer (io.ReadFull of a small response).
var readers = map[string]func(dst io.Writer, body io.Reader) (int64, error){
	"WriteTo": io.Copy,
	"Read": func(dst io.Writer, body io.Reader) (int64, error) {
		return io.CopyBuffer(dst, struct{ io.Reader }{body}, make([]byte, 1000))
	},
}

// read reads ref through the cache with one of readers; the body is closed
// before it returns.
func (e *env) read(t *testing.T, r messages.Ref, how string) (string, []byte, error) {
	t.Helper()
	res, err := e.cache.Get(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Found {
		t.Fatalf("%s: miss", r)
	}
	defer res.Body.Close()
	var got bytes.Buffer
	_, err = readers[how](&got, res.Body)
	return res.Tier, got.Bytes(), err
}

// staged lists what write-backs left in the staging directory.
func (e *env) staged(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(e.store.Stager().Dir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	return names
}

// A large hit streams whole through either reader and is written back
// byte for byte: more than the writer's queue (so the client waits for the
// disk at times) and not a multiple of its buffers.
func TestWriteBackLargeBody(t *testing.T) {
	for how := range readers {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, up{})
			want := body(t, 5<<20+12345)
			e.ups[0].Seed(ref("large"), want)
			served, got, err := e.read(t, ref("large"), how)
			if err != nil || served != "upstream-0" || !bytes.Equal(got, want) {
				t.Fatalf("read: tier %q, %d bytes (equal %v), err %v", served, len(got), bytes.Equal(got, want), err)
			}
			eventually(t, "write-back", func() bool { return e.local(ref("large")) })
			if served, got := e.get(t, ref("large")); served != "local" || !bytes.Equal(got, want) {
				t.Fatalf("second read from %q, equal %v", served, bytes.Equal(got, want))
			}
			if left := e.staged(t); len(left) != 0 {
				t.Fatalf("staging files left: %v", left)
			}
		})
	}
}

// A body whose hash does not match, or that is shorter than declared, is
// served (it was already streaming) but never stored, however it is read.
func TestWriteBackRefusesCorruptAndShortBodies(t *testing.T) {
	for how := range readers {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, up{})
			good, bad := body(t, 1<<20), body(t, 1<<20)
			e.ups[0].SeedAs(ref("corrupt"), messages.Meta{Hash: tiertest.Hash(good), Size: int64(len(bad))}, bad)
			e.ups[0].SeedAs(ref("short"), messages.Meta{Hash: tiertest.Hash(good), Size: int64(len(good)) + 1}, good)
			e.ups[0].Seed(ref("sound"), good)
			for _, k := range []string{"corrupt", "short", "sound"} {
				if _, _, err := e.read(t, ref(k), how); err != nil {
					t.Fatalf("%s: %v", k, err)
				}
			}
			eventually(t, "write-back of the sound body", func() bool { return e.local(ref("sound")) })
			eventually(t, "the refused bodies' staging files removed", func() bool { return len(e.staged(t)) == 0 })
			if e.local(ref("corrupt")) || e.local(ref("short")) {
				t.Fatal("a corrupt or short body was written back")
			}
		})
	}
}

// failAfter is an upstream body that breaks after n bytes.
type failAfter struct {
	io.ReadCloser
	n int
}

var errCut = errors.New("connection reset mid-body")

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errCut
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.ReadCloser.Read(p)
	f.n -= n
	return n, err
}

// A body that fails mid-stream reaches the client as an error, and a
// client that stops reading early leaves nothing: no blob, no staging file.
func TestWriteBackAbandoned(t *testing.T) {
	for how := range readers {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, up{})
			e.ups[0].Seed(ref("cut"), body(t, 3<<20))
			e.ups[0].Body = func(r messages.Ref, b io.ReadCloser) io.ReadCloser {
				if r == ref("cut") {
					return &failAfter{ReadCloser: b, n: 1<<20 + 7}
				}
				return b
			}
			if _, got, err := e.read(t, ref("cut"), how); !errors.Is(err, errCut) || len(got) != 1<<20+7 {
				t.Fatalf("cut body: %d bytes, err %v; want %d and the upstream's error", len(got), err, 1<<20+7)
			}

			e.ups[0].Seed(ref("early"), body(t, 3<<20))
			res, err := e.cache.Get(context.Background(), ref("early"))
			if err != nil || !res.Found {
				t.Fatal(res, err)
			}
			if _, err := io.CopyN(io.Discard, res.Body, 1<<20); err != nil {
				t.Fatal(err)
			}
			res.Body.Close()

			eventually(t, "staging files removed", func() bool { return len(e.staged(t)) == 0 })
			time.Sleep(50 * time.Millisecond) // a commit would have been quick
			if e.local(ref("cut")) || e.local(ref("early")) {
				t.Fatal("a partial body was written back")
			}
		})
	}
}

// When no staging file can be created the client is still served in full;
// nothing is stored.
func TestWriteBackWithoutStaging(t *testing.T) {
	for how := range readers {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, up{})
			want := body(t, 1<<20+3)
			e.ups[0].Seed(ref("k"), want)
			dir := e.store.Stager().Dir()
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.MkdirAll(dir, 0o755) })
			if _, got, err := e.read(t, ref("k"), how); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read without staging: %d bytes, err %v", len(got), err)
			}
			time.Sleep(50 * time.Millisecond)
			if e.local(ref("k")) {
				t.Fatal("stored without a staging file")
			}
		})
	}
}
