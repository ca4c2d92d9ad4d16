package gocacheprog

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LocalDir is the helper's own directory, where every DiskPath lives: a
// bounded cache shared by every helper process that names it (one per go
// command), so files are written to a temporary name and renamed into
// place, and a reader never sees half a file.
//
//	o/<2 hex>/<output ID>   an output (the bytes DiskPath points at)
//	a/<2 hex>/<action ID>   an action: "v1 <output ID> <size> <put time, unix ns>"
//	tmp/                    files being written
//
// Past MaxSize, the least recently used files are removed down to 90% of
// it. Recency is the file's mtime, refreshed on use at most once per
// touchInterval (the go command's own cache does the same), so every
// process sees the others' use. Files this process handed to its go command
// are never removed by it: they must live until close.
type LocalDir struct {
	root string
	max  int64

	// mu guards the index below.
	mu sync.Mutex
	// files is every file of the directory this process knows of: those
	// found by the scan at start, and those it wrote since.
	files map[string]*fileInfo
	// total is the sum of the sizes in files.
	total int64
	// scanned is set once the start-up scan merged into files; no eviction
	// runs before (a partial index would remove the wrong files).
	scanned bool
	// evicting is set while an eviction runs, so puts do not start another.
	evicting bool
}

type fileInfo struct {
	size  int64
	used  time.Time
	inUse bool // handed to this process's go command as a DiskPath
}

// touchInterval is how stale a file's mtime may get before a use refreshes
// it; protectWindow is how recent a use keeps a file from eviction. The gap
// between them is the longest go command another process's eviction cannot
// disturb (the go command's own cache touches hourly and trims after days).
const (
	touchInterval = 10 * time.Minute
	protectWindow = time.Hour
)

// lowWater is the fraction of MaxSize an eviction frees down to.
const lowWater = 0.9

// Entry is what an action ID resolves to.
type Entry struct {
	OutputID [32]byte
	Size     int64
	Time     time.Time
}

// OpenLocalDir creates the directory if needed and starts indexing what is
// already there in the background (the go command waits for the helper's
// first message, so start-up must not wait for a scan).
func OpenLocalDir(root string, maxSize int64) (*LocalDir, error) {
	for _, d := range []string{"o", "a", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("local cache directory: %w", err)
		}
	}
	d := &LocalDir{root: root, max: maxSize, files: map[string]*fileInfo{}}
	go d.scan()
	return d, nil
}

// Root is the directory.
func (d *LocalDir) Root() string { return d.root }

func (d *LocalDir) outputPath(out [32]byte) string {
	h := hex.EncodeToString(out[:])
	return filepath.Join(d.root, "o", h[:2], h)
}

func (d *LocalDir) actionPath(action []byte) string {
	h := hex.EncodeToString(action)
	return filepath.Join(d.root, "a", h[:2], h)
}

// Get resolves an action ID to its entry and output file. A missing,
// malformed or dangling entry (its output evicted by another process) is a
// miss.
func (d *LocalDir) Get(action []byte) (Entry, string, bool) {
	apath := d.actionPath(action)
	b, err := os.ReadFile(apath)
	if err != nil {
		return Entry{}, "", false
	}
	e, ok := parseAction(b)
	if !ok {
		return Entry{}, "", false
	}
	opath := d.outputPath(e.OutputID)
	// Marking the file in use and checking it exist happen under the lock
	// evictions remove under, so this process never hands out a path its
	// own eviction is about to remove.
	d.mu.Lock()
	fi, err := os.Stat(opath)
	if err != nil || fi.Size() != e.Size {
		d.mu.Unlock()
		return Entry{}, "", false
	}
	staleA := d.useLocked(apath, int64(len(b)), time.Time{})
	staleO := d.useLocked(opath, fi.Size(), fi.ModTime())
	d.mu.Unlock()
	touch(apath, staleA)
	touch(opath, staleO)
	return e, opath, true
}

// useLocked marks a file as used now and in use by this process, and
// reports whether its mtime is stale enough to be refreshed (so other
// processes' evictions see the use). mtime is the file's, when the caller
// has it.
func (d *LocalDir) useLocked(path string, size int64, mtime time.Time) bool {
	now := time.Now()
	f := d.files[path]
	if f == nil {
		f = &fileInfo{size: size, used: mtime}
		d.files[path] = f
		d.total += size
	}
	stale := now.Sub(f.used) > touchInterval
	if !mtime.IsZero() && now.Sub(mtime) <= touchInterval {
		stale = false
	}
	f.used, f.inUse = now, true
	return stale
}

func touch(path string, stale bool) {
	if stale {
		now := time.Now()
		os.Chtimes(path, now, now)
	}
}

// Put stores body (size bytes, whose SHA-256 must be outputID when one is
// given) under action, and returns the entry and the output's path. The
// put time is when; the zero time means now.
func (d *LocalDir) Put(action, outputID []byte, size int64, when time.Time, body io.Reader) (Entry, string, error) {
	if when.IsZero() {
		when = time.Now()
	}
	tmp, err := os.CreateTemp(filepath.Join(d.root, "tmp"), "put-")
	if err != nil {
		return Entry{}, "", fmt.Errorf("local cache: %w", err)
	}
	installed := false
	defer func() {
		if !installed {
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Entry{}, "", fmt.Errorf("writing output: %w", err)
	}
	if n != size {
		return Entry{}, "", fmt.Errorf("output of %d bytes, expected %d", n, size)
	}
	e := Entry{Size: n, Time: when}
	h.Sum(e.OutputID[:0])
	if len(outputID) > 0 && !slices.Equal(outputID, e.OutputID[:]) {
		return Entry{}, "", fmt.Errorf("output ID %x is not the SHA-256 of the body (%x)", outputID, e.OutputID)
	}
	opath := d.outputPath(e.OutputID)
	kept, err := d.install(tmp.Name(), opath, n, true)
	if err != nil {
		return Entry{}, "", err
	}
	installed = !kept
	if err := d.writeAction(action, e); err != nil {
		return Entry{}, "", err
	}
	d.maybeEvict()
	return e, opath, nil
}

// writeAction records action -> entry (temporary file, then rename).
func (d *LocalDir) writeAction(action []byte, e Entry) error {
	line := fmt.Sprintf("v1 %x %d %d\n", e.OutputID, e.Size, e.Time.UnixNano())
	tmp, err := os.CreateTemp(filepath.Join(d.root, "tmp"), "action-")
	if err != nil {
		return fmt.Errorf("local cache: %w", err)
	}
	_, err = tmp.WriteString(line)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		_, err = d.install(tmp.Name(), d.actionPath(action), int64(len(line)), false)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing action entry: %w", err)
	}
	return nil
}

// install moves a finished file of size bytes to path and marks it in use.
// With keepExisting (outputs: the name is the content's hash, and a running
// build may be reading the file), a file already there of that size is kept.
// Under the lock, so an eviction of this process cannot remove the file
// between the rename and the mark. kept reports that the existing file was
// kept (tmp is then the caller's to remove).
func (d *LocalDir) install(tmp, path string, size int64, keepExisting bool) (kept bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if keepExisting {
		if fi, err := os.Stat(path); err == nil && fi.Size() == size {
			d.useLocked(path, size, fi.ModTime())
			return true, nil
		}
	}
	if err := renameInto(tmp, path); err != nil {
		return false, err
	}
	if old := d.files[path]; old != nil {
		d.total -= old.size
	}
	d.files[path] = &fileInfo{size: size, used: time.Now(), inUse: true}
	d.total += size
	return false, nil
}

// renameInto moves a finished file to its place, creating its shard.
func renameInto(from, to string) error {
	err := os.Rename(from, to)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(to), 0o755); err == nil {
			err = os.Rename(from, to)
		}
	}
	if err != nil {
		return fmt.Errorf("local cache: %w", err)
	}
	return nil
}

func parseAction(b []byte) (Entry, bool) {
	f := strings.Fields(string(b))
	if len(f) != 4 || f[0] != "v1" {
		return Entry{}, false
	}
	var e Entry
	if out, err := hex.DecodeString(f[1]); err != nil || len(out) != len(e.OutputID) {
		return Entry{}, false
	} else {
		copy(e.OutputID[:], out)
	}
	size, err1 := strconv.ParseInt(f[2], 10, 64)
	ns, err2 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || size < 0 {
		return Entry{}, false
	}
	e.Size, e.Time = size, time.Unix(0, ns)
	return e, true
}

// scan indexes the files already in the directory (by mtime), merges them
// with what this process wrote meanwhile, and evicts if the directory is
// over its size. Stale temporary files (a helper killed mid-write) go.
func (d *LocalDir) scan() {
	found := map[string]*fileInfo{}
	for _, sub := range []string{"o", "a"} {
		filepath.WalkDir(filepath.Join(d.root, sub), func(path string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return nil
			}
			if fi, err := de.Info(); err == nil {
				found[path] = &fileInfo{size: fi.Size(), used: fi.ModTime()}
			}
			return nil
		})
	}
	if tmps, err := os.ReadDir(filepath.Join(d.root, "tmp")); err == nil {
		for _, de := range tmps {
			if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.Remove(filepath.Join(d.root, "tmp", de.Name()))
			}
		}
	}
	d.mu.Lock()
	for path, f := range found {
		if _, ok := d.files[path]; !ok {
			d.files[path] = f
			d.total += f.size
		}
	}
	d.scanned = true
	d.mu.Unlock()
	d.maybeEvict()
}

// Usage is the indexed size and file count (for tests and stats).
func (d *LocalDir) Usage() (bytes int64, files int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total, len(d.files)
}

// WaitScanned blocks until the start-up scan is merged (tests).
func (d *LocalDir) WaitScanned() {
	for {
		d.mu.Lock()
		done := d.scanned && !d.evicting
		d.mu.Unlock()
		if done {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// maybeEvict starts an eviction in the background when the directory is
// over its size and none runs: a put (or a get served by the edge) must not
// wait for it.
func (d *LocalDir) maybeEvict() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.scanned || d.evicting || d.max <= 0 || d.total <= d.max {
		return
	}
	d.evicting = true
	go d.evict()
}

// evict removes least recently used files down to the low-water mark. The
// bound is soft where correctness needs it: files this process handed out,
// and files any process used within protectWindow (their mtime says so),
// stay. The caller set d.evicting.
func (d *LocalDir) evict() {
	d.mu.Lock()
	type victim struct {
		path string
		used time.Time
	}
	var vs []victim
	for p, f := range d.files {
		if !f.inUse && time.Since(f.used) > protectWindow {
			vs = append(vs, victim{p, f.used})
		}
	}
	target := int64(float64(d.max) * lowWater)
	d.mu.Unlock()
	slices.SortFunc(vs, func(a, b victim) int { return a.used.Compare(b.used) })

	// Removal runs under the lock (Get and install mark files under it), in
	// small batches so a long eviction never stalls a get for long.
	const batch = 32
	for len(vs) > 0 {
		d.mu.Lock()
		done := d.total <= target
		for i := 0; i < batch && len(vs) > 0 && !done; i++ {
			v := vs[0]
			vs = vs[1:]
			f := d.files[v.path]
			if f == nil || f.inUse {
				continue
			}
			// Another process may have used it since: a fresh mtime spares it.
			if fi, err := os.Stat(v.path); err == nil && time.Since(fi.ModTime()) < protectWindow {
				f.used = fi.ModTime()
				continue
			}
			if err := os.Remove(v.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				continue
			}
			delete(d.files, v.path)
			d.total -= f.size
			done = d.total <= target
		}
		d.mu.Unlock()
		if done {
			break
		}
	}
	d.mu.Lock()
	d.evicting = false
	d.mu.Unlock()
}
