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
	defer blob.Discard()
	if !blob.sealed {
		if err := blob.Seal(); err != nil {
			return messages.Meta{}, fmt.Errorf("store: %s: %w", ref, err)
		}
	}
	hashHex, size := blob.Hash(), blob.Size()
	h, err := parseHash(hashHex)
	if err != nil {
		return messages.Meta{}, fmt.Errorf("store: %w", err)
	}
	var name []byte
	if ref.IsCAS() {
		if ref.Key != hashHex {
			return messages.Meta{}, fmt.Errorf("store: %w: CAS key %s but content hash %s", tier.ErrInvalid, ref.Key, hashHex)
		}
	} else if name, err = refName(ref); err != nil {
		return messages.Meta{}, fmt.Errorf("store: %w", err)
	}
	if meta.Hash != "" && meta.Hash != hashHex {
		return messages.Meta{}, fmt.Errorf("store: %w: %s declared hash %s, content is %s", tier.ErrInvalid, ref, meta.Hash, hashHex)
	}
	if meta.Size != 0 && meta.Size != size {
		return messages.Meta{}, fmt.Errorf("store: %w: %s declared %d bytes, content is %d", tier.ErrInvalid, ref, meta.Size, size)
	}

	s.wmu.Lock()
	stored, events, err := s.commitLocked(ref, name, h, meta, blob)
	s.wmu.Unlock()
	s.emit(events)
	if err != nil {
		return messages.Meta{}, diskFull(err)
	}
	return stored, nil
}

func (s *Store) commitLocked(ref messages.Ref, name []byte, h hashKey, meta messages.Meta, blob *Staged) (messages.Meta, []EvictEvent, error) {
	size, now, inline := blob.Size(), s.now().UnixNano(), blob.Inline()
	s.mu.Lock()
	existing, have := s.idx.blobs[h]
	maxSize, used, policy := s.maxSize, s.idx.used, s.policy
	s.mu.Unlock()

	var events []EvictEvent
	if !have {
		if maxSize > 0 && used+size > maxSize {
			if size > maxSize {
				return messages.Meta{}, nil, fmt.Errorf("store: %s is %d bytes, more than the %d-byte cache: %w", ref, size, maxSize, tier.ErrFull)
			}
			_, _, ev, err := s.evictLocked(max(maxSize/10*9-size, 0), policy, "size")
			events = ev
			if err != nil {
				return messages.Meta{}, events, fmt.Errorf("store: make room for %s: %w", ref, err)
			}
			if used, _ := s.Usage(); used+size > maxSize {
				return messages.Meta{}, events, fmt.Errorf("store: no room for %s (%d bytes): %w", ref, size, tier.ErrFull)
			}
		}
		if !inline {
			if err := s.place(h, blob); err != nil {
				return messages.Meta{}, events, fmt.Errorf("store: place %s: %w", ref, err)
			}
		}
	}

	entry := existing
	if !have {
		entry = memEntry{size: size, created: now, lastAccess: now, inline: inline}
	}
	entry.cas = entry.cas || ref.IsCAS()
	bv := blobValue{size: size, created: entry.created, lastAccess: entry.lastAccess,
		accessCount: entry.accessCount, cas: entry.cas, inline: entry.inline, buildSystem: meta.BuildSystem}
	kv := keyValue{hash: h, size: size, created: now, buildSystem: meta.BuildSystem, attrs: meta.Attrs}
	var replaced *hashKey
	err := s.db.Update(func(txn *badger.Txn) error {
		if have {
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
		if !have && inline {
			// The body and the entry that makes it visible commit together.
			if err := txn.Set(dataKey(h), blob.buf); err != nil {
				return err
			}
		}
		if !have || (ref.IsCAS() && !existing.cas) {
			if err := txn.Set(blobIndexKey(h), bv.encode()); err != nil {
				return err
			}
		}
		if name == nil {
			return nil
		}
		old, err := getKeyValue(txn, name)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		case old.hash != h:
			replaced = &old.hash
			if err := txn.Delete(refIndexKey(old.hash, name)); err != nil {
				return err
			}
		}
		if err := txn.Set(keyIndexKey(name), kv.encode()); err != nil {
			return err
		}
		return txn.Set(refIndexKey(h, name), nil)
	})
	if name != nil {
		// The key may have resolved to other content: readers must not
		// answer from what the hot tier cached (keycache.go).
		s.hotKeys().forget(name)
	}
	if err != nil {
		if !have && !inline {
			os.Remove(s.blobPath(h))
		}
		return messages.Meta{}, events, fmt.Errorf("store: index %s: %w", ref, err)
	}
	s.mu.Lock()
	if have {
		if e, ok := s.idx.blobs[h]; ok {
			e.cas = entry.cas
			s.idx.blobs[h] = e
		}
	} else {
		entry.bs = s.idx.intern(bv.buildSystem)
		s.idx.put(h, entry)
	}
	s.mu.Unlock()
	if replaced != nil {
		if err := s.collectIfUnreferenced(*replaced); err != nil {
			s.log.Warn("remove blob no key refers to", "hash", replaced.String(), "err", err)
		}
	}
	out := messages.Meta{Hash: h.String(), Size: size, BuildSystem: meta.BuildSystem, Attrs: meta.Attrs,
		CreatedAt: unixTime(now), LastAccess: unixTime(entry.lastAccess), AccessCount: entry.accessCount}
	if name == nil {
		out.BuildSystem, out.Attrs, out.CreatedAt = bv.buildSystem, nil, unixTime(entry.created)
	}
	return out, events, nil
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
