package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/tuist/fabrik-node/messages"
)

// Admin is what the admin API needs from the node. Evict acts on the local
// tier only; Delete and Clear also reach the upstreams that are neither
// permanent nor read-only (the meaning of [[upstream]] permanent).
type Admin interface {
	// Evict removes artifacts until the local tier holds at most
	// targetBytes, in the order of policy ("" = the configured one).
	Evict(ctx context.Context, targetBytes int64, policy string) (evicted int, freed int64, err error)
	// Delete removes one artifact from the local tier and the deletable
	// upstreams; found says whether the local tier had it.
	Delete(ctx context.Context, ref messages.Ref) (found bool, err error)
	// Clear removes every artifact from the local tier, and each of them
	// from the deletable upstreams.
	Clear(ctx context.Context) error
	// Config is the effective configuration by dotted key, secrets
	// redacted, and the keys that can change at runtime.
	Config() (values map[string]any, liveKeys []string)
	// UpdateConfig applies changes (dotted keys or the spec's short names
	// to string values) atomically: all or none. A key that is unknown,
	// needs a restart or has a bad value is a *KeyError.
	UpdateConfig(ctx context.Context, changes map[string]string) (applied map[string]any, err error)
}

// KeyError refuses one configuration key; the admin API answers 400 with
// its message, which names the key.
type KeyError struct {
	Key    string
	Reason string
}

func (e *KeyError) Error() string { return fmt.Sprintf("%s: %s", e.Key, e.Reason) }

// maxAdminBody bounds admin request bodies: they are a few keys.
const maxAdminBody = 64 << 10

// decodeBody reads a JSON object into v; unknown fields are refused so a
// misspelt field is not silently ignored.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if err == io.EOF {
			return badf("request body is empty: want a JSON object")
		}
		return badf("request body: %v", err)
	}
	return nil
}

// evictRequest is the body of POST /api/v1/admin/evict.
type evictRequest struct {
	TargetSizeBytes *int64 `json:"target_size_bytes"`
	Strategy        string `json:"strategy"`
}

// EvictResponse answers POST /api/v1/admin/evict.
type EvictResponse struct {
	EvictedObjects int   `json:"evicted_objects"`
	FreedBytes     int64 `json:"freed_bytes"`
	SizeBytes      int64 `json:"size_bytes"`
	Objects        int64 `json:"objects"`
}

func (a *API) evict(w http.ResponseWriter, r *http.Request) {
	var req evictRequest
	if err := decodeBody(r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if req.TargetSizeBytes == nil || *req.TargetSizeBytes < 0 {
		a.fail(w, r, badf("target_size_bytes is required: the size in bytes to evict down to, 0 or more"))
		return
	}
	switch req.Strategy {
	case "", "lru", "lfu", "ttl":
	default:
		a.fail(w, r, badf("strategy %q is not one of lru, lfu, ttl", req.Strategy))
		return
	}
	n, freed, err := a.Admin.Evict(r.Context(), *req.TargetSizeBytes, req.Strategy)
	if err != nil {
		a.fail(w, r, fmt.Errorf("evict to %d bytes: %w", *req.TargetSizeBytes, err))
		return
	}
	a.Invalidate()
	size, objects := a.Index.Usage()
	writeJSON(w, http.StatusOK, EvictResponse{EvictedObjects: n, FreedBytes: freed, SizeBytes: size, Objects: objects})
}

// deleteRequest is the body of POST /api/v1/admin/delete: the artifact's
// ref, as the listing's keys name it (namespace "cas" with the hash for a
// content-addressed blob).
type deleteRequest struct {
	Namespace string `json:"namespace"`
	Key       string `json:"key"`
}

// DeleteResponse answers POST /api/v1/admin/delete.
type DeleteResponse struct {
	// Deleted says whether this node's local tier held the artifact.
	Deleted bool `json:"deleted"`
}

func (a *API) delete(w http.ResponseWriter, r *http.Request) {
	var req deleteRequest
	if err := decodeBody(r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if req.Namespace == "" || req.Key == "" {
		a.fail(w, r, badf(`namespace and key are required: {"namespace": "gradle", "key": "..."}`))
		return
	}
	ref := messages.Ref{Namespace: req.Namespace, Key: req.Key}
	found, err := a.Admin.Delete(r.Context(), ref)
	if err != nil {
		a.fail(w, r, fmt.Errorf("delete %s: %w", ref, err))
		return
	}
	a.Invalidate()
	a.Logger.Info("artifact deleted through the admin API", "ref", ref.String(), "found", found)
	writeJSON(w, http.StatusOK, DeleteResponse{Deleted: found})
}

// ClearResponse answers POST /api/v1/admin/clear.
type ClearResponse struct {
	Cleared        bool  `json:"cleared"`
	RemovedObjects int64 `json:"removed_objects"`
	FreedBytes     int64 `json:"freed_bytes"`
}

func (a *API) clear(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Confirm bool `json:"confirm"`
	}
	if err := decodeBody(r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if !req.Confirm {
		a.fail(w, r, badf(`clearing removes every artifact of this node's local tier, and from its upstreams that are not permanent: send {"confirm": true}`))
		return
	}
	bytes, objects := a.Index.Usage()
	if err := a.Admin.Clear(r.Context()); err != nil {
		a.fail(w, r, fmt.Errorf("clear: %w", err))
		return
	}
	a.Invalidate()
	a.Logger.Warn("local cache cleared through the admin API", "objects", objects, "bytes", bytes)
	after, left := a.Index.Usage()
	writeJSON(w, http.StatusOK, ClearResponse{Cleared: true, RemovedObjects: objects - left, FreedBytes: bytes - after})
}

// ConfigResponse answers GET and POST /api/v1/admin/config.
type ConfigResponse struct {
	// Config is the effective configuration by dotted key.
	Config map[string]any `json:"config"`
	// LiveKeys can be changed with POST; others need a restart.
	LiveKeys []string `json:"live_keys"`
	// Applied lists what a POST changed.
	Applied map[string]any `json:"applied,omitempty"`
}

func (a *API) getConfig(w http.ResponseWriter, _ *http.Request) {
	values, live := a.Admin.Config()
	writeJSON(w, http.StatusOK, ConfigResponse{Config: values, LiveKeys: live})
}

// setConfig takes a flat JSON object of keys to values. Values may be
// strings ("100GB", "30d"), numbers (bytes for sizes) or booleans.
func (a *API) setConfig(w http.ResponseWriter, r *http.Request) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAdminBody))
	if err := dec.Decode(&raw); err != nil {
		a.fail(w, r, badf("request body: want a JSON object of keys to values: %v", err))
		return
	}
	if len(raw) == 0 {
		a.fail(w, r, badf("no keys to change"))
		return
	}
	changes := make(map[string]string, len(raw))
	for k, v := range raw {
		s, err := scalar(v)
		if err != nil {
			a.fail(w, r, &KeyError{Key: k, Reason: err.Error()})
			return
		}
		changes[k] = s
	}
	applied, err := a.Admin.UpdateConfig(r.Context(), changes)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.Invalidate()
	values, live := a.Admin.Config()
	writeJSON(w, http.StatusOK, ConfigResponse{Config: values, LiveKeys: live, Applied: applied})
}

// scalar turns a JSON string, number or boolean into the text a config
// file would hold.
func scalar(v json.RawMessage) (string, error) {
	t := strings.TrimSpace(string(v))
	switch {
	case strings.HasPrefix(t, `"`):
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", err
		}
		return s, nil
	case t == "true" || t == "false":
		return t, nil
	case len(t) > 0 && (t[0] == '-' || t[0] >= '0' && t[0] <= '9'):
		var n json.Number
		if err := json.Unmarshal(v, &n); err != nil {
			return "", err
		}
		return n.String(), nil
	}
	return "", fmt.Errorf("value %s: want a string, a number or a boolean", t)
}
