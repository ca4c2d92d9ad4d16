package gocacheprog

import (
	"bytes"
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// age sets every file's mtime under dir to ago in the past.
func age(t *testing.T, dir string, ago time.Duration) {
	t.Helper()
	old := time.Now().Add(-ago)
	filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			os.Chtimes(p, old, old)
		}
		return nil
	})
}

func put(t *testing.T, d *LocalDir, i int, body []byte) string {
	t.Helper()
	out := sha256.Sum256(body)
	_, path, err := d.Put(actionID(i), out[:], int64(len(body)), time.Time{}, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// Past its size the directory drops its least recently used entries down
// to the low-water mark, and a get refreshes an entry's recency; files this
// process handed out survive even over the limit.
func TestLocalDirEvictsLeastRecentlyUsed(t *testing.T) {
	root := t.TempDir()
	const size = 100 << 10
	d, err := OpenLocalDir(root, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	d.WaitScanned()
	bodies := make([][]byte, 10)
	for i := range bodies {
		bodies[i] = randomBytes(t, size)
		put(t, d, i, bodies[i])
	}
	// A later process finds them used hours ago, entry 1 first, entry 9
	// last, except entry 0, which some build read just now.
	for i := range bodies {
		when := time.Now().Add(-3*time.Hour + time.Duration(i)*time.Minute)
		if i == 0 {
			when = time.Now()
		}
		for _, p := range []string{d.actionPath(actionID(i)), d.outputPath(sha256.Sum256(bodies[i]))} {
			os.Chtimes(p, when, when)
		}
	}

	// Room for about 5 entries.
	d2, err := OpenLocalDir(root, 5*size+4096)
	if err != nil {
		t.Fatal(err)
	}
	d2.WaitScanned()
	held := put(t, d2, 10, randomBytes(t, size))
	d2.WaitScanned()
	if total, _ := d2.Usage(); total > 5*size+4096 {
		t.Fatalf("directory holds %d bytes after eviction, bound %d", total, 5*size+4096)
	}
	if _, _, ok := d2.Get(actionID(0)); !ok {
		t.Fatal("entry used within the protect window was evicted")
	}
	if _, err := os.Stat(held); err != nil {
		t.Fatalf("output handed out by this process was evicted: %v", err)
	}
	// The scan found 10 entries where 5 fit and evicted to 90% (4.5
	// entries): entry 0 and the three old ones used last stayed; the new
	// put then fits.
	var kept []int
	for i := 1; i < 10; i++ {
		if _, _, ok := d2.Get(actionID(i)); ok {
			kept = append(kept, i)
		}
	}
	if !slices.Equal(kept, []int{7, 8, 9}) {
		t.Fatalf("old entries kept: %v, want the three used last, [7 8 9]", kept)
	}

	// New puts past the bound evict what is left that may go; the Gets
	// above put 7 to 9 in use, so they stay too, over the bound.
	var mine []string
	for i := 11; i < 14; i++ {
		mine = append(mine, put(t, d2, i, randomBytes(t, size)))
	}
	d2.WaitScanned()
	for _, p := range append(mine, held) {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("output this process handed out was evicted: %v", err)
		}
	}
	for _, i := range []int{0, 7, 8, 9} {
		if _, _, ok := d2.Get(actionID(i)); !ok {
			t.Fatalf("entry %d in use was evicted", i)
		}
	}
}

// A scan at start removes temporary files a killed helper left behind,
// and ignores malformed action files.
func TestLocalDirRecovers(t *testing.T) {
	root := t.TempDir()
	d, err := OpenLocalDir(root, 0)
	if err != nil {
		t.Fatal(err)
	}
	d.WaitScanned()
	stale := filepath.Join(root, "tmp", "put-123")
	os.WriteFile(stale, []byte("half"), 0o644)
	age(t, filepath.Join(root, "tmp"), 2*time.Hour)
	bad := d.actionPath(actionID(7))
	os.MkdirAll(filepath.Dir(bad), 0o755)
	os.WriteFile(bad, []byte("v1 zz 1 2\n"), 0o644)

	d2, err := OpenLocalDir(root, 0)
	if err != nil {
		t.Fatal(err)
	}
	d2.WaitScanned()
	if _, err := os.Stat(stale); err == nil {
		t.Fatal("stale temporary file survived the scan")
	}
	if _, _, ok := d2.Get(actionID(7)); ok {
		t.Fatal("malformed action file is a hit")
	}
	// An action whose output was removed (by another process) is a miss.
	body := randomBytes(t, 10)
	p := put(t, d2, 8, body)
	os.Remove(p)
	if _, _, ok := d2.Get(actionID(8)); ok {
		t.Fatal("action with a missing output is a hit")
	}
}
