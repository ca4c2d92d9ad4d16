package fabrikgrpc

import (
	"bytes"
	"context"
	"io"
	"testing"

	"google.golang.org/grpc"

	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
	fabrikv1 "github.com/tuist/fabrik-node/proto/fabrik/v1"
)

// putStream is an in-process Put stream: the fuzzer's message sequence,
// without a network, so each iteration is fast.
type putStream struct {
	grpc.ServerStream
	msgs []*fabrikv1.PutRequest
	resp *fabrikv1.PutResponse
}

func (s *putStream) Context() context.Context { return context.Background() }
func (s *putStream) Recv() (*fabrikv1.PutRequest, error) {
	if len(s.msgs) == 0 {
		return nil, io.EOF
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m, nil
}
func (s *putStream) SendAndClose(r *fabrikv1.PutResponse) error { s.resp = r; return nil }

// FuzzPutStream drives the Put stream's framing: a header (fuzzed ref,
// declared hash and size, or none), the data cut into chunks at fuzzed
// points, and optionally a second header. The stream is accepted exactly
// when it is well framed (one header first, a valid ref, a lower-case hex
// SHA-256 and size that match the bytes, a CAS key equal to the hash), and
// then the stored artifact reads back byte-identical.
func FuzzPutStream(f *testing.F) {
	cache := cachetest.New(f)
	svc := newService(cache, Options{})
	f.Add("gradle", "k1", []byte("hello world"), []byte{3, 5}, true, true, true, uint8(0))
	f.Add("cas", "", []byte("cas body"), []byte{}, true, true, true, uint8(0))
	f.Add("gradle", "k2", []byte("x"), []byte{0}, false, true, true, uint8(0))
	f.Add("gradle", "k3", []byte("abc"), []byte{1}, true, false, true, uint8(0))
	f.Add("gradle", "k4", []byte("abc"), []byte{1}, true, true, false, uint8(0))
	f.Add("gradle", "k5", []byte("abc"), []byte{}, true, true, true, uint8(1))
	f.Add("gradle", "k6", []byte("abc"), []byte{}, true, true, true, uint8(2))
	f.Add("", "k7", []byte{}, []byte{}, true, true, true, uint8(0))
	f.Add("ns\x00", "k\n", []byte{}, []byte{}, true, true, true, uint8(0))
	f.Fuzz(func(t *testing.T, ns, key string, data, cuts []byte, realHash, realSize, upper bool, framing uint8) {
		hash := sum(data)
		if ns == "cas" && key == "" {
			key = hash
		}
		declared := hash
		if !realHash {
			declared = sum(append([]byte("x"), data...))
		}
		if !upper { // upper-case hex names another file: must be refused
			declared = string(bytes.ToUpper([]byte(declared)))
		}
		size := int64(len(data))
		if !realSize {
			size++
		}
		var msgs []*fabrikv1.PutRequest
		hdr := header(ns, key, declared, size)
		if framing%3 != 1 { // 1: no header at all
			msgs = append(msgs, hdr)
		}
		rest := data
		for _, c := range cuts {
			n := min(int(c), len(rest))
			msgs = append(msgs, chunk(rest[:n]))
			rest = rest[n:]
			if framing%3 == 2 && len(msgs) == 2 { // 2: a second header mid-stream
				msgs = append(msgs, hdr)
			}
		}
		msgs = append(msgs, chunk(rest))
		if framing%3 == 2 && len(cuts) == 0 {
			msgs = append(msgs, hdr)
		}
		_, refErr := refFromProto(&fabrikv1.Ref{Namespace: ns, Key: key})
		want := framing%3 == 0 && refErr == nil && realHash && realSize && upper && (ns != messages.CAS || key == hash)
		err := svc.Put(&putStream{msgs: msgs})
		if (err == nil) != want {
			t.Fatalf("Put(ns=%q key=%q realHash=%v realSize=%v lower=%v framing=%d) err=%v, want accepted=%v", ns, key, realHash, realSize, upper, framing%3, err, want)
		}
		if err != nil {
			return
		}
		res, err := cache.Get(context.Background(), messages.Ref{Namespace: ns, Key: key})
		if err != nil || !res.Found {
			t.Fatalf("accepted put of %s/%s is not readable: %v", ns, key, err)
		}
		got, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes, want %d (%v)", len(got), len(data), err)
		}
	})
}
