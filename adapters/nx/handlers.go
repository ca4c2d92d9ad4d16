package nx

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
)

func (a *Adapter) observe(op string, start time.Time) {
	a.opts.Metrics.ObserveRequest(buildSystem, op, start)
}

// get streams a cached artifact: 200 with the body, 404 on a miss. A failing
// lookup is a miss too: Nx then rebuilds the task instead of stopping.
func (a *Adapter) get(w http.ResponseWriter, r *http.Request) {
	defer a.observe("get", time.Now())
	ref, ok := ref(r)
	if !ok {
		writeText(w, http.StatusBadRequest, "malformed hash")
		return
	}
	if r.Method == http.MethodHead {
		a.head(w, r, ref)
		return
	}
	res, err := a.cache.Get(r.Context(), ref)
	if err != nil {
		a.log.Warn("lookup failed, answering a miss", "ref", ref.String(), "err", err)
	}
	if err != nil || !res.Found {
		a.opts.Metrics.Miss(buildSystem)
		writeText(w, http.StatusNotFound, "not found")
		return
	}
	defer res.Body.Close()
	a.opts.Metrics.Hit(buildSystem)
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(res.Meta.Size, 10))
	w.WriteHeader(http.StatusOK)
	n, err := adapters.SendBody(w, res.Body, res.Meta.Size)
	a.opts.Metrics.DownloadedBy(buildSystem, n)
	if err != nil {
		// The status is already sent; a short body is what tells the client.
		a.log.Debug("download interrupted", "ref", ref.String(), "sent", n, "err", err)
	}
}

// head answers from metadata alone. Nx itself never sends HEAD, but the GET
// pattern matches it, and opening the blob only to discard it would be waste.
func (a *Adapter) head(w http.ResponseWriter, r *http.Request, ref messages.Ref) {
	st, err := a.cache.Stat(r.Context(), ref)
	if err != nil || !st.Found {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(st.Meta.Size, 10))
	w.WriteHeader(http.StatusOK)
}

// writeAnswers is Nx's reading of each upload outcome. Every refusal the
// node makes is 403: the Nx client stops the user's run on any PUT status
// but 200, 403 and 409, and a cache that cannot store must not fail a build.
var writeAnswers = adapters.StatusTable{
	adapters.Stored:      {Status: http.StatusOK},
	adapters.TooLarge:    {Status: http.StatusForbidden, Message: "not stored"},
	adapters.Full:        {Status: http.StatusForbidden, Message: "the cache is full; not stored"},
	adapters.Truncated:   {Status: http.StatusBadRequest, Message: "incomplete upload; not stored"},
	adapters.Invalid:     {Status: http.StatusBadRequest, Message: "artifact rejected; not stored"},
	adapters.Unavailable: {Status: http.StatusForbidden, Message: "the cache cannot store artifacts right now"},
	adapters.Internal:    {Status: http.StatusForbidden, Message: "the cache could not store the artifact"},
}

// put stores an upload once: 200 when stored, 409 when the hash already has a
// record (Nx entries are immutable), 403 when the node will not store it.
func (a *Adapter) put(w http.ResponseWriter, r *http.Request) {
	defer a.observe("put", time.Now())
	ref, ok := ref(r)
	if !ok {
		writeText(w, http.StatusBadRequest, "malformed hash")
		return
	}
	// Without a declared length a cut-off upload cannot be told from a
	// complete one, and Nx would keep a corrupt entry forever.
	if r.ContentLength < 0 {
		writeText(w, http.StatusLengthRequired, "Content-Length is required")
		return
	}
	if max := a.opts.MaxArtifactSize; max > 0 && r.ContentLength > max {
		// Refused before the claim and the lookup: nothing to store.
		ans := writeAnswers.For(adapters.Result{Outcome: adapters.TooLarge, Err: fmt.Errorf("artifact of %d bytes exceeds this cache's limit of %d bytes", r.ContentLength, max)})
		writeText(w, ans.Status, ans.Message)
		return
	}
	// Claim the hash before checking for a record, so that of two
	// concurrent uploads exactly one stores. The other waits for it: 409
	// only once a record exists, and if the first upload fails the second
	// stores instead (answering 409 early would leave Nx believing in a
	// record that never came to be).
	done, ok := a.claim(r.Context(), ref)
	if !ok {
		writeText(w, http.StatusForbidden, "the cache cannot store artifacts right now")
		return
	}
	defer func() {
		a.uploading.Delete(ref)
		close(done)
	}()
	st, err := a.cache.Stat(r.Context(), ref)
	if err == nil && st.Found {
		writeText(w, http.StatusConflict, "Cannot override an existing record")
		return
	}

	res := adapters.Store(r.Context(), a.cache, ref, messages.Meta{BuildSystem: buildSystem}, adapters.Upload{
		Body: r.Body, Length: r.ContentLength, Max: a.opts.MaxArtifactSize,
	})
	if res.Outcome != adapters.Stored {
		if res.Outcome == adapters.Internal || res.Outcome == adapters.Unavailable {
			a.log.Error("store failed", "ref", ref.String(), "outcome", res.Outcome, "err", res.Err)
		} else {
			a.log.Info("upload not stored", "ref", ref.String(), "outcome", res.Outcome, "received", res.Size, "declared", r.ContentLength, "err", res.Err)
		}
		ans := writeAnswers.For(res)
		writeText(w, ans.Status, ans.Message)
		return
	}
	size := res.Size
	a.opts.Metrics.UploadedBy(buildSystem, size)
	w.WriteHeader(http.StatusOK)
}

// claim makes this request the one uploading ref, waiting for an upload of
// the same hash already in flight to finish first. It fails only when the
// request ends while waiting.
func (a *Adapter) claim(ctx context.Context, ref messages.Ref) (chan struct{}, bool) {
	mine := make(chan struct{})
	for {
		other, busy := a.uploading.LoadOrStore(ref, mine)
		if !busy {
			return mine, true
		}
		select {
		case <-other.(chan struct{}):
		case <-ctx.Done():
			return nil, false
		}
	}
}
