package fabrik

import (
	"errors"
	"io"
	"maps"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/tuist/fabrik-node/adapters/fabrikgrpc"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

func TestRoundTrip(t *testing.T) {
	reg := startRegional(t, nil)
	tr := newTier(t, "grpc://"+reg.addr, Options{})
	cases := []struct {
		name string
		ref  messages.Ref
		size int64
	}{
		{"empty key ref", messages.Ref{Namespace: "gradle", Key: "0123abcd"}, 0},
		{"small key ref", messages.Ref{Namespace: "turbo/team_a", Key: "f00d"}, 4 << 10},
		{"multi-MiB key ref", messages.Ref{Namespace: "nx", Key: "big"}, 5<<20 + 17},
		{"cas ref", messages.Ref{Namespace: messages.CAS}, 3<<20 + 1},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			attrs := map[string]string{"x-artifact-duration": "1234", "x-artifact-tag": "sig=="}
			want := putContent(t, tr, tc.ref, uint64(i), tc.size, attrs)
			ref := tc.ref
			if ref.IsCAS() {
				ref.Key = want.Hash
			}
			meta, body, err := tr.Get(ctxT(t), ref)
			if err != nil {
				t.Fatal(err)
			}
			got := hashOf(t, body)
			body.Close()
			if got != want.Hash || meta.Hash != want.Hash || meta.Size != tc.size {
				t.Fatalf("got content %s, meta %s/%d; want %s/%d", got, meta.Hash, meta.Size, want.Hash, tc.size)
			}
			// Attrs belong to a tool key's index entry; a CAS blob has none
			// in the store, so only key refs carry them back.
			wantAttrs := attrs
			if ref.IsCAS() {
				wantAttrs = nil
			}
			if !maps.Equal(meta.Attrs, wantAttrs) || meta.BuildSystem != "test" {
				t.Fatalf("meta %+v lost attrs or build system", meta)
			}
			st, err := tr.Stat(ctxT(t), ref)
			if err != nil || st.Hash != want.Hash || st.Size != tc.size || !maps.Equal(st.Attrs, wantAttrs) {
				t.Fatalf("stat: %+v, %v", st, err)
			}
			if err := tr.Delete(ctxT(t), ref); err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Stat(ctxT(t), ref); !errors.Is(err, tier.ErrNotFound) {
				t.Fatalf("stat after delete: %v, want ErrNotFound", err)
			}
			if err := tr.Delete(ctxT(t), ref); err != nil {
				t.Fatalf("deleting a missing ref: %v", err)
			}
		})
	}
}

func TestReadInSmallPieces(t *testing.T) {
	reg := startRegional(t, nil)
	tr := newTier(t, "grpc://"+reg.addr, Options{})
	ref := messages.Ref{Namespace: "gradle", Key: "pieces"}
	want := putContent(t, tr, ref, 7, 600<<10, nil)
	_, body, err := tr.Get(ctxT(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	// iotest.OneByteReader would take long; 1000-byte reads still cross every
	// chunk boundary at odd offsets, exercising Read rather than WriteTo.
	if got := hashOf(t, struct{ io.Reader }{io.LimitReader(body, 1<<30)}); got != want.Hash {
		t.Fatalf("content %s, want %s", got, want.Hash)
	}
}

func TestGetMissIsErrNotFound(t *testing.T) {
	reg := startRegional(t, nil)
	tr := newTier(t, "grpc://"+reg.addr, Options{})
	_, _, err := tr.Get(ctxT(t), messages.Ref{Namespace: "gradle", Key: "absent"})
	if !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("get miss: %v, want ErrNotFound", err)
	}
	_, err = tr.Stat(ctxT(t), messages.Ref{Namespace: "gradle", Key: "absent"})
	if !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("stat miss: %v, want ErrNotFound", err)
	}
}

func TestPutWrongHashStoresNothing(t *testing.T) {
	reg := startRegional(t, nil)
	tr := newTier(t, "grpc://"+reg.addr, Options{})
	ref := messages.Ref{Namespace: "gradle", Key: "liar"}
	meta := messages.Meta{Hash: hashOf(t, content(1, 300<<10)), Size: 300 << 10}
	err := tr.Put(ctxT(t), ref, meta, content(2, 300<<10))
	if !errors.Is(err, tier.ErrInvalid) || !strings.Contains(err.Error(), "InvalidArgument") {
		t.Fatalf("wrong-hash put: %v, want ErrInvalid from INVALID_ARGUMENT", err)
	}
	if _, err := tr.Stat(ctxT(t), ref); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("after a rejected put: %v, want ErrNotFound", err)
	}
}

func TestPutTruncatedBodyStoresNothing(t *testing.T) {
	reg := startRegional(t, nil)
	tr := newTier(t, "grpc://"+reg.addr, Options{})
	ref := messages.Ref{Namespace: "gradle", Key: "short"}
	size := int64(1 << 20)
	meta := messages.Meta{Hash: hashOf(t, content(3, size)), Size: size}
	// The body ends early: the tier must abort the stream, not close it
	// cleanly, and the regional must not keep the part it received.
	if err := tr.Put(ctxT(t), ref, meta, content(3, size-1)); !errors.Is(err, tier.ErrInvalid) {
		t.Fatalf("truncated put: %v, want ErrInvalid", err)
	}
	// A body that fails mid-read (the local file vanished) aborts too.
	broken := io.MultiReader(content(3, size/2), errReader{errors.New("disk gone")})
	if err := tr.Put(ctxT(t), ref, meta, broken); err == nil || !strings.Contains(err.Error(), "disk gone") {
		t.Fatalf("put with a failing body: %v", err)
	}
	if _, err := tr.Stat(ctxT(t), ref); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("after truncated puts: %v, want ErrNotFound", err)
	}
	if err := tr.Put(ctxT(t), ref, meta, content(3, size+1)); !errors.Is(err, tier.ErrInvalid) {
		t.Fatalf("overlong put: %v, want ErrInvalid", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestRejectsBadTargets(t *testing.T) {
	for _, target := range []string{"http://127.0.0.1:7070", "grpc://127.0.0.1", "grpc:///x", "127.0.0.1:7070", "grpc://127.0.0.1:7070/path"} {
		if _, err := New("bad", target, Options{}); err == nil {
			t.Errorf("New(%q) accepted", target)
		}
	}
}

func TestCloseEarlyCancelsTheStream(t *testing.T) {
	reg := startRegional(t, nil)
	tr := newTier(t, "grpc://"+reg.addr, Options{DialOptions: smallWindows})
	ref := messages.Ref{Namespace: "gradle", Key: "abandoned"}
	putContent(t, tr, ref, 12, 8<<20, nil)
	_, body, err := tr.Get(ctxT(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(body, buf); err != nil {
		t.Fatal(err)
	}
	body.Close()
	if n, err := body.Read(buf); err == nil || err == io.EOF {
		t.Fatalf("read after close: %d bytes, %v", n, err)
	}
	// The connection stays usable for the next request.
	if _, err := tr.Stat(ctxT(t), ref); err != nil {
		t.Fatal(err)
	}
}

// The chunk codec changes no byte on the wire: this client reads from and
// writes to a server that uses gRPC's plain proto codec (an older
// regional, or any server the service is registered on).
func TestPlainProtoServer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	fabrikgrpc.Register(srv, cachetest.New(t), fabrikgrpc.Options{})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	tr := newTier(t, "grpc://"+lis.Addr().String(), Options{})
	ref := messages.Ref{Namespace: "nx", Key: "plain"}
	want := putContent(t, tr, ref, 9, 3<<20+5, nil)
	meta, body, err := tr.Get(ctxT(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if got := hashOf(t, body); got != want.Hash || meta.Size != want.Size {
		t.Fatalf("read back %s (%d bytes), want %s", got, meta.Size, want.Hash)
	}
}
