package adapters_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
)

// failingReader returns n bytes, then the error a dropped connection gives.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

func TestReceiveOutcomes(t *testing.T) {
	body := bytes.Repeat([]byte("fabrik"), 1000)
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	ctx := context.Background()
	cases := []struct {
		name string
		up   adapters.Upload
		want adapters.Outcome
	}{
		{"declared length and hash", adapters.Upload{Body: bytes.NewReader(body), Length: int64(len(body)), Hash: hash}, adapters.Stored},
		{"chunked under the limit", adapters.Upload{Body: bytes.NewReader(body), Length: -1, Max: int64(len(body))}, adapters.Stored},
		{"declared over the limit", adapters.Upload{Body: bytes.NewReader(body), Length: int64(len(body)), Max: 10}, adapters.TooLarge},
		{"chunked over the limit", adapters.Upload{Body: bytes.NewReader(body), Length: -1, Max: int64(len(body)) - 1}, adapters.TooLarge},
		{"short body", adapters.Upload{Body: bytes.NewReader(body[:100]), Length: int64(len(body))}, adapters.Truncated},
		{"connection dropped", adapters.Upload{Body: &failingReader{n: 100}, Length: -1}, adapters.Truncated},
		{"longer than declared", adapters.Upload{Body: bytes.NewReader(body), Length: 100}, adapters.Invalid},
		{"wrong hash", adapters.Upload{Body: bytes.NewReader(body), Length: int64(len(body)), Hash: hex.EncodeToString(make([]byte, 32))}, adapters.Invalid},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cache := cachetest.New(t)
			ref := messages.Ref{Namespace: "test", Key: string(rune('a' + i))}
			res := adapters.Store(ctx, cache, ref, messages.Meta{}, c.up)
			if res.Outcome != c.want {
				t.Fatalf("outcome %s (%v), want %s", res.Outcome, res.Err, c.want)
			}
			st, err := cache.Stat(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if st.Found != (c.want == adapters.Stored) {
				t.Fatalf("found=%v after outcome %s", st.Found, res.Outcome)
			}
			if c.want == adapters.Stored && (res.Hash != hash || res.Size != int64(len(body))) {
				t.Fatalf("result %s/%d, want %s/%d", res.Hash, res.Size, hash, len(body))
			}
			if c.want != adapters.Stored && res.Err == nil {
				t.Fatal("a refusal carries no explanation")
			}
		})
	}
}

// Also sees exactly the bytes that were staged, so a protocol can verify an
// extra digest (S3's MD5) before it commits.
func TestReceiveFeedsAlso(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 200_000)
	cache := cachetest.New(t)
	h := md5.New()
	blob, res := adapters.Receive(cache, adapters.Upload{Body: bytes.NewReader(body), Length: -1, Also: h})
	if res.Outcome != adapters.Stored {
		t.Fatal(res.Err)
	}
	defer blob.Discard()
	want := md5.Sum(body)
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("Also saw different bytes")
	}
}

func TestStatusTableFor(t *testing.T) {
	table := adapters.StatusTable{adapters.TooLarge: {Status: 413, Message: "not stored"}}
	a := table.For(adapters.Result{Outcome: adapters.TooLarge, Err: errors.New("5 > 4")})
	if a.Status != 413 || a.Message != "not stored: 5 > 4" {
		t.Fatalf("%+v", a)
	}
	// Internal errors may name paths: they are logged, never shown.
	a = table.For(adapters.Result{Outcome: adapters.Internal, Err: errors.New("/var/secret/path")})
	if a.Status != 500 || bytes.Contains([]byte(a.Message), []byte("secret")) {
		t.Fatalf("%+v", a)
	}
}
