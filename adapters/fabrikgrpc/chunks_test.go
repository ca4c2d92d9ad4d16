package fabrikgrpc

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
	fabrikv1 "github.com/tuist/fabrik-node/proto/fabrik/v1"
)

// bodyCache answers every Get with a body the test builds, declaring size.
type bodyCache struct {
	adapters.Cache
	size int64
	body func() io.ReadCloser
}

func (c bodyCache) Get(context.Context, messages.Ref) (*messages.GetResult, error) {
	return &messages.GetResult{Found: true, Meta: messages.Meta{Hash: "h", Size: c.size}, Body: c.body()}, nil
}

// pieces writes its bytes to whoever reads it in pieces of the given
// sizes, through WriteTo (how a write-back tee hands over its buffers).
type pieces struct {
	b     []byte
	sizes []int
}

func (p *pieces) Read([]byte) (int, error) { return 0, errors.New("pieces: use WriteTo") }
func (p *pieces) Close() error             { return nil }

func (p *pieces) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for i := 0; len(p.b) > 0; i++ {
		k := min(p.sizes[i%len(p.sizes)], len(p.b))
		m, err := w.Write(p.b[:k])
		n += int64(m)
		if err != nil {
			return n, err
		}
		p.b = p.b[k:]
	}
	return n, nil
}

// trickle returns at most n bytes a Read (a network stream).
type trickle struct {
	r io.Reader
	n int
}

func (t *trickle) Read(p []byte) (int, error) { return t.r.Read(p[:min(len(p), t.n)]) }
func (t *trickle) Close() error               { return nil }

// getAll reads a Get stream: the chunks' sizes and their bytes, and the
// status it ended with.
func getAll(t *testing.T, c fabrikv1.FabrikCacheClient) ([]int, []byte, error) {
	t.Helper()
	stream, err := c.Get(context.Background(), &fabrikv1.GetRequest{Ref: &fabrikv1.Ref{Namespace: "nx", Key: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	var got []byte
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return sizes, got, nil
		}
		if err != nil {
			return sizes, got, err
		}
		if msg.GetMeta() == nil {
			sizes = append(sizes, len(msg.GetChunk()))
			got = append(got, msg.GetChunk()...)
		}
	}
}

// Whatever pieces a body comes in (whole buffers through WriteTo, a few
// KiB per Read), a Get sends full chunks and only the last one short.
func TestGetSendsFullChunks(t *testing.T) {
	want := make([]byte, 3*fabrikv1.ChunkSize+1234)
	rand.Read(want)
	bodies := map[string]func() io.ReadCloser{
		"whole chunks": func() io.ReadCloser { return &pieces{b: want, sizes: []int{fabrikv1.ChunkSize}} },
		"odd pieces": func() io.ReadCloser {
			return &pieces{b: want, sizes: []int{1, 300 << 10, 5, fabrikv1.ChunkSize, 70 << 10}}
		},
		"large pieces":  func() io.ReadCloser { return &pieces{b: want, sizes: []int{2*fabrikv1.ChunkSize + 3}} },
		"trickle reads": func() io.ReadCloser { return &trickle{r: bytes.NewReader(want), n: 16 << 10} },
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			c := serve(t, bodyCache{Cache: cachetest.New(t), size: int64(len(want)), body: body}, Options{})
			sizes, got, err := getAll(t, c)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes (equal %v), err %v", len(got), bytes.Equal(got, want), err)
			}
			for i, n := range sizes {
				if n != fabrikv1.ChunkSize && i != len(sizes)-1 || n > fabrikv1.ChunkSize || n == 0 {
					t.Fatalf("chunk sizes %v: want %d each but the last", sizes, fabrikv1.ChunkSize)
				}
			}
		})
	}
}

// A body longer or shorter than its recorded size ends the stream with an
// error, never a clean end the client would take for the artifact.
func TestGetBodyOfTheWrongSize(t *testing.T) {
	b := make([]byte, fabrikv1.ChunkSize+10)
	for _, tc := range []struct {
		name string
		size int64
		want codes.Code
	}{
		{"longer", int64(len(b)) - 1, codes.Internal},
		{"shorter", int64(len(b)) + 1, codes.DataLoss},
	} {
		for how, body := range map[string]func() io.ReadCloser{
			"WriteTo": func() io.ReadCloser { return &pieces{b: b, sizes: []int{fabrikv1.ChunkSize}} },
			"Read":    func() io.ReadCloser { return &trickle{r: bytes.NewReader(b), n: 4096} },
		} {
			t.Run(tc.name+"/"+how, func(t *testing.T) {
				c := serve(t, bodyCache{Cache: cachetest.New(t), size: tc.size, body: body}, Options{})
				_, got, err := getAll(t, c)
				assertCode(t, err, tc.want)
				if int64(len(got)) > tc.size {
					t.Fatalf("%d bytes sent of a %d-byte artifact", len(got), tc.size)
				}
			})
		}
	}
}
