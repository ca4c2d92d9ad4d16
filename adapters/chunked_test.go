package adapters_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/internal/adaptertest"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Chunks append to one staging file and the digest covers all of them.
func TestChunkedAppendsAndVerifies(t *testing.T) {
	cache := cachetest.New(t)
	body := adaptertest.RandomBytes(t, 300_000)
	up, err := adapters.BeginChunked(cache, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]int{{0, 100_000}, {100_000, 100_001}, {100_001, 300_000}} {
		part := body[c[0]:c[1]]
		length := int64(len(part))
		if c[0] == 100_000 {
			length = -1 // undeclared
		}
		if res := up.Append(bytes.NewReader(part), length); res.Outcome != adapters.Stored || res.Size != int64(c[1]) {
			t.Fatalf("append %v: %+v", c, res)
		}
	}
	blob, res := up.Finish(sha(body))
	if res.Outcome != adapters.Stored || blob.Size() != int64(len(body)) {
		t.Fatalf("finish: %+v", res)
	}
	ref := messages.Ref{Namespace: messages.CAS, Key: sha(body)}
	if r := adapters.Commit(t.Context(), cache, ref, messages.Meta{}, blob); r.Outcome != adapters.Stored {
		t.Fatalf("commit: %+v", r)
	}
	got, err := cache.Get(t.Context(), ref)
	if err != nil || !got.Found {
		t.Fatal("not stored")
	}
	defer got.Body.Close()
	if b, _ := io.ReadAll(got.Body); !bytes.Equal(b, body) {
		t.Fatal("stored other bytes")
	}
}

func TestChunkedRefusals(t *testing.T) {
	cache := cachetest.New(t)
	begin := func(max int64) *adapters.Chunked {
		up, err := adapters.BeginChunked(cache, max)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(up.Discard)
		return up
	}
	// Over the limit, declared or not.
	if res := begin(10).Append(bytes.NewReader(make([]byte, 11)), 11); res.Outcome != adapters.TooLarge {
		t.Fatalf("declared too large: %v", res.Outcome)
	}
	up := begin(10)
	up.Append(bytes.NewReader(make([]byte, 6)), -1)
	if res := up.Append(bytes.NewReader(make([]byte, 6)), -1); res.Outcome != adapters.TooLarge {
		t.Fatalf("undeclared too large: %v", res.Outcome)
	}
	// A chunk longer than it said.
	if res := begin(0).Append(bytes.NewReader(make([]byte, 20)), 10); res.Outcome != adapters.Invalid {
		t.Fatalf("longer than declared: %v", res.Outcome)
	}
	// A chunk cut short keeps what arrived.
	up = begin(0)
	res := up.Append(io.MultiReader(bytes.NewReader(make([]byte, 5)), errReader{}), 10)
	if res.Outcome != adapters.Truncated || up.Size() != 5 {
		t.Fatalf("truncated: %v, size %d", res.Outcome, up.Size())
	}
	if res := up.Append(bytes.NewReader(make([]byte, 3)), 5); res.Outcome != adapters.Truncated {
		t.Fatalf("short: %v", res.Outcome)
	}
	// A digest that does not match leaves nothing behind.
	probe, err := cache.Stage("", 1<<20) // declared over the inline bound: a file
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Dir(probe.Path())
	probe.Discard()
	files := func() int { e, _ := os.ReadDir(tmp); return len(e) }
	up = begin(0)
	content := bytes.Repeat([]byte("content"), 20000) // over the inline bound: staged in a file
	up.Append(bytes.NewReader(content), -1)
	before := files()
	blob, res := up.Finish(sha([]byte("other")))
	if res.Outcome != adapters.Invalid || blob != nil || res.Hash != sha(content) {
		t.Fatalf("wrong digest: %+v", res)
	}
	if after := files(); after != before-1 {
		t.Fatalf("staging files %d -> %d: the refused upload's file is still there", before, after)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }
