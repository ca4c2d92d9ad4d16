package turbo

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tuist/fabrik-node/messages"
)

// maxJSONBody bounds the small JSON requests (batch queries, events) so a
// client cannot make the node buffer an arbitrary document.
const maxJSONBody = 1 << 20

// status tells turbo remote caching is on; turbo asks before it uses the cache.
func (a *Adapter) status(w http.ResponseWriter, r *http.Request) {
	defer a.observe("status", time.Now())
	writeJSON(w, http.StatusOK, map[string]string{"status": "enabled"})
}

// artifactInfo answers one hash of a batch query.
type artifactInfo struct {
	Size           int64  `json:"size"`
	TaskDurationMs int64  `json:"taskDurationMs"`
	Tag            string `json:"tag,omitempty"`
}

// query answers {"hashes":[...]} with, per hash, its info, an error for a
// malformed hash, or null when the team has no such artifact. Only metadata
// is read.
func (a *Adapter) query(w http.ResponseWriter, r *http.Request) {
	defer a.observe("query", time.Now())
	ns, ok := namespace(r)
	if !ok {
		writeError(w, http.StatusBadRequest, "bad_request", "malformed teamId or slug")
		return
	}
	var req struct {
		Hashes []string `json:"hashes"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	out := make(map[string]any, len(req.Hashes))
	for _, h := range req.Hashes {
		if !validName(h) {
			out[h] = apiError{Error: apiErrorBody{Code: "bad_request", Message: "malformed artifact hash"}}
			continue
		}
		st, err := a.cache.Stat(r.Context(), messages.Ref{Namespace: ns, Key: h})
		if err != nil || !st.Found {
			out[h] = nil
			continue
		}
		d, _ := strconv.ParseInt(st.Meta.Attrs[attrDuration], 10, 64)
		out[h] = artifactInfo{Size: st.Meta.Size, TaskDurationMs: d, Tag: st.Meta.Attrs[attrTag]}
	}
	writeJSON(w, http.StatusOK, out)
}

// event is one of turbo's cache analytics records.
type event struct {
	SessionID string `json:"sessionId"`
	Source    string `json:"source"`
	Event     string `json:"event"`
	Hash      string `json:"hash"`
	Duration  *int64 `json:"duration"`
}

func (e event) validate() error {
	switch {
	case e.Source != "LOCAL" && e.Source != "REMOTE":
		return fmt.Errorf("source %q is neither LOCAL nor REMOTE", e.Source)
	case e.Event != "HIT" && e.Event != "MISS":
		return fmt.Errorf("event %q is neither HIT nor MISS", e.Event)
	case !validName(e.Hash):
		return fmt.Errorf("malformed hash %q", e.Hash)
	case e.Duration != nil && *e.Duration < 0:
		return fmt.Errorf("negative duration %d", *e.Duration)
	}
	return nil
}

// events counts turbo's own view of its cache use (local hits included,
// which the node never sees otherwise) in fabrik_turbo_events_total. A batch
// with one invalid event is refused whole, so counts never half-apply.
func (a *Adapter) events(w http.ResponseWriter, r *http.Request) {
	defer a.observe("events", time.Now())
	var evs []event
	if err := decodeJSON(w, r, &evs); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	for i, e := range evs {
		if err := e.validate(); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("event %d: %v", i, err))
			return
		}
	}
	if a.opts.Metrics != nil {
		for _, e := range evs {
			a.opts.Metrics.Counter(fmt.Sprintf(`fabrik_turbo_events_total{source=%q,event=%q}`,
				strings.ToLower(e.Source), strings.ToLower(e.Event))).Inc()
		}
	}
	w.WriteHeader(http.StatusOK)
}

func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	return nil
}

// allowHeaders lists every header turbo sends to the artifact endpoints.
// turbo only sends its token after a preflight if Authorization is listed.
const allowHeaders = "Authorization, Content-Type, User-Agent, x-artifact-duration, x-artifact-tag, x-artifact-client-ci, x-artifact-client-interactive"

// preflight answers CORS preflight for every /v8/artifacts path. It sends no
// Location, so turbo keeps the URL it asked about. It names no origin: the
// node's browser policy adds Access-Control-Allow-Origin for allowed ones.
func preflight(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, PUT, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", allowHeaders)
	h.Set("Access-Control-Expose-Headers", "x-artifact-duration, x-artifact-tag")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusOK)
}
