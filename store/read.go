package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// Open returns an artifact's metadata and its content; the caller closes
// it. The reader is the blob's *os.File for blobs with a file of their own
// (type-assert it for sendfile or http.ServeContent), and an in-memory
// reader for inline and hot blobs. Eviction may unlink the file meanwhile:
// an open file stays readable. A miss, or an entry whose body is gone or has
// the wrong size, is tier.ErrNotFound (the broken entry is dropped).
func (s *Store) Open(ref messages.Ref) (messages.Meta, io.ReadCloser, error) {
	meta, path, err := s.Locate(ref)
	if err != nil {
		return messages.Meta{}, nil, err
	}
	f, err := s.OpenBody(meta, path)
	if err != nil {
		return messages.Meta{}, nil, err
	}
	return meta, f, nil
}

// OpenBlob opens a blob by hash without counting an access: background
// readers (the upload pool copying it to upstreams) must not make an
// artifact look recently or frequently used to the eviction policy. The
// body is an *os.File or, for inline blobs, a *bytes.Reader-backed reader
// (both seek).
func (s *Store) OpenBlob(hash string) (messages.Meta, io.ReadCloser, error) {
	h, err := parseHash(hash)
	if err != nil {
		return messages.Meta{}, nil, fmt.Errorf("store: %w", err)
	}
	s.mu.Lock()
	e, ok := s.idx.blobs[h]
	s.mu.Unlock()
	if !ok {
		return messages.Meta{}, nil, fmt.Errorf("store: blob %s: %w", hash, tier.ErrNotFound)
	}
	meta := s.metaFor(h, e, nil)
	if e.inline {
		b, err := s.readInline(meta)
		if err != nil {
			return messages.Meta{}, nil, err
		}
		return meta, hotBody{bytes.NewReader(b)}, nil
	}
	f, err := s.OpenLocated(meta, s.blobPath(h))
	if err != nil {
		return messages.Meta{}, nil, err
	}
	return meta, f, nil
}

// Locate resolves ref to its blob's metadata and file path and counts the
// access, without any file system call: the local tier actor answers reads
// with it and the reader opens the body in its own goroutine (OpenBody),
// so open(2) never serialises reads in the actor's mailbox. The path is ""
// for an inline blob, whose body is in the index.
func (s *Store) Locate(ref messages.Ref) (messages.Meta, string, error) {
	h, e, kv, err := s.lookup(ref)
	if err != nil {
		return messages.Meta{}, "", err
	}
	if e.inline {
		return s.metaFor(h, e, kv), "", nil
	}
	return s.metaFor(h, e, kv), s.blobPath(h), nil
}

// readInline reads an inline blob's body from the index. A body that is
// missing or of the wrong size (outside damage: it commits with its entry)
// drops the entry and is tier.ErrNotFound.
func (s *Store) readInline(meta messages.Meta) ([]byte, error) {
	h, err := parseHash(meta.Hash)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var b []byte
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(dataKey(h))
		if err != nil {
			return err
		}
		b, err = item.ValueCopy(nil)
		return err
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		s.dropBroken(h)
		return nil, fmt.Errorf("store: blob %s: inline body missing: %w", meta.Hash, tier.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("store: read inline blob %s: %w", meta.Hash, err)
	case int64(len(b)) != meta.Size:
		s.dropBroken(h)
		return nil, fmt.Errorf("store: blob %s is %d bytes, index says %d: %w", meta.Hash, len(b), meta.Size, tier.ErrNotFound)
	}
	return b, nil
}

// OpenLocated opens a blob found by Locate and checks its size against the
// index. The file is opened as a blocking descriptor: regular files gain
// nothing from the network poller, and skipping its registration saves two
// system calls per read. A file that vanished (evicted since Locate) or has
// the wrong size is tier.ErrNotFound.
func (s *Store) OpenLocated(meta messages.Meta, path string) (*os.File, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			s.dropBrokenHash(meta.Hash)
			return nil, fmt.Errorf("store: blob %s: file missing: %w", meta.Hash, tier.ErrNotFound)
		}
		return nil, fmt.Errorf("store: open blob %s: %w", meta.Hash, err)
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: stat blob %s: %w", meta.Hash, err)
	}
	if fi.Size() != meta.Size {
		f.Close()
		s.dropBrokenHash(meta.Hash)
		return nil, fmt.Errorf("store: blob %s is %d bytes, index says %d: %w", meta.Hash, fi.Size(), meta.Size, tier.ErrNotFound)
	}
	return f, nil
}

func (s *Store) dropBrokenHash(hash string) {
	if h, err := parseHash(hash); err == nil {
		s.dropBroken(h)
	}
}

// Stat reports an artifact's metadata without opening it. It counts as an
// access: a build that only checks existence (Bazel without the bytes) still
// depends on the blob, so LRU/LFU must not treat it as unused.
func (s *Store) Stat(ref messages.Ref) (messages.Meta, error) {
	h, e, kv, err := s.lookup(ref)
	if err != nil {
		return messages.Meta{}, err
	}
	if e.inline {
		return s.metaFor(h, e, kv), nil
	}
	select {
	case <-s.verified:
		// Every file was checked against the index at start, and files
		// change only through the store: the index is the truth now, and
		// existence checks (Bazel's FindMissingBlobs) cost no system call.
		// Reads still check the size when they open the file.
		return s.metaFor(h, e, kv), nil
	default:
	}
	fi, err := os.Stat(s.blobPath(h))
	if err != nil || fi.Size() != e.size {
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			s.dropBroken(h)
			return messages.Meta{}, fmt.Errorf("store: %s: blob file missing or truncated: %w", ref, tier.ErrNotFound)
		}
		return messages.Meta{}, fmt.Errorf("store: stat %s: %w", ref, err)
	}
	return s.metaFor(h, e, kv), nil
}

// statManyChunk is how many refs StatMany looks up per hold of mu: a
// lock per ref costs more than the lookup itself, and one hold for a whole
// request of thousands would stall every other reader meanwhile.
const statManyChunk = 64

// StatMany is Stat for many refs at once, what Bazel's FindMissingBlobs
// asks (thousands of refs per call): sizes[i] is the size of the blob
// refs[i] resolves to, or -1 when the store does not have it. Every ref
// found counts as an access, as Stat's does. CAS refs are answered from the
// in-memory index alone, under one lock per statManyChunk refs; other refs
// (keys, among them a tenant's CAS entries) first resolve to their blob in
// one Badger read transaction for the whole batch. Nothing is allocated per
// ref. A ref that is not valid is a miss, as it is to Stat; err is the
// first failure to read the index, and its ref is a miss too.
func (s *Store) StatMany(refs []messages.Ref) (sizes []int64, err error) {
	sizes = make([]int64, len(refs))
	hs := make([]hashKey, len(refs))
	// state[i]: what refs[i] is known to be so far.
	const (
		unresolved = iota // a key, not looked up yet
		resolved          // hs[i] is its blob (a CAS ref, or a key read from the index)
		keyed             // hs[i] is its blob, named by a key of the index
		none              // a miss
	)
	state := make([]uint8, len(refs))
	keys := false
	for i := range refs {
		if !refs[i].IsCAS() {
			keys = true
			continue
		}
		h, perr := parseHash(refs[i].Key)
		if perr != nil {
			state[i] = none
			continue
		}
		hs[i], state[i] = h, resolved
	}
	if keys {
		err = s.resolveKeys(refs, func(i int) bool { return state[i] == unresolved }, func(i int, h hashKey, ok bool) {
			if ok {
				hs[i], state[i] = h, keyed
			} else {
				state[i] = none
			}
		})
	}

	now := s.now().UnixNano()
	var broken []hashKey // keys that outlived their blob
	pending := 0
	for start := 0; start < len(refs); start += statManyChunk {
		end := min(start+statManyChunk, len(refs))
		s.mu.Lock()
		for i := start; i < end; i++ {
			if state[i] == none {
				sizes[i] = -1
				continue
			}
			e, ok := s.idx.touch(hs[i], now)
			switch {
			case !ok && state[i] == keyed:
				broken = append(broken, hs[i])
				fallthrough
			case !ok:
				sizes[i], state[i] = -1, none
			case e.inline:
				sizes[i], state[i] = e.size, none // nothing on disk to check
			default:
				sizes[i] = e.size
			}
		}
		pending = s.idx.dirty
		s.mu.Unlock()
	}
	s.noteAccess(pending)
	for _, h := range broken {
		s.dropBroken(h) // as Stat does
	}
	select {
	case <-s.verified:
		// The index is the truth (see Stat).
		return sizes, err
	default:
	}
	for i := range refs {
		if state[i] == none {
			continue
		}
		fi, serr := os.Stat(s.blobPath(hs[i]))
		if serr == nil && fi.Size() == sizes[i] {
			continue
		}
		if serr == nil || errors.Is(serr, fs.ErrNotExist) {
			s.dropBroken(hs[i])
		} else if err == nil {
			err = fmt.Errorf("store: stat %s: %w", refs[i], serr)
		}
		sizes[i] = -1
	}
	return sizes, err
}

// resolveKeys looks up, in one read transaction, the blob of every ref i
// of refs for which want(i) holds, and calls got(i, hash, found) for each.
// A ref that is not a valid key is not found. err is the first failure to
// read the index (that ref is not found).
func (s *Store) resolveKeys(refs []messages.Ref, want func(int) bool, got func(i int, h hashKey, found bool)) (err error) {
	var buf []byte
	verr := s.db.View(func(txn *badger.Txn) error {
		for i := range refs {
			if !want(i) {
				continue
			}
			if checkRef(refs[i]) != nil {
				got(i, hashKey{}, false)
				continue
			}
			buf = append(append(append(append(buf[:0], prefixKey...), refs[i].Namespace...), keySep...), refs[i].Key...)
			var h hashKey
			item, gerr := txn.Get(buf)
			if gerr == nil {
				gerr = item.Value(func(v []byte) error { return keyValueHash(v, &h) })
			}
			switch {
			case gerr == nil:
				got(i, h, true)
			case errors.Is(gerr, badger.ErrKeyNotFound):
				got(i, hashKey{}, false)
			default:
				got(i, hashKey{}, false)
				if err == nil {
					err = fmt.Errorf("store: resolve %s: %w", refs[i], gerr)
				}
			}
		}
		return nil
	})
	if verr != nil && err == nil {
		err = fmt.Errorf("store: resolve keys: %w", verr)
	}
	return err
}

// BlobMeta reports a blob's metadata by hash, without counting an access.
func (s *Store) BlobMeta(hash string) (messages.Meta, error) {
	h, err := parseHash(hash)
	if err != nil {
		return messages.Meta{}, fmt.Errorf("store: %w", err)
	}
	s.mu.Lock()
	e, ok := s.idx.blobs[h]
	s.mu.Unlock()
	if !ok {
		return messages.Meta{}, fmt.Errorf("store: blob %s: %w", hash, tier.ErrNotFound)
	}
	return s.metaFor(h, e, nil), nil
}

// Blobs calls fn with the metadata of every blob, in no particular order,
// until fn returns false. It reads the in-memory index only (no disk I/O):
// a snapshot of the entries is copied under the lock in one pass (about 70
// bytes a blob, transient) and fn runs outside it, so fn may call back into
// the store. Blobs committed or evicted meanwhile may or may not be seen.
func (s *Store) Blobs(fn func(messages.Meta) bool) error {
	type row struct {
		h hashKey
		e memEntry
	}
	s.mu.Lock()
	rows := make([]row, 0, len(s.idx.blobs))
	for h, e := range s.idx.blobs {
		rows = append(rows, row{h, e})
	}
	names := s.idx.names // append-only: ids in the snapshot stay valid
	s.mu.Unlock()
	for _, r := range rows {
		m := messages.Meta{Hash: r.h.String(), Size: r.e.size, BuildSystem: names[r.e.bs],
			CreatedAt: unixTime(r.e.created), LastAccess: unixTime(r.e.lastAccess), AccessCount: r.e.accessCount}
		if !fn(m) {
			return nil
		}
	}
	return nil
}

// lookup resolves ref to a blob present in the eviction index and counts the
// access. kv is nil for CAS refs.
func (s *Store) lookup(ref messages.Ref) (hashKey, memEntry, *keyValue, error) {
	var (
		h    hashKey
		kv   *keyValue
		name []byte
		gen  uint64
		err  error
	)
	keys := s.hotKeys()
	if ref.IsCAS() {
		if h, err = parseHash(ref.Key); err != nil {
			return h, memEntry{}, nil, fmt.Errorf("store: %w", err)
		}
	} else {
		if name, err = refName(ref); err != nil {
			return h, memEntry{}, nil, fmt.Errorf("store: %w", err)
		}
		if c, ok := keys.get(name); ok {
			if e, ok := s.touchCached(c); ok {
				return c.kv.hash, e, &c.kv, nil
			}
			keys.drop(name, c)
		}
		gen = keys.generation()
		var v keyValue
		err = s.db.View(func(txn *badger.Txn) error {
			v, err = getKeyValue(txn, name)
			return err
		})
		if errors.Is(err, badger.ErrKeyNotFound) {
			return h, memEntry{}, nil, fmt.Errorf("store: %s: %w", ref, tier.ErrNotFound)
		} else if err != nil {
			return h, memEntry{}, nil, fmt.Errorf("store: resolve %s: %w", ref, err)
		}
		h, kv = v.hash, &v
	}
	s.mu.Lock()
	e, ok := s.idx.touch(h, s.now().UnixNano())
	pending := s.idx.dirty
	s.mu.Unlock()
	if ok && kv != nil && s.hot != nil && e.size <= s.hot.maxObject {
		keys.put(name, gen, cachedKey{kv: *kv, created: e.created})
	}
	if !ok {
		if kv != nil {
			// The key outlived its blob (a crash between eviction's file
			// removal and its index update): drop it now.
			s.dropBroken(h)
		}
		return h, e, nil, fmt.Errorf("store: %s: %w", ref, tier.ErrNotFound)
	}
	s.noteAccess(pending)
	return h, e, kv, nil
}

// touchCached counts an access to the blob a cached key names, if the
// index still holds that blob (same hash, same creation: not evicted, nor
// evicted and stored again since it was cached).
func (s *Store) touchCached(c cachedKey) (memEntry, bool) {
	s.mu.Lock()
	e, ok := s.idx.blobs[c.kv.hash]
	if !ok || e.created != c.created {
		s.mu.Unlock()
		return memEntry{}, false
	}
	e, _ = s.idx.touch(c.kv.hash, s.now().UnixNano())
	pending := s.idx.dirty
	s.mu.Unlock()
	s.noteAccess(pending)
	return e, true
}

// dropBroken removes blob h after a reader found its file missing or of the
// wrong size, or found a key pointing at it with no blob entry. It checks
// again under wmu: between the reader's look and now, the blob may have been
// evicted and committed afresh, and a healthy blob must stay.
func (s *Store) dropBroken(h hashKey) {
	s.wmu.Lock()
	s.mu.Lock()
	e, ok := s.idx.blobs[h]
	s.mu.Unlock()
	reason := "missing"
	if ok && e.inline {
		if b, err := s.inlineSize(h); err == nil && b == e.size {
			s.wmu.Unlock()
			return
		} else if err == nil {
			reason = "corrupt"
		}
	} else if ok {
		fi, err := os.Stat(s.blobPath(h))
		if err == nil && fi.Size() == e.size {
			s.wmu.Unlock()
			return
		}
		if err == nil {
			reason = "corrupt"
		}
	}
	_, _, events, err := s.removeBlobs([]hashKey{h}, reason)
	s.wmu.Unlock()
	if err != nil {
		s.log.Warn("drop broken blob", "hash", h.String(), "err", err)
	}
	s.emit(events)
}

// inlineSize is the length of h's inline body (badger.ErrKeyNotFound when
// there is none).
func (s *Store) inlineSize(h hashKey) (int64, error) {
	var n int64
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(dataKey(h))
		if err != nil {
			return err
		}
		n = item.ValueSize()
		return nil
	})
	return n, err
}

func (s *Store) metaFor(h hashKey, e memEntry, kv *keyValue) messages.Meta {
	m := messages.Meta{Hash: h.String(), Size: e.size, CreatedAt: unixTime(e.created),
		LastAccess: unixTime(e.lastAccess), AccessCount: e.accessCount}
	if kv != nil {
		m.BuildSystem, m.Attrs, m.CreatedAt = kv.buildSystem, kv.attrs, unixTime(kv.created)
		return m
	}
	s.mu.Lock()
	m.BuildSystem = s.idx.names[e.bs]
	s.mu.Unlock()
	return m
}

// Referenced reports whether any key in a namespace starting with nsPrefix
// resolves to the blob (one prefix seek in the reverse-ref index). The query
// API uses it to show a tenant only the blobs its own keys reach, although
// blobs are shared on disk.
func (s *Store) Referenced(hash, nsPrefix string) (bool, error) {
	h, err := parseHash(hash)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	prefix := append(refPrefix(h), nsPrefix...)
	found := false
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: prefix})
		defer it.Close()
		it.Rewind()
		found = it.Valid()
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: reverse refs of %s: %w", hash, err)
	}
	return found, nil
}

// Refs calls fn with every ref the store answers to, in no particular order,
// until fn returns false: each key of the key index, and each blob stored
// through the CAS namespace as messages.Ref{CAS, hash}. It reads the key
// index from Badger (keys only, no values) and the CAS flags from memory;
// for the keys fn runs inside a read transaction, so it must not call back
// into the store (collect, then act). An admin clear uses it to delete this node's artifacts from its
// non-permanent upstreams.
func (s *Store) Refs(fn func(messages.Ref) bool) error {
	stopped := false
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixKey)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			name := it.Item().Key()[len(prefixKey):]
			ns, key, ok := strings.Cut(string(name), keySep)
			if !ok {
				continue
			}
			if !fn(messages.Ref{Namespace: ns, Key: key}) {
				stopped = true
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: list keys: %w", err)
	}
	if stopped {
		return nil
	}
	s.mu.Lock()
	var cas []hashKey
	for h, e := range s.idx.blobs {
		if e.cas {
			cas = append(cas, h)
		}
	}
	s.mu.Unlock()
	for _, h := range cas {
		if !fn(messages.Ref{Namespace: messages.CAS, Key: h.String()}) {
			return nil
		}
	}
	return nil
}
