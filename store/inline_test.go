package store

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// Blobs up to InlineMax are stored in the index, with no file of their own,
// whatever the path they arrive by (declared size, unknown size); larger ones
// and ones that grow past the bound get files. Both kinds read back whole,
// survive a reopen and the start-up check, and leave with delete, eviction
// and Clear.
func TestInlineAndFileBlobs(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{Dir: dir, InlineMax: 8 << 10})
	small, edge, large := content(1, 4096), content(2, 8<<10), content(3, 8<<10+1)
	put(t, s, key("small"), small) // declared size
	put(t, s, cas(edge), edge)
	// Unknown size: staged in memory, spilled to a file once past the bound.
	if _, err := s.PutReader(key("large"), messages.Meta{}, bytes.NewReader(large)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutReader(key("unsized"), messages.Meta{}, bytes.NewReader(content(4, 100))); err != nil {
		t.Fatal(err)
	}
	if f := files(t, filepath.Join(dir, "blobs")); len(f) != 1 || filepath.Base(f[0]) != sum(large) {
		t.Fatalf("blob files = %v, want only the one over the inline bound", f)
	}
	if n := bodies(t, s); n != 4 {
		t.Fatalf("%d bodies, want 4", n)
	}
	if f := files(t, filepath.Join(dir, "tmp")); len(f) != 0 {
		t.Fatalf("staging leftovers: %v", f)
	}
	check := func(s *Store) {
		t.Helper()
		for ref, want := range map[messages.Ref][]byte{key("small"): small, cas(edge): edge, key("large"): large} {
			if got := read(t, s, ref); !bytes.Equal(got, want) {
				t.Fatalf("%s read %d bytes, want its %d", ref, len(got), len(want))
			}
			if _, err := s.Stat(ref); err != nil {
				t.Fatalf("stat %s: %v", ref, err)
			}
		}
		_, r, err := s.Open(key("small"))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := r.(*os.File); ok {
			t.Error("an inline blob was served from a file")
		}
		r.Close()
		// The upload pool's reader seeks (SDK retries rewind the body).
		_, body, err := s.OpenBlob(sum(small))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(body)
		if _, ok := body.(io.Seeker); !ok || !bytes.Equal(b, small) {
			t.Errorf("OpenBlob of an inline blob: %T, %d bytes", body, len(b))
		}
		body.Close()
	}
	check(s)
	used, objs := s.Usage()
	s.Close()
	s = openStore(t, Options{Dir: dir, InlineMax: 8 << 10})
	if u, o := s.Usage(); u != used || o != objs {
		t.Fatalf("usage after reopen and the start-up check = %d, %d; want %d, %d", u, o, used, objs)
	}
	check(s)

	if err := s.Delete(key("small")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.EvictTo(0, PolicyLRU); err != nil {
		t.Fatal(err)
	}
	if n := bodies(t, s); n != 0 {
		t.Fatalf("%d bodies after delete and eviction, want 0", n)
	}
	put(t, s, key("again"), small)
	if err := s.Clear(); err != nil {
		t.Fatal(err)
	}
	if n := bodies(t, s); n != 0 || read(t, s, key("again")) != nil {
		t.Fatalf("Clear left %d bodies", n)
	}
}

// An inline body that went missing or changed size behind the store's back
// (outside damage: it commits with its entry) is a miss that drops the entry,
// never a short or wrong read.
func TestReadsDropInlineEntriesWhoseBodyIsBroken(t *testing.T) {
	var events []EvictEvent
	s := openStore(t, Options{OnEvict: func(e EvictEvent) { events = append(events, e) }})
	a, b := content(1, 300), content(2, 400)
	put(t, s, key("a"), a)
	put(t, s, cas(b), b)
	ha, _ := parseHash(sum(a))
	hb, _ := parseHash(sum(b))
	if err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(dataKey(ha), a[:10]); err != nil {
			return err
		}
		return txn.Delete(dataKey(hb))
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Open(key("a")); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("Open of a truncated inline body = %v, want ErrNotFound", err)
	}
	if _, _, err := s.OpenBlob(sum(b)); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("OpenBlob of a missing inline body = %v, want ErrNotFound", err)
	}
	if used, objs := s.Usage(); used != 0 || objs != 0 {
		t.Errorf("broken entries still counted: %d, %d", used, objs)
	}
	if len(events) != 2 || events[0].Reason != "corrupt" || events[1].Reason != "missing" {
		t.Errorf("events = %+v", events)
	}
	put(t, s, key("a"), a)
	if !bytes.Equal(read(t, s, key("a")), a) {
		t.Error("re-stored content not served")
	}
}

// A staged blob that outgrows the inline bound moves to a file and keeps
// every byte; one refused for its hash leaves no file.
func TestStagedSpillsPastInlineBound(t *testing.T) {
	st, err := NewStager(t.TempDir(), false, 1000)
	if err != nil {
		t.Fatal(err)
	}
	body := content(5, 2500)
	b, err := st.New(sum(body), -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range [][]byte{body[:600], body[600:1000], body[1000:1001], body[1001:]} {
		if _, err := b.Write(chunk); err != nil {
			t.Fatal(err)
		}
		if want := b.Written() <= 1000; b.Inline() != want {
			t.Fatalf("after %d bytes Inline() = %v", b.Written(), b.Inline())
		}
	}
	if err := b.Seal(); err != nil {
		t.Fatal(err)
	}
	r, err := b.Open()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, body) {
		t.Fatal("spilled blob lost bytes")
	}
	b.Discard()
	bad, _ := st.New(sum([]byte("other")), -1)
	bad.Write(body)
	if err := bad.Seal(); !errors.Is(err, tier.ErrInvalid) {
		t.Fatalf("wrong hash sealed: %v", err)
	}
	if left, _ := os.ReadDir(st.Dir()); len(left) != 0 {
		t.Fatalf("%d staging files left", len(left))
	}
}

func stagedBlob(t *testing.T, s *Store, b []byte) *Staged {
	t.Helper()
	st, err := s.Stager().New("", int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	st.Write(b)
	return st
}

// A group commit stores each item as Commit would: a refused item fails
// alone, the same key twice keeps the later content (the earlier blob is
// collected), identical content is one blob, and an eviction that one item
// needs never takes a blob an earlier item of the batch points a key at.
func TestCommitManyItemsStandAlone(t *testing.T) {
	s := openStore(t, Options{MaxSize: 11_000, Policy: PolicyLRU, Now: newClock().Now})
	old, spare := content(1, 3000), content(6, 2000)
	put(t, s, cas(old), old) // the least recently used blob: first to go, unless pinned
	put(t, s, cas(spare), spare)
	a, b, big := content(2, 1000), content(3, 1000), content(4, 5000)
	res := s.CommitMany([]Pending{
		{Ref: key("points-at-old"), Blob: stagedBlob(t, s, old)},
		{Ref: key("k"), Blob: stagedBlob(t, s, a)},
		{Ref: key("bad"), Meta: messages.Meta{Hash: sum(b)}, Blob: stagedBlob(t, s, a)},
		{Ref: key("k"), Blob: stagedBlob(t, s, b)},
		{Ref: key("same"), Blob: stagedBlob(t, s, b)},
		{Ref: key("big"), Blob: stagedBlob(t, s, big)}, // needs room: evicts spare, not old
		{Ref: key("huge"), Blob: stagedBlob(t, s, content(5, 20_000))},
	})
	for i, want := range []error{nil, nil, tier.ErrInvalid, nil, nil, nil, tier.ErrFull} {
		if want == nil && res[i].Err != nil || want != nil && !errors.Is(res[i].Err, want) {
			t.Errorf("item %d: %v, want %v", i, res[i].Err, want)
		}
	}
	for ref, want := range map[messages.Ref][]byte{key("points-at-old"): old, key("k"): b, key("same"): b, key("big"): big} {
		if got := read(t, s, ref); !bytes.Equal(got, want) {
			t.Errorf("%s reads %d bytes, want %d", ref, len(got), len(want))
		}
	}
	if present(t, s, cas(a)) {
		t.Error("the blob key k pointed at first is still stored")
	}
	if present(t, s, cas(spare)) {
		t.Error("eviction for the big item took nothing")
	}
	if read(t, s, key("bad")) != nil || read(t, s, key("huge")) != nil {
		t.Error("a refused item was stored")
	}
	if used, objs := s.Usage(); used != 9000 || objs != 3 {
		t.Errorf("usage %d bytes, %d blobs; want old, b and big", used, objs)
	}
	if f := files(t, filepath.Join(s.opts.Dir, "tmp")); len(f) != 0 {
		t.Errorf("staging leftovers: %v", f)
	}
}

// Pending.Pin pins the blob as it is committed: no eviction can take it
// until it is unpinned.
func TestCommitManyPins(t *testing.T) {
	s := openStore(t, Options{})
	b := content(7, 2000)
	if r := s.CommitMany([]Pending{{Ref: key("p"), Blob: stagedBlob(t, s, b), Pin: true}}); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	if _, _, err := s.EvictTo(0, ""); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(t, s, key("p")), b) {
		t.Fatal("a pinned blob was evicted")
	}
	s.Unpin(sum(b))
	if _, _, err := s.EvictTo(0, ""); err != nil {
		t.Fatal(err)
	}
	if read(t, s, key("p")) != nil {
		t.Fatal("an unpinned blob was not evicted")
	}
}

// allocated is the disk space the files under dir take (blocks, not their
// apparent size: Badger's files are sparse until written).
func allocated(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Sys().(*syscall.Stat_t).Blocks * 512
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Inline bodies of evicted blobs do not pile up in the index: value-log GC
// (run every minute by the store; here by hand) gives their space back.
// 120 MiB of 4 KiB artifacts through an 8 MiB cache must leave the index
// well under what was written (it grew by all of it with Badger's larger
// memtables and value-log files, whose garbage GC never found).
func TestInlineSpaceIsReclaimed(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 120 MiB")
	}
	s := openStore(t, Options{MaxSize: 8 << 20})
	for i := range 30000 {
		put(t, s, key(strconv.Itoa(i)), content(i, 4096))
		if i%5000 == 4999 {
			s.reclaim()
		}
	}
	if n := allocated(t, filepath.Join(s.opts.Dir, "index")); n > 80<<20 {
		t.Fatalf("index takes %d MiB on disk after 120 MiB of inline artifacts through an 8 MiB cache", n>>20)
	}
}
