// Package store is the local tier's storage engine: content-addressed blob
// files (small blobs inline in Badger) plus a key index in Badger, bounded
// by an in-memory eviction index.
//
// On-disk layout under Options.Dir:
//
//	tmp/                 staging files (Stager); anything here at Open is garbage
//	blobs/ab/<sha256>    one file per distinct content above InlineMax, named by its hash;
//	                     256 shard directories (a million blobs is ~4,000
//	                     files a directory, which ext4 and xfs index well;
//	                     a second level would cost two mkdirs per new blob
//	                     for the first 65,536 of them)
//	index/               Badger v4:
//	  k/<ns>\x00<key>        -> hash, size, build system, attrs, created
//	  b/<sha256>             -> size, created, last access, access count, cas and inline flags, build system
//	  d/<sha256>             -> the body of an inline blob (InlineMax or smaller)
//	  r/<sha256>/<ns>\x00<key> -> (empty) reverse ref: which keys die with the blob
//	  q/<upstream>/<seq>     the upload queue (Queue); kept by Clear
//
// Inline blobs. A blob of up to InlineMax bytes is staged in memory and its
// body written as d/<hash> in the same transaction as its b/ entry, so it
// needs no file create, rename or unlink: for the small artifacts builds
// upload most, those were most of a PUT's cost. Its reads are one Badger
// lookup (or the hot tier), and it leaves with its b/ entry.
//
// Crash safety. A blob becomes visible only through its b/ entry, and that
// entry is written after the blob file has been fully written, verified
// against its hash (Stager), and renamed into place (an inline body commits
// with the entry itself). rename(2) is atomic, so
// blobs/ only ever holds complete files; a crash before the Badger commit
// leaves an orphan file that Open deletes. Badger commits k/, b/ and r/ in one
// transaction, so a key and its reverse ref appear together. Deletion goes the
// other way (file first, then index), so a crash in between leaves index
// entries without a file. Open removes staging leftovers and loads the index;
// a background pass then deletes orphan files and drops entries whose file is
// missing or has the wrong size. Every read checks the file size against the
// index too, so such an entry is never served, not even before that pass. Commit returns only
// after the Badger transaction commits; kill -9 keeps everything the page
// cache holds, so an acknowledged write survives it without fsync. With
// Options.Fsync the staging file, the blob directories and Badger's log are
// fsynced too, which extends that to power loss.
//
// Access statistics (last access, access count) change on every read; they
// are updated in memory at once and written to Badger in batches by a
// background flusher (every AccessFlushInterval, sooner when many are
// pending, and at Close). A crash loses at most one interval of statistics,
// which only makes eviction order slightly less exact.
package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Options configures a Store.
type Options struct {
	// Dir holds tmp/, blobs/ and index/.
	Dir string
	// MaxSize bounds the bytes of stored blobs; 0 means unbounded.
	MaxSize int64
	// Policy is lru, lfu (default) or ttl.
	Policy string
	// DefaultTTL expires blobs not accessed for this long (ExpireTTL); 0 = never.
	DefaultTTL time.Duration
	// Fsync makes commits durable against power loss, not only process crashes.
	Fsync bool
	// OnEvict is told about every blob removed by eviction, expiry or because
	// it was found missing or corrupt (not about explicit Delete or Clear).
	// It runs synchronously after the store's locks are released.
	OnEvict func(EvictEvent)
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
	// AccessFlushInterval is how often access statistics are persisted
	// (default 10s).
	AccessFlushInterval time.Duration
	// Now is the clock; nil means time.Now. Tests use it for TTL.
	Now func() time.Time
	// HotSize bounds the bytes of the in-memory hot tier of small blob
	// bodies (hot.go); 0 disables it, and the key cache with it
	// (keycache.go, one key per 4 KiB of HotSize).
	HotSize int64
	// HotMaxObject is the largest blob the hot tier keeps (default
	// DefaultHotMaxObject, 64 KiB).
	HotMaxObject int64
	// InlineMax is the largest blob stored in the index instead of a file
	// of its own: 0 means DefaultInlineMax, negative stores every blob as a
	// file.
	InlineMax int64
	// MinFree is the free disk space commits leave (0: MinFreeSpace;
	// negative: no check). Tests of a nearly full disk lower it.
	MinFree int64
}

// MaxInline bounds InlineMax: inline bodies must stay below Badger's value
// threshold (badger.go), and larger blobs gain nothing from it.
const MaxInline = 512 << 10

// DefaultInlineMax is the largest blob stored inline by default. Build
// outputs are mostly small (class files, object files, action results),
// and below this size a file create and rename cost more than the bytes.
const DefaultInlineMax = 64 << 10

// EvictEvent describes one blob leaving the store.
type EvictEvent struct {
	Hash string
	Size int64
	// Reason is "size" (over MaxSize), "manual" (EvictTo), "ttl",
	// "missing" or "corrupt" (file gone or of the wrong size).
	Reason string
}

// flushThreshold is the number of pending access updates that triggers a
// flush before the interval: it bounds both memory and what a crash loses.
const flushThreshold = 4096

// Store is safe for concurrent use.
type Store struct {
	opts    Options
	blobDir string
	tmpDir  string
	db      *badger.DB
	stager  *Stager
	log     *slog.Logger
	now     func() time.Time

	// wmu serializes every change to the blob set and the index (commit,
	// delete, eviction, expiry, access flush, clear), so usage accounting
	// and the k/ b/ r/ invariants hold without optimistic retries. Reads
	// take it only to drop an entry they found broken.
	wmu    sync.Mutex
	shards shardSet // guarded by wmu

	// mu guards idx, maxSize and policy. It is held only around map work,
	// never across I/O, so readers on many goroutines barely contend.
	mu      sync.Mutex
	idx     *memIndex
	hot     *hotTier // bodies of small blobs; entries change under mu
	maxSize int64
	policy  string
	minFree int64

	kick      chan struct{}
	stop      chan struct{} // closed by Close: background goroutines exit
	done      chan struct{} // closed when the flusher has exited
	verified  chan struct{} // closed when verifyDisk has finished
	closeOnce sync.Once
}

// Open opens (or creates) the store in opts.Dir, removes staging leftovers
// and rebuilds the eviction index from Badger; the reconciliation of blob
// files with the index continues in the background (see Verified).
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("store: Options.Dir is empty")
	}
	if opts.Policy == "" {
		opts.Policy = PolicyLFU
	}
	if err := validPolicy(opts.Policy); err != nil {
		return nil, err
	}
	if opts.AccessFlushInterval <= 0 {
		opts.AccessFlushInterval = 10 * time.Second
	}
	s := &Store{
		opts:     opts,
		blobDir:  filepath.Join(opts.Dir, "blobs"),
		tmpDir:   filepath.Join(opts.Dir, "tmp"),
		log:      opts.Logger,
		now:      opts.Now,
		idx:      newMemIndex(),
		maxSize:  opts.MaxSize,
		policy:   opts.Policy,
		minFree:  opts.MinFree,
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		verified: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.minFree == 0 {
		s.minFree = MinFreeSpace
	}
	if err := os.MkdirAll(s.blobDir, 0o755); err != nil {
		return nil, fmt.Errorf("store: create blob dir: %w", err)
	}
	inlineMax := opts.InlineMax
	if inlineMax == 0 {
		inlineMax = DefaultInlineMax
	}
	inlineMax = min(inlineMax, MaxInline)
	st, err := NewStager(s.tmpDir, opts.Fsync, inlineMax)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s.stager = st
	db, err := badger.Open(badgerOptions(filepath.Join(opts.Dir, "index"), opts.Fsync, s.log))
	if err != nil {
		return nil, fmt.Errorf("store: open index: %w", err)
	}
	s.db = db
	loaded, events, err := s.rebuild()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: rebuild index: %w", err)
	}
	s.emit(events)
	if s.hot, err = newHotTier(opts.HotSize, opts.HotMaxObject); err != nil {
		db.Close()
		return nil, err
	}
	go s.flusher()
	go s.verifyDisk(loaded)
	return s, nil
}

// Stager creates staging files for blobs that will be committed here.
func (s *Store) Stager() *Stager { return s.stager }

// Usage reports the bytes and number of blobs stored.
func (s *Store) Usage() (bytes int64, objects int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idx.used, int64(len(s.idx.blobs))
}

// SetMaxSize changes the size bound at runtime, evicting at once (down to
// the 90% low-water mark) when the store is already above the new bound.
func (s *Store) SetMaxSize(n int64) {
	s.wmu.Lock()
	s.mu.Lock()
	s.maxSize = n
	over := n > 0 && s.idx.used > n
	policy := s.policy
	s.mu.Unlock()
	var events []EvictEvent
	if over {
		var err error
		_, _, events, err = s.evictLocked(n/10*9, policy, "size")
		if err != nil {
			s.log.Warn("evict after lowering max size", "max_size", n, "err", err)
		}
	}
	s.wmu.Unlock()
	s.emit(events)
}

// SetPolicy changes the eviction policy at runtime.
func (s *Store) SetPolicy(p string) error {
	if err := validPolicy(p); err != nil {
		return err
	}
	s.mu.Lock()
	s.policy = p
	s.mu.Unlock()
	return nil
}

// Policy is the eviction policy in force.
func (s *Store) Policy() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.policy
}

// MaxSize is the size bound in force (0 = unbounded).
func (s *Store) MaxSize() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxSize
}

// Close persists pending access statistics and closes the index.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		<-s.verified
		s.flushAccess()
		s.hotClose()
		if cerr := s.db.Close(); cerr != nil {
			err = fmt.Errorf("store: close index: %w", cerr)
		}
	})
	return err
}

func (s *Store) blobPath(h hashKey) string {
	x := h.String()
	return filepath.Join(s.blobDir, x[:2], x)
}

func (s *Store) emit(events []EvictEvent) {
	if s.opts.OnEvict == nil {
		return
	}
	for _, e := range events {
		s.opts.OnEvict(e)
	}
}
