// Package archive packs a recipe's declared outputs into one tar stream
// compressed with zstd, and restores them exactly: file bytes, permission
// bits, modification times, symlinks (as links, never followed) and empty
// directories. A restore first removes what is at each declared output, so
// the result is the archived tree and nothing else.
package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Write archives outputs (paths relative to dir, files or directories) to
// w. A declared output that does not exist is an error: restoring an entry
// without it would not reproduce the run.
func Write(w io.Writer, dir string, outputs []string) error {
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	sorted := append([]string(nil), outputs...)
	sort.Strings(sorted)
	buf := make([]byte, 256*1024)
	for _, out := range sorted {
		root := filepath.Join(dir, filepath.FromSlash(out))
		if _, err := os.Lstat(root); err != nil {
			zw.Close()
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("declared output %q was not produced", out)
			}
			return err
		}
		// WalkDir visits in lexical order, so archives are deterministic.
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			return addEntry(tw, p, filepath.ToSlash(rel), buf)
		})
		if err != nil {
			zw.Close()
			return fmt.Errorf("archive %s: %w", out, err)
		}
	}
	if err := tw.Close(); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

func addEntry(tw *tar.Writer, p, name string, buf []byte) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	link := ""
	if fi.Mode()&os.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	// Owners and access times belong to the machine, not to the output.
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	hdr.AccessTime, hdr.ChangeTime = fi.ModTime(), fi.ModTime()
	hdr.Format = tar.FormatPAX
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	// The struct hides *os.File's WriterTo, whose fallback allocates per file.
	n, err := io.CopyBuffer(tw, struct{ io.Reader }{f}, buf)
	if err == nil && n != fi.Size() {
		err = fmt.Errorf("%s changed size while being archived", name)
	}
	return err
}

// Extract restores an archive written by Write into dir. Every entry must
// lie under one of outputs (an archive cannot write anywhere else); what is
// at each output is removed first. Small files are written by a few
// goroutines while the stream is read: a restore of thousands of files is
// bound by file creation, not by decompression.
func Extract(r io.Reader, dir string, outputs []string) error {
	for _, out := range outputs {
		if err := os.RemoveAll(filepath.Join(dir, filepath.FromSlash(out))); err != nil {
			return fmt.Errorf("clear output %s: %w", out, err)
		}
	}
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return err
	}
	defer zr.Close()
	w := newWriters(4)
	err = extract(tar.NewReader(zr), dir, outputs, w)
	if werr := w.wait(); err == nil {
		err = werr
	}
	return err
}

type dirEntry struct {
	path string
	hdr  *tar.Header
}

func extract(tr *tar.Reader, dir string, outputs []string, w *writers) error {
	var dirs []dirEntry
	// links are the symlinks restored so far: no later entry may be
	// written through one (a crafted archive could otherwise escape dir).
	links := map[string]bool{}
	made := map[string]bool{}
	mkdirAll := func(p string) error {
		if made[p] {
			return nil
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		made[p] = true
		return nil
	}
	buf := make([]byte, 256*1024)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if err := w.failed(); err != nil {
			return err
		}
		name := path.Clean(strings.TrimSuffix(hdr.Name, "/"))
		if !under(name, outputs) {
			return fmt.Errorf("archive entry %q is outside the declared outputs", hdr.Name)
		}
		for p := path.Dir(name); p != "." && p != "/"; p = path.Dir(p) {
			if links[p] {
				return fmt.Errorf("archive entry %q lies beneath the symlink %q", hdr.Name, p)
			}
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		if err := mkdirAll(filepath.Dir(target)); err != nil {
			return err
		}
		mode := fs.FileMode(hdr.Mode).Perm() | fs.FileMode(hdr.Mode)&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			made[target] = true
			// Modes and times of directories are set last: files created
			// inside would change the time, and a read-only mode would
			// stop their creation.
			dirs = append(dirs, dirEntry{target, hdr})
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
			links[name] = true
		case tar.TypeReg:
			if hdr.Size <= smallFile {
				data := make([]byte, hdr.Size)
				if _, err := io.ReadFull(tr, data); err != nil {
					return fmt.Errorf("%s: archive entry truncated: %w", hdr.Name, err)
				}
				w.submit(fileJob{target, data, mode, hdr.ModTime})
				continue
			}
			if err := writeFile(target, tr, mode, hdr.Size, buf); err != nil {
				return err
			}
			if err := os.Chtimes(target, hdr.ModTime, hdr.ModTime); err != nil {
				return err
			}
		default:
			return fmt.Errorf("archive entry %q has unsupported type %q", hdr.Name, hdr.Typeflag)
		}
	}
	// Every file must be in place before its directory's mode and time.
	if err := w.wait(); err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := os.Chmod(d.path, fs.FileMode(d.hdr.Mode).Perm()); err != nil {
			return err
		}
		if err := os.Chtimes(d.path, d.hdr.ModTime, d.hdr.ModTime); err != nil {
			return err
		}
	}
	return nil
}

// smallFile is the largest file handed to the writer goroutines (its
// bytes are held in memory until written).
const smallFile = 1 << 20

func writeFile(target string, r io.Reader, mode fs.FileMode, size int64, buf []byte) error {
	f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(f, r, buf)
	if err == nil && n != size {
		err = fmt.Errorf("%s: archive entry truncated", target)
	}
	if err == nil {
		// Chmod after creating: the umask must not change the restored mode.
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func under(name string, outputs []string) bool {
	if name == "." || name == ".." || strings.HasPrefix(name, "../") || path.IsAbs(name) {
		return false
	}
	for _, o := range outputs {
		o = path.Clean(filepath.ToSlash(o))
		if name == o || strings.HasPrefix(name, o+"/") {
			return true
		}
	}
	return false
}

type fileJob struct {
	target string
	data   []byte
	mode   fs.FileMode
	mtime  time.Time
}

// writers write small files concurrently; the first error wins.
type writers struct {
	jobs chan fileJob
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
	once sync.Once
}

func newWriters(n int) *writers {
	w := &writers{jobs: make(chan fileJob, 64)}
	for range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for j := range w.jobs {
				if w.failed() != nil {
					continue
				}
				err := writeFile(j.target, bytes.NewReader(j.data), j.mode, int64(len(j.data)), nil)
				if err == nil {
					err = os.Chtimes(j.target, j.mtime, j.mtime)
				}
				if err != nil {
					w.mu.Lock()
					if w.err == nil {
						w.err = err
					}
					w.mu.Unlock()
				}
			}
		}()
	}
	return w
}

func (w *writers) submit(j fileJob) { w.jobs <- j }

func (w *writers) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// wait closes the queue and waits for every write; safe to call twice.
func (w *writers) wait() error {
	w.once.Do(func() {
		close(w.jobs)
		w.wg.Wait()
	})
	return w.failed()
}
