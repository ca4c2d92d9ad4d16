package store

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/tuist/fabrik-node/tier"
)

// A deferred staging file hashes at Seal what is on disk: the right
// content seals with its hash, a wrong or short one is refused and removed.
func TestDeferredStagingVerifiesAtSeal(t *testing.T) {
	s := openStore(t, Options{})
	body := content(7, 3<<20+5)
	for name, c := range map[string]struct {
		hash    string
		size    int64
		wantErr bool
	}{
		"sound":      {sum(body), int64(len(body)), false},
		"wrong hash": {sum(body[1:]), int64(len(body)), true},
		"short":      {sum(body), int64(len(body)) + 1, true},
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
			t.Errorf("%s: Seal = %v, want ErrInvalid", name, err)
		case !c.wantErr && (err != nil || st.Hash() != sum(body) || st.Size() != int64(len(body))):
			t.Errorf("%s: Seal = %v, hash %s size %d", name, err, st.Hash(), st.Size())
		}
		st.Discard()
	}
	if f := files(t, filepath.Join(s.opts.Dir, "tmp")); len(f) != 0 {
		t.Errorf("staging files left behind: %v", f)
	}
}
