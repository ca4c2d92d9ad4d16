package store

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/tuist/fabrik-node/tier"
)

// A deferred staging blob is hashed at Seal, in memory or read back from its
// file: the right content seals with its hash, a wrong or short one is
// refused and removed. Sizes: inline, a file from the start, and a blob of
// unknown size that starts in memory and spills into a file.
func TestDeferredStagingVerifiesAtSeal(t *testing.T) {
	s := openStore(t, Options{})
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
			st, err := s.Stager().NewDeferred(c.hash, c.size)
			if err != nil {
				t.Fatal(err)
			}
			for p := body; len(p) > 0; p = p[min(len(p), 100<<10):] {
				if _, err := st.Write(p[:min(len(p), 100<<10)]); err != nil {
					t.Fatal(err)
				}
			}
			err = st.Seal()
			switch {
			case c.wantErr && !errors.Is(err, tier.ErrInvalid):
				t.Errorf("%d bytes, %s: Seal = %v, want ErrInvalid", n, name, err)
			case !c.wantErr && (err != nil || st.Hash() != sum(body) || st.Size() != int64(len(body))):
				t.Errorf("%d bytes, %s: Seal = %v, hash %s size %d", n, name, err, st.Hash(), st.Size())
			}
			st.Discard()
		}
	}
	if f := files(t, filepath.Join(s.opts.Dir, "tmp")); len(f) != 0 {
		t.Errorf("staging files left behind: %v", f)
	}
}
