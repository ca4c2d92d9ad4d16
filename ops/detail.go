package ops

import (
	"net/http"
	"sort"
	"time"
)

// Detail is GET /api/v1/stats/detail: what the dashboard shows beside
// /api/v1/stats. P2P is null while the node has no P2P layer: the page
// then leaves the section out rather than show empty peers.
type Detail struct {
	MaxSizeBytes int64                       `json:"max_size_bytes"`
	BuildSystems map[string]BuildSystemStats `json:"build_systems"`
	Upstreams    []UpstreamStatus            `json:"upstreams"`
	P2P          *P2PStatus                  `json:"p2p"`
}

// BuildSystemStats are one build system's client traffic since start.
type BuildSystemStats struct {
	Requests      uint64  `json:"requests"`
	Hits          uint64  `json:"hits"`
	Misses        uint64  `json:"misses"`
	HitRatio      float64 `json:"hit_ratio"`
	UploadBytes   uint64  `json:"upload_bytes"`
	DownloadBytes uint64  `json:"download_bytes"`
}

// UpstreamStatus is one upstream tier as the node has seen it. State is
// "idle" (never asked), "ok" (last read answered), "failing" (last read
// failed) or "circuit_open" (reads refused without asking, within the
// breaker's cooldown).
type UpstreamStatus struct {
	Name     string  `json:"name"`
	State    string  `json:"state"`
	Hits     uint64  `json:"hits"`
	Misses   uint64  `json:"misses"`
	Errors   uint64  `json:"errors"`
	Refused  uint64  `json:"refused"`
	HitRatio float64 `json:"hit_ratio"`
	LastAt   string  `json:"last_at,omitempty"`
}

// P2PStatus lists the P2P layer's known peers (addresses).
type P2PStatus struct {
	Peers []string `json:"peers"`
}

// refusedFresh is how long a refused read keeps an upstream shown as
// circuit_open: the breaker's cooldown is 5 s.
const refusedFresh = 10 * time.Second

// Detail assembles the dashboard's extra figures.
func (a *API) Detail() Detail {
	a.init()
	d := Detail{BuildSystems: map[string]BuildSystemStats{}, Upstreams: []UpstreamStatus{}}
	if a.MaxSize != nil {
		d.MaxSizeBytes = a.MaxSize()
	}
	if a.P2PPeers != nil {
		d.P2P = &P2PStatus{Peers: a.P2PPeers()}
	}
	if a.Metrics == nil {
		return d
	}
	for name, t := range a.Metrics.BuildSystems() {
		b := BuildSystemStats{Requests: t.Requests, Hits: t.Hits, Misses: t.Misses, UploadBytes: t.UploadBytes, DownloadBytes: t.DownloadBytes}
		if t.Hits+t.Misses > 0 {
			b.HitRatio = round(float64(t.Hits)/float64(t.Hits+t.Misses), 4)
		}
		d.BuildSystems[name] = b
	}
	seen := a.Metrics.Upstreams()
	names := append([]string(nil), a.Upstreams...)
	for name := range seen {
		known := false
		for _, n := range names {
			known = known || n == name
		}
		if !known {
			names = append(names, name)
		}
	}
	sort.SliceStable(names, func(i, j int) bool { return indexOf(a.Upstreams, names[i]) < indexOf(a.Upstreams, names[j]) })
	now := a.Now()
	for _, name := range names {
		t := seen[name]
		u := UpstreamStatus{Name: name, State: "idle", Hits: t.Hits, Misses: t.Misses, Errors: t.Errors, Refused: t.Refused}
		if t.Hits+t.Misses > 0 {
			u.HitRatio = round(float64(t.Hits)/float64(t.Hits+t.Misses), 4)
		}
		switch {
		case t.LastResult == "":
		case (t.LastResult == "open" || t.LastResult == "shed") && now.Sub(t.LastAt) < refusedFresh:
			u.State = "circuit_open"
		case t.LastResult == "error" || t.LastResult == "open" || t.LastResult == "shed":
			u.State = "failing"
		default:
			u.State = "ok"
		}
		if !t.LastAt.IsZero() {
			u.LastAt = rfc3339(t.LastAt)
		}
		d.Upstreams = append(d.Upstreams, u)
	}
	return d
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return len(list)
}

func (a *API) detail(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, a.Detail()) }
