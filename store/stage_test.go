package store

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/tuist/fabrik-node/tier"
)

// Bytes left unhashed by Append are hashed at Seal, in memory or read back
// from the file, in order with those Write hashed: the right content seals
// with its hash whatever the mix, a wrong or short one is refused and
// removed. Sizes: inline, a file from the start, and a blob of unknown size
// that starts in memory and spills into a file.
func TestAppendLeavesTheHashToSeal(t *testing.T) {
	s := openStore(t, Options{})
	mixes := map[string]func(i int) bool{ // piece i written (true) or appended
		"append only":        func(int) bool { return false },
		"write then append":  func(i int) bool { return i < 2 },
		"append then write":  func(i int) bool { return i >= 2 },
		"alternate":          func(i int) bool { return i%2 == 0 },
		"write only (plain)": func(int) bool { return true },
	}
	for _, n := range []int{1000, 3<<20 + 5} {
		body := content(7, n)
		for name, c := range map[string]struct {
			hash    string
			size    int64
			wantErr bool
		}{
			"sound":      {sum(body), int64(len(body)), false},
			"wrong hash": {sum(body[1:]), int64(len(body)), true},
			"short":      {sum(body), int64(len(body)) + 1, true},
			"no size":    {sum(body), -1, false},
			"no hash":    {"", -1, false},
		} {
			for mix, written := range mixes {
				st, err := s.Stager().New(c.hash, c.size)
				if err != nil {
					t.Fatal(err)
				}
				piece := max(n/7, 1)
				for i, p := 0, body; len(p) > 0; i, p = i+1, p[min(len(p), piece):] {
					put := st.Append
					if written(i) {
						put = st.Write
					}
					if _, err := put(p[:min(len(p), piece)]); err != nil {
						t.Fatal(err)
					}
				}
				err = st.Seal()
				switch {
				case c.wantErr && !errors.Is(err, tier.ErrInvalid):
					t.Errorf("%d bytes, %s, %s: Seal = %v, want ErrInvalid", n, name, mix, err)
				case !c.wantErr && (err != nil || st.Hash() != sum(body) || st.Size() != int64(len(body))):
					t.Errorf("%d bytes, %s, %s: Seal = %v, hash %s size %d", n, name, mix, err, st.Hash(), st.Size())
				}
				st.Discard()
			}
		}
	}
	if f := files(t, filepath.Join(s.opts.Dir, "tmp")); len(f) != 0 {
		t.Errorf("staging files left behind: %v", f)
	}
}
