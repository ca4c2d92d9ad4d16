package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

func TestRoundTripKeepsMetadata(t *testing.T) {
	s := openStore(t, Options{InlineMax: -1}) // a file of its own: sendfile
	body := content(1, 5000)
	ref := messages.Ref{Namespace: "turbo/team_a", Key: "abc"}
	attrs := map[string]string{"x-artifact-duration": "42", "x-artifact-tag": "sig"}
	if _, err := s.PutReader(ref, messages.Meta{Hash: sum(body), Size: 5000, BuildSystem: "turbo", Attrs: attrs}, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	meta, r, err := s.Open(ref)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, ok := r.(*os.File); !ok {
		t.Errorf("reader is %T, want *os.File for sendfile", r)
	}
	if meta.Hash != sum(body) || meta.Size != 5000 || meta.BuildSystem != "turbo" || meta.Attrs["x-artifact-tag"] != "sig" || meta.AccessCount != 1 {
		t.Errorf("meta = %+v", meta)
	}
	if got := read(t, s, ref); !bytes.Equal(got, body) {
		t.Error("content differs")
	}
	// "turbo/team_a"+"abc" must not collide with "turbo"+"team_a/abc".
	if _, err := s.Stat(messages.Ref{Namespace: "turbo", Key: "team_a/abc"}); !errors.Is(err, tier.ErrNotFound) {
		t.Errorf("Stat of a different ref with the same path = %v, want ErrNotFound", err)
	}
}

func TestRejectedUploadsLeaveNothing(t *testing.T) {
	s := openStore(t, Options{})
	body := content(2, 1000)
	cases := map[string]struct {
		ref  messages.Ref
		meta messages.Meta
		body []byte
	}{
		"wrong hash": {key("a"), messages.Meta{Hash: sum([]byte("other")), Size: 1000}, body},
		"short body": {key("b"), messages.Meta{Hash: sum(body), Size: 1001}, body},
		"long body":  {key("c"), messages.Meta{Hash: sum(body[:999]), Size: 999}, body},
		"cas key":    {messages.Ref{Namespace: messages.CAS, Key: sum([]byte("x"))}, messages.Meta{}, body},
		"bad cas":    {messages.Ref{Namespace: messages.CAS, Key: "NOT-HEX"}, messages.Meta{}, body},
	}
	for name, c := range cases {
		_, err := s.PutReader(c.ref, c.meta, bytes.NewReader(c.body))
		if !errors.Is(err, tier.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	// Commit must verify a staged blob against the declared metadata too.
	st, _ := s.Stager().New("", -1)
	st.Write(body)
	if _, err := s.Commit(key("d"), messages.Meta{Hash: sum([]byte("y"))}, st); !errors.Is(err, tier.ErrInvalid) {
		t.Errorf("Commit with a wrong declared hash: %v", err)
	}
	if f := files(t, filepath.Join(s.opts.Dir, "blobs")); len(f) != 0 {
		t.Errorf("blobs left behind: %v", f)
	}
	if f := files(t, filepath.Join(s.opts.Dir, "tmp")); len(f) != 0 {
		t.Errorf("staging files left behind: %v", f)
	}
	if n, objs := s.Usage(); n != 0 || objs != 0 {
		t.Errorf("usage = %d bytes, %d objects", n, objs)
	}
}

func TestIdenticalContentIsOneBlob(t *testing.T) {
	s := openStore(t, Options{})
	body := content(3, 4096)
	put(t, s, key("one"), body)
	put(t, s, key("two"), body)
	put(t, s, cas(body), body)
	if n, objs := s.Usage(); n != 4096 || objs != 1 {
		t.Fatalf("usage = %d bytes, %d objects; want one 4096-byte blob", n, objs)
	}
	if n := bodies(t, s); n != 1 {
		t.Fatalf("%d blob bodies stored, want 1", n)
	}
	if err := s.Delete(key("one")); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(t, s, key("two")), body) {
		t.Fatal("deleting one key lost the content of the other")
	}
	if err := s.Delete(key("two")); err != nil {
		t.Fatal(err)
	}
	if !present(t, s, cas(body)) {
		t.Fatal("a blob written through CAS went away with its last key")
	}
	if err := s.Delete(cas(body)); err != nil {
		t.Fatal(err)
	}
	if n, objs := s.Usage(); n != 0 || objs != 0 {
		t.Errorf("usage after deleting everything = %d, %d", n, objs)
	}
	if f := files(t, filepath.Join(s.opts.Dir, "blobs")); len(f) != 0 {
		t.Errorf("blob files left: %v", f)
	}
}

func TestKeyDeletedWithItsLastBlobAndRewrittenKeyFreesOldBlob(t *testing.T) {
	s := openStore(t, Options{})
	a, b := content(4, 100), content(5, 200)
	put(t, s, key("k"), a)
	put(t, s, key("k"), b)
	if n, objs := s.Usage(); n != 200 || objs != 1 {
		t.Fatalf("usage after rewrite = %d, %d; the old blob should be gone", n, objs)
	}
	if !bytes.Equal(read(t, s, key("k")), b) {
		t.Fatal("rewritten key does not serve the new content")
	}
	// Evicting the blob removes the key that points at it.
	put(t, s, key("other"), a)
	if err := s.Delete(cas(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(key("k")); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("key still resolves after its blob was deleted: %v", err)
	}
	if !bytes.Equal(read(t, s, key("other")), a) {
		t.Fatal("unrelated key lost")
	}
	if err := s.Delete(key("never-stored")); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
}

func TestListingAndBlobMeta(t *testing.T) {
	s := openStore(t, Options{})
	want := map[string]int64{}
	for i := range 600 { // more than one page of Blobs
		b := content(i, 10+i)
		put(t, s, cas(b), b)
		want[sum(b)] = int64(len(b))
	}
	got := 0
	err := s.Blobs(func(m messages.Meta) bool {
		if want[m.Hash] != m.Size || m.BuildSystem != "gradle" {
			t.Errorf("listed %+v", m)
		}
		got++
		return true
	})
	if err != nil || got != 600 {
		t.Fatalf("Blobs listed %d of 600 (err %v)", got, err)
	}
	stopped := 0
	s.Blobs(func(messages.Meta) bool { stopped++; return stopped < 3 })
	if stopped != 3 {
		t.Errorf("Blobs went on after fn returned false: %d calls", stopped)
	}
	b := content(7, 17)
	m, err := s.BlobMeta(sum(b))
	if err != nil || m.Size != 17 {
		t.Errorf("BlobMeta = %+v, %v", m, err)
	}
	if _, err := s.BlobMeta(strings.Repeat("0", 64)); !errors.Is(err, tier.ErrNotFound) {
		t.Errorf("BlobMeta of unknown hash: %v", err)
	}
}

func TestClearKeepsOtherState(t *testing.T) {
	s := openStore(t, Options{})
	if err := s.Queue().Append(QueueEntry{Upstream: "upstream-0", Seq: 1, Value: []byte("job")}); err != nil {
		t.Fatal(err)
	}
	put(t, s, key("a"), content(1, 10))
	put(t, s, cas(content(2, 10)), content(2, 10))
	if err := s.Clear(); err != nil {
		t.Fatal(err)
	}
	if n, objs := s.Usage(); n != 0 || objs != 0 {
		t.Errorf("usage after Clear = %d, %d", n, objs)
	}
	if read(t, s, key("a")) != nil {
		t.Error("key survived Clear")
	}
	var kept []string
	if err := s.Queue().Scan(func(e QueueEntry) error {
		kept = append(kept, fmt.Sprintf("%s/%d=%s", e.Upstream, e.Seq, e.Value))
		return nil
	}); err != nil || len(kept) != 1 || kept[0] != "upstream-0/1=job" {
		t.Errorf("upload queue after Clear: %v, %v", kept, err)
	}
	put(t, s, key("a"), content(1, 10)) // still usable
}

func TestConcurrentReadersAndWriters(t *testing.T) {
	s := openStore(t, Options{MaxSize: 50 * 1024})
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				b := content(i%40, 1024)
				if got := read(t, s, cas(b)); got != nil && !bytes.Equal(got, b) {
					t.Errorf("reader %d: wrong content for %d", r, i)
					return
				}
				s.Stat(key(string(rune('a' + i%26))))
			}
		}()
	}
	for i := range 300 {
		b := content(i%40, 1024)
		put(t, s, cas(b), b)
		put(t, s, key(string(rune('a'+i%26))), content(i, 1024))
		if used, _ := s.Usage(); used > 50*1024 {
			t.Fatalf("usage %d over MaxSize", used)
		}
	}
	wg.Wait()
}

func TestShardDirectoryRemovedBehindOurBack(t *testing.T) {
	s := openStore(t, Options{})
	b := content(9, 64)
	put(t, s, cas(b), b)
	if err := s.Delete(cas(b)); err != nil {
		t.Fatal(err)
	}
	h, _ := parseHash(sum(b))
	if err := os.RemoveAll(filepath.Dir(filepath.Dir(s.blobPath(h)))); err != nil {
		t.Fatal(err)
	}
	put(t, s, cas(b), b)
	if !bytes.Equal(read(t, s, cas(b)), b) {
		t.Fatal("content not served after its shard directory was recreated")
	}
}

// OpenBlob serves background readers (the upload pool): it returns the
// content but does not count as an access.
func TestOpenBlobDoesNotCountAnAccess(t *testing.T) {
	s := openStore(t, Options{})
	b := content(7, 5000)
	m := put(t, s, key("k"), b)
	before, err := s.BlobMeta(m.Hash)
	if err != nil {
		t.Fatal(err)
	}
	_, f, err := s.OpenBlob(m.Hash)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, b) {
		t.Fatal("OpenBlob returned other content")
	}
	after, _ := s.BlobMeta(m.Hash)
	if after.AccessCount != before.AccessCount || !after.LastAccess.Equal(before.LastAccess) {
		t.Fatalf("OpenBlob counted an access: %d -> %d", before.AccessCount, after.AccessCount)
	}
	read(t, s, key("k"))
	if again, _ := s.BlobMeta(m.Hash); again.AccessCount != before.AccessCount+1 {
		t.Fatalf("a client read is still an access: %d -> %d", before.AccessCount, again.AccessCount)
	}
}
