package oci

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/internal/adaptertest"
	"github.com/tuist/fabrik-node/internal/cachetest"
)

func serve(c adapters.Cache, max int64) http.Handler {
	mux := http.NewServeMux()
	New(c, Options{HTTPOptions: adapters.HTTPOptions{MaxArtifactSize: max}}).Routes(mux)
	return mux
}

// Every outcome of the shared write path, for a monolithic blob upload.
func TestBlobUploadOutcomes(t *testing.T) {
	body := adaptertest.RandomBytes(t, 2048)
	adaptertest.Outcomes{
		Table: blobAnswers, Cache: cachetest.New(t), Serve: serve, Method: http.MethodPost, Body: body,
		Path: func(i int) string { return fmt.Sprintf("/v2/repo%d/blobs/uploads/?digest=%s", i, digest(body)) },
	}.Run(t)
}

// And for a manifest pushed by digest.
func TestManifestOutcomes(t *testing.T) {
	body := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[],"annotations":{"pad":"%0900d"}}`, ociIndex, 0))
	adaptertest.Outcomes{
		Table: manifestAnswers, Cache: cachetest.New(t), Serve: serve, Body: body,
		Path: func(i int) string { return fmt.Sprintf("/v2/repo%d/manifests/%s", i, digest(body)) },
	}.Run(t)
}
