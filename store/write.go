package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// emptyHash is the SHA-256 of no bytes: the one hash for which Size 0 is
// known to be exact rather than "not given".
const emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// PutReader stages r, verifies it against meta.Hash and meta.Size (and the
// key for CAS refs) when they are set, and commits it. Used to write back
// artifacts fetched from upstream tiers.
func (s *Store) PutReader(ref messages.Ref, meta messages.Meta, r io.Reader) (messages.Meta, error) {
	expectHash := meta.Hash
	if expectHash == "" && ref.IsCAS() {
		expectHash = ref.Key
	}
	expectSize := meta.Size
	if expectSize == 0 && expectHash != emptyHash {
		expectSize = -1
	}
	blob, err := s.stager.New(expectHash, expectSize)
	if err != nil {
		return messages.Meta{}, fmt.Errorf("store: %w", err)
	}
	if _, err := io.Copy(blob, r); err != nil {
		blob.Discard()
		return messages.Meta{}, fmt.Errorf("store: receive %s: %w", ref, err)
	}
	if err := blob.Seal(); err != nil {
		return messages.Meta{}, fmt.Errorf("store: %s: %w", ref, err)
	}
	return s.Commit(ref, meta, blob)
}

// Commit moves a staged blob into the store under ref and returns the stored
// metadata. It takes ownership of blob: on any failure the staging file is
// removed. When the blob does not fit even after evicting down to the
// low-water mark, it returns tier.ErrFull (wrapped).
func (s *Store) Commit(ref messages.Ref, meta messages.Meta, blob *Staged) (messages.Meta, error) {
	r := s.CommitMany([]Pending{{Ref: ref, Meta: meta, Blob: blob}})
	return r[0].Meta, r[0].Err
}

// Pending is one artifact of a CommitMany.
type Pending struct {
	Ref  messages.Ref
	Meta messages.Meta
	Blob *Staged
	// Pin pins the blob (Pin) in the same step that makes it visible, so
	// no eviction can come between its commit and the caller's next step;
	// the caller Unpins it. Only a successful commit pins.
	Pin bool
}

// Committed is the outcome of one Pending, as Commit would return it.
type Committed struct {
	Meta messages.Meta
	Err  error
}

// CommitMany commits several staged blobs, each as Commit would, in one
// index transaction (group commit): the local tier actor hands it every Put
// that arrived while the previous batch was committing, so concurrent
// uploads share one Badger write (and, with Fsync, one fsync) instead of
// queueing for one each. Each item succeeds or fails on its own (a refused
// item does not fail the others); only a failed index commit fails every
// item of the batch. Later items see the earlier ones, as if committed in
// order: the same key twice keeps the last content. It takes ownership of
// every blob.
func (s *Store) CommitMany(items []Pending) []Committed {
	out := make([]Committed, len(items))
	ops := make([]*commitOp, 0, len(items))
	for i, it := range items {
		op, err := prepareCommit(it)
		if err != nil {
			it.Blob.Discard()
			out[i].Err = err
			continue
		}
		op.i, op.pin = i, it.Pin
		ops = append(ops, op)
	}
	if len(ops) > 0 {
		if err := s.checkFreeSpace(ops); err != nil {
			for _, op := range ops {
				op.err = fmt.Errorf("store: %s: %w", op.ref, err)
			}
		} else {
			s.wmu.Lock()
			events := s.commitLocked(ops)
			s.wmu.Unlock()
			s.emit(events)
		}
	}
	for _, op := range ops {
		op.blob.Discard()
		out[op.i] = Committed{Meta: op.stored, Err: op.err}
		if op.err != nil {
			out[op.i].Err = diskFull(op.err)
		}
	}
	return out
}

// MinFreeSpace is the free space the store's file system must keep for a
// commit to go ahead. Badger writes through memory-mapped files that are
// sparse until written (value log, memtables): a write into them on a full
// disk is not an error but a SIGBUS that kills the node. A blob with a
// file of its own fails cleanly while it is staged (ENOSPC); an inline
// blob, and every commit's index entries, go to those mappings. So commits
// are refused (tier.ErrFull) while less than this (plus the batch's inline
// bytes) is free; deletes and eviction, which free space, still run.
const MinFreeSpace = 64 << 20

// checkFreeSpace refuses a batch that would leave the file system under
// MinFreeSpace. One statfs(2) per batch.
func (s *Store) checkFreeSpace(ops []*commitOp) error {
	if s.minFree < 0 {
		return nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.opts.Dir, &st); err != nil {
		return nil // cannot tell: let the write find out
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	need := int64(s.minFree)
	for _, op := range ops {
		if op.blob.Inline() {
			need += op.blob.Size()
		}
	}
	if free < need {
		return fmt.Errorf("%w: the disk is nearly full (%d bytes free; the index keeps %d bytes of headroom)", tier.ErrFull, free, s.minFree)
	}
	return nil
}

// commitOp is one item of a batch on its way into the store.
type commitOp struct {
	i      int
	ref    messages.Ref
	name   []byte // nil for CAS refs
	h      hashKey
	meta   messages.Meta
	blob   *Staged
	now    int64
	have   bool     // the blob was stored before this op (by the store or an earlier op)
	placed bool     // this op put the blob's body in place (a file renamed, or inline)
	entry  memEntry // the blob's index entry once committed
	bs     string   // the build system the blob entry keeps
	newCAS bool     // a stored blob is now also stored through the CAS namespace
	pin    bool     // pin the blob once committed (Pending.Pin)
	// replaced is the blob the key pointed at before, when other content.
	replaced *hashKey
	stored   messages.Meta
	err      error
}

// prepareCommit checks what can be checked without the store's locks.
func prepareCommit(it Pending) (*commitOp, error) {
	ref, meta, blob := it.Ref, it.Meta, it.Blob
	if !blob.sealed {
		if err := blob.Seal(); err != nil {
			return nil, fmt.Errorf("store: %s: %w", ref, err)
		}
	}
	hashHex, size := blob.Hash(), blob.Size()
	h, err := parseHash(hashHex)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var name []byte
	if ref.IsCAS() {
		if ref.Key != hashHex {
			return nil, fmt.Errorf("store: %w: CAS key %s but content hash %s", tier.ErrInvalid, ref.Key, hashHex)
		}
	} else if name, err = refName(ref); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if meta.Hash != "" && meta.Hash != hashHex {
		return nil, fmt.Errorf("store: %w: %s declared hash %s, content is %s", tier.ErrInvalid, ref, meta.Hash, hashHex)
	}
	if meta.Size != 0 && meta.Size != size {
		return nil, fmt.Errorf("store: %w: %s declared %d bytes, content is %d", tier.ErrInvalid, ref, meta.Size, size)
	}
	return &commitOp{ref: ref, name: name, h: h, meta: meta, blob: blob}, nil
}

// commitLocked commits a batch: room is made and bodies are put in place
// one op at a time, then every index entry is written in as few Badger
// transactions as fit (one, unless the batch is huge), then the in-memory
// index learns of them. A body becomes visible only with its entry, as for
// a single commit. The caller holds wmu.
func (s *Store) commitLocked(ops []*commitOp) []EvictEvent {
	var (
		events []EvictEvent
		// added is what earlier ops of this batch store that the
		// in-memory index does not know yet.
		added      = map[hashKey]memEntry{}
		addedBytes int64
		live       []*commitOp
		pinned     []hashKey
	)
	defer func() {
		s.mu.Lock()
		for _, h := range pinned {
			if s.idx.pinned[h] <= 1 {
				delete(s.idx.pinned, h)
			} else {
				s.idx.pinned[h]--
			}
		}
		s.mu.Unlock()
	}()
	for _, op := range ops {
		size := op.blob.Size()
		op.now = s.now().UnixNano()
		s.mu.Lock()
		existing, have := s.idx.blobs[op.h]
		maxSize, used, policy := s.maxSize, s.idx.used, s.policy
		s.mu.Unlock()
		if e, ok := added[op.h]; ok {
			existing, have = e, true
		} else if have {
			// A later op's eviction must not take the blob this op's key
			// is about to point at: pinned until the batch is indexed.
			s.mu.Lock()
			s.idx.pinned[op.h]++
			s.mu.Unlock()
			pinned = append(pinned, op.h)
		}
		op.have = have
		if !have {
			if maxSize > 0 && used+addedBytes+size > maxSize {
				if size > maxSize {
					op.err = fmt.Errorf("store: %s is %d bytes, more than the %d-byte cache: %w", op.ref, size, maxSize, tier.ErrFull)
					continue
				}
				_, _, ev, err := s.evictLocked(max(maxSize/10*9-size-addedBytes, 0), policy, "size")
				events = append(events, ev...)
				if err != nil {
					op.err = fmt.Errorf("store: make room for %s: %w", op.ref, err)
					continue
				}
				if used, _ := s.Usage(); used+addedBytes+size > maxSize {
					op.err = fmt.Errorf("store: no room for %s (%d bytes): %w", op.ref, size, tier.ErrFull)
					continue
				}
			}
			if !op.blob.Inline() {
				if err := s.place(op.h, op.blob); err != nil {
					op.err = fmt.Errorf("store: place %s: %w", op.ref, err)
					continue
				}
			}
			op.placed = true
			existing = memEntry{size: size, created: op.now, lastAccess: op.now, inline: op.blob.Inline()}
			addedBytes += size
		}
		op.newCAS = op.ref.IsCAS() && !existing.cas
		existing.cas = existing.cas || op.ref.IsCAS()
		op.entry = existing
		added[op.h] = existing
		live = append(live, op)
	}
	if len(live) == 0 {
		return events
	}

	// In as few transactions as fit; the whole batch fails if any commit
	// does (ops committed by an earlier transaction are idempotent to redo).
	err := inTransactions(s.db, live, s.indexOp)
	for _, op := range live {
		if op.name != nil {
			// The key may have resolved to other content: readers must not
			// answer from what the hot tier cached (keycache.go).
			s.hotKeys().forget(op.name)
		}
	}
	if err != nil {
		for _, op := range live {
			op.err = fmt.Errorf("store: index %s: %w", op.ref, err)
			if op.placed && !op.blob.Inline() {
				os.Remove(s.blobPath(op.h))
			}
		}
		return events
	}
	s.mu.Lock()
	for _, op := range live {
		if op.pin {
			s.idx.pinned[op.h]++
		}
		if !op.placed {
			if e, ok := s.idx.blobs[op.h]; ok {
				e.cas = e.cas || op.entry.cas
				s.idx.blobs[op.h] = e
			}
			continue
		}
		e := op.entry
		e.bs = s.idx.intern(op.meta.BuildSystem)
		s.idx.put(op.h, e)
	}
	s.mu.Unlock()
	for _, op := range live {
		if old := op.replaced; old != nil {
			if err := s.collectIfUnreferenced(*old); err != nil {
				s.log.Warn("remove blob no key refers to", "hash", old.String(), "err", err)
			}
		}
		e := op.entry
		out := messages.Meta{Hash: op.h.String(), Size: e.size, BuildSystem: op.meta.BuildSystem, Attrs: op.meta.Attrs,
			CreatedAt: unixTime(op.now), LastAccess: unixTime(e.lastAccess), AccessCount: e.accessCount}
		if op.name == nil {
			out.BuildSystem, out.Attrs, out.CreatedAt = op.bs, nil, unixTime(e.created)
		}
		op.stored = out
	}
	return events
}

// indexOp writes one op's index entries in txn: its inline body, its b/
// entry (new blobs, or a blob now also stored through the CAS namespace),
// and for keys the k/ entry and reverse ref; op.replaced becomes the blob
// the key pointed at before, when that was other content.
func (s *Store) indexOp(txn *badger.Txn, op *commitOp) error {
	h, e := op.h, op.entry
	bv := blobValue{size: e.size, created: e.created, lastAccess: e.lastAccess,
		accessCount: e.accessCount, cas: e.cas, inline: e.inline, buildSystem: op.meta.BuildSystem}
	if op.have {
		// Keep the build system the blob was first stored with.
		if item, err := txn.Get(blobIndexKey(h)); err == nil {
			if err := item.Value(func(v []byte) error {
				old, err := decodeBlobValue(v)
				bv.buildSystem = old.buildSystem
				return err
			}); err != nil {
				return err
			}
		}
	}
	op.bs = bv.buildSystem
	if op.placed && e.inline {
		// The body and the entry that makes it visible commit together.
		if err := txn.Set(dataKey(h), op.blob.buf); err != nil {
			return err
		}
	}
	if op.placed || op.newCAS {
		if err := txn.Set(blobIndexKey(h), bv.encode()); err != nil {
			return err
		}
	}
	if op.name == nil {
		return nil
	}
	old, err := getKeyValue(txn, op.name)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return err
	case old.hash != h:
		op.replaced = &old.hash
		if err := txn.Delete(refIndexKey(old.hash, op.name)); err != nil {
			return err
		}
	}
	kv := keyValue{hash: h, size: e.size, created: op.now, buildSystem: op.meta.BuildSystem, attrs: op.meta.Attrs}
	if err := txn.Set(keyIndexKey(op.name), kv.encode()); err != nil {
		return err
	}
	return txn.Set(refIndexKey(h, op.name), nil)
}

// place renames a sealed staging file to its blob path. The caller holds wmu.
func (s *Store) place(h hashKey, blob *Staged) error {
	dst := s.blobPath(h)
	if err := s.ensureShard(h, filepath.Dir(dst)); err != nil {
		return err
	}
	// syscall.Rename, not os.Rename: the latter first lstats the target to
	// refuse renaming onto a directory, which blobs/ab/<hash> never is, and
	// that stat was a tenth of a small PUT's system calls.
	src := blob.f.Name()
	err := syscall.Rename(src, dst)
	if errors.Is(err, fs.ErrNotExist) {
		// Someone removed the shard directory behind our back: forget it
		// and create it again.
		s.shards.remove(h)
		if err := s.ensureShard(h, filepath.Dir(dst)); err != nil {
			return err
		}
		err = syscall.Rename(src, dst)
	}
	if err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	// The staging name is free again; Discard must not remove a later file
	// that happens to reuse it.
	blob.discarded = true
	if s.opts.Fsync {
		if err := syncDir(filepath.Dir(dst)); err != nil {
			os.Remove(dst)
			return err
		}
	}
	return nil
}

// ensureShard creates blobs/ab once per process; with Fsync the new
// directory's entry in blobs/ is made durable too.
func (s *Store) ensureShard(h hashKey, shard string) error {
	if s.shards.has(h) {
		return nil
	}
	_, statErr := os.Stat(shard)
	if err := os.MkdirAll(shard, 0o755); err != nil {
		return fmt.Errorf("create shard dir: %w", err)
	}
	if statErr != nil && s.opts.Fsync {
		if err := syncDir(filepath.Dir(shard)); err != nil {
			return err
		}
	}
	s.shards.add(h)
	return nil
}

// shardSet remembers which blobs/ab directories exist, saving a mkdir per
// commit (a metadata round trip on slow disks). Guarded by wmu.
type shardSet [256 / 64]uint64

func (s *shardSet) has(h hashKey) bool { return s[h[0]/64]&(1<<(h[0]%64)) != 0 }
func (s *shardSet) add(h hashKey)      { s[h[0]/64] |= 1 << (h[0] % 64) }
func (s *shardSet) remove(h hashKey)   { s[h[0]/64] &^= 1 << (h[0] % 64) }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// Delete removes ref. For a key, the key entry goes and the blob with it
// when nothing else refers to it; for a CAS ref, the blob goes together with
// every key that resolves to it. Deleting what is not there is not an error.
func (s *Store) Delete(ref messages.Ref) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if ref.IsCAS() {
		h, err := parseHash(ref.Key)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if _, _, _, err := s.removeBlobs([]hashKey{h}, ""); err != nil {
			return fmt.Errorf("store: delete %s: %w", ref, err)
		}
		return nil
	}
	name, err := refName(ref)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var target *hashKey
	err = s.db.Update(func(txn *badger.Txn) error {
		kv, err := getKeyValue(txn, name)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		target = &kv.hash
		if err := txn.Delete(keyIndexKey(name)); err != nil {
			return err
		}
		return txn.Delete(refIndexKey(kv.hash, name))
	})
	s.hotKeys().forget(name) // keycache.go
	if err != nil {
		return fmt.Errorf("store: delete %s: %w", ref, err)
	}
	if target != nil {
		if err := s.collectIfUnreferenced(*target); err != nil {
			return fmt.Errorf("store: delete blob of %s: %w", ref, err)
		}
	}
	return nil
}

// collectIfUnreferenced removes a blob that neither a key nor a CAS write
// keeps alive. The caller holds wmu.
func (s *Store) collectIfUnreferenced(h hashKey) error {
	s.mu.Lock()
	e, ok := s.idx.blobs[h]
	s.mu.Unlock()
	if !ok || e.cas {
		return nil
	}
	referenced := false
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: refPrefix(h)})
		defer it.Close()
		it.Rewind()
		referenced = it.Valid()
		return nil
	})
	if err != nil || referenced {
		return err
	}
	_, _, _, err = s.removeBlobs([]hashKey{h}, "")
	return err
}

// Clear deletes every blob and index entry (other prefixes in DB, such as the
// upload queue, are kept).
func (s *Store) Clear() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	s.idx = newMemIndex()
	s.hotClear()
	s.mu.Unlock()
	s.shards = shardSet{}
	// Files first: a crash mid-Clear leaves index entries without files,
	// which Open drops, never files that nothing accounts for.
	if err := os.RemoveAll(s.blobDir); err != nil {
		return fmt.Errorf("store: clear blobs: %w", err)
	}
	if err := os.MkdirAll(s.blobDir, 0o755); err != nil {
		return fmt.Errorf("store: clear blobs: %w", err)
	}
	if err := s.db.DropPrefix([]byte(prefixKey), []byte(prefixBlob), []byte(prefixRef), []byte(prefixData)); err != nil {
		return fmt.Errorf("store: clear index: %w", err)
	}
	return nil
}

func getKeyValue(txn *badger.Txn, name []byte) (keyValue, error) {
	item, err := txn.Get(keyIndexKey(name))
	if err != nil {
		return keyValue{}, err
	}
	var kv keyValue
	err = item.Value(func(v []byte) error {
		kv, err = decodeKeyValue(v)
		return err
	})
	return kv, err
}
