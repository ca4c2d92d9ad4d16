package script

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Glob lists the files (and symlinks) under dir matching pattern, as sorted
// slash-separated paths relative to dir. `**` matches any number of path
// segments (including none); `*`, `?` and `[...]` match within one
// segment. A pattern naming a directory, or ending in "/", means every file
// beneath it. A pattern that matches nothing gives an empty list: the
// pattern itself is part of the key, so adding a first match is a change.
func Glob(dir, pattern string) ([]string, error) {
	pattern = filepath.ToSlash(pattern)
	dirOnly := strings.HasSuffix(pattern, "/")
	pattern = strings.TrimSuffix(pattern, "/")
	if pattern == "" {
		pattern = "."
	}
	segs := strings.Split(path.Clean(pattern), "/")
	static := 0
	for static < len(segs) && !hasMeta(segs[static]) {
		static++
	}
	base := path.Join(segs[:static]...)
	if base == "" {
		base = "."
	}
	root := filepath.Join(dir, filepath.FromSlash(base))
	if static == len(segs) {
		fi, err := os.Lstat(root)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			if dirOnly {
				return nil, nil
			}
			return []string{base}, nil
		}
		return walkAll(root, base)
	}
	rest := segs[static:]
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return filepath.SkipDir
			}
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			// A matched directory contributes every file beneath it.
			if match(rest, strings.Split(rel, "/")) && !strings.Contains(rest[len(rest)-1], "**") {
				files, err := walkAll(p, path.Join(base, rel))
				if err != nil {
					return err
				}
				out = append(out, files...)
				return filepath.SkipDir
			}
			return nil
		}
		if !dirOnly && match(rest, strings.Split(rel, "/")) {
			out = append(out, path.Join(base, rel))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(out)
	return dedupe(out), nil
}

// walkAll lists every non-directory entry under root, named under base.
func walkAll(root, base string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, path.Join(base, filepath.ToSlash(rel)))
		return nil
	})
	sort.Strings(out)
	return out, err
}

func hasMeta(s string) bool { return strings.ContainsAny(s, "*?[") }

// match reports whether the path segments name match the pattern segments.
func match(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if match(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pat[0], name[0]); err != nil || !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
