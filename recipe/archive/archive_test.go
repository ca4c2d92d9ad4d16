package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestRoundTripKeepsModesLinksAndEmptyDirs(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "out", "empty"), 0o755)
	os.MkdirAll(filepath.Join(src, "out", "ro"), 0o755)
	os.WriteFile(filepath.Join(src, "out", "x.sh"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(src, "out", "ro", "f"), []byte("f"), 0o400)
	os.Chmod(filepath.Join(src, "out", "ro"), 0o555)
	os.Symlink("x.sh", filepath.Join(src, "out", "link"))
	big := bytes.Repeat([]byte("0123456789"), 300_000) // past smallFile: the streamed path
	os.WriteFile(filepath.Join(src, "big"), big, 0o640)
	t.Cleanup(func() { os.Chmod(filepath.Join(src, "out", "ro"), 0o755) })

	var buf bytes.Buffer
	if err := Write(&buf, src, []string{"out", "big"}); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := Extract(bytes.NewReader(buf.Bytes()), dst, []string{"out", "big"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dst, "out", "ro"), 0o755) })
	for p, mode := range map[string]os.FileMode{"out/x.sh": 0o755, "out/ro/f": 0o400, "out/ro": os.ModeDir | 0o555, "out/empty": os.ModeDir | 0o755, "big": 0o640} {
		fi, err := os.Lstat(filepath.Join(dst, p))
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v %v, want %v", p, fi.Mode(), err, mode)
		}
	}
	if l, err := os.Readlink(filepath.Join(dst, "out", "link")); err != nil || l != "x.sh" {
		t.Errorf("link %q %v", l, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "big")); !bytes.Equal(b, big) {
		t.Error("big file differs")
	}
}

func TestMissingOutputIsAnError(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, t.TempDir(), []string{"nothing"}); err == nil || !strings.Contains(err.Error(), `"nothing" was not produced`) {
		t.Fatalf("err %v", err)
	}
}

// A crafted archive cannot write outside the declared outputs, directly
// or through a symlink it planted.
func TestExtractRefusesEscapes(t *testing.T) {
	craft := func(entries ...tar.Header) []byte {
		var buf bytes.Buffer
		zw, _ := zstd.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		for _, h := range entries {
			tw.WriteHeader(&h)
			if h.Typeflag == tar.TypeReg {
				tw.Write(make([]byte, h.Size))
			}
		}
		tw.Close()
		zw.Close()
		return buf.Bytes()
	}
	for name, arc := range map[string][]byte{
		"dotdot":  craft(tar.Header{Name: "out/../../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}),
		"other":   craft(tar.Header{Name: "elsewhere", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}),
		"symlink": craft(tar.Header{Name: "out/l", Typeflag: tar.TypeSymlink, Linkname: "/tmp"}, tar.Header{Name: "out/l/evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}),
	} {
		if err := Extract(bytes.NewReader(arc), t.TempDir(), []string{"out"}); err == nil {
			t.Errorf("%s: extracted", name)
		}
	}
}
