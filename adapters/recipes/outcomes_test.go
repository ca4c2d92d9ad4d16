package recipes

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/internal/adaptertest"
	"github.com/tuist/fabrik-node/internal/cachetest"
)

// Every upload outcome of the shared write path answers with the status
// from writeAnswers, and no refusal stores anything.
func TestUploadOutcomes(t *testing.T) {
	adaptertest.Outcomes{
		Table: writeAnswers,
		Cache: cachetest.New(t),
		Serve: func(c adapters.Cache, max int64) http.Handler {
			mux := http.NewServeMux()
			New(c, Options{HTTPOptions: adapters.HTTPOptions{MaxArtifactSize: max}, LedgerPath: t.TempDir() + "/ledger"}).Routes(mux)
			return mux
		},
		Path: func(i int) string { return fmt.Sprintf("/recipes/v1/runs/%064x.out", i+1) },
	}.Run(t)
}
