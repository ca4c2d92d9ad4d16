package ghatest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// parseBlockList reads a Put Block List body: block ids under Latest,
// Committed or Uncommitted, in order.
func parseBlockList(data []byte) ([]string, error) {
	dec := xml.NewDecoder(strings.NewReader(string(data)))
	var ids []string
	var in string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			in = t.Name.Local
		case xml.CharData:
			switch in {
			case "Latest", "Committed", "Uncommitted":
				if id := strings.TrimSpace(string(t)); id != "" {
					ids = append(ids, id)
				}
			}
		case xml.EndElement:
			in = ""
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("empty block list")
	}
	return ids, nil
}

// v1Error answers like the legacy artifactcache service.
func v1Error(w http.ResponseWriter, status int, typeKey, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"$id": "1", "message": msg, "typeName": "Microsoft.Azure.DevOps.ArtifactCache.WebApi." + typeKey, "typeKey": typeKey, "errorCode": 0})
}

// v1Lookup is GET _apis/artifactcache/cache?keys=a,b&version=v: 200 with
// the entry (archiveLocation is a signed GET URL) or 204 for a miss.
func (s *Server) v1Lookup(w http.ResponseWriter, r *http.Request) {
	scopes, err := s.auth(r)
	if err != nil {
		v1Error(w, http.StatusUnauthorized, "UnauthorizedException", err.Error())
		return
	}
	keys := strings.Split(r.URL.Query().Get("keys"), ",")
	version := r.URL.Query().Get("version")
	if len(keys) == 0 || keys[0] == "" || version == "" {
		v1Error(w, http.StatusBadRequest, "ArgumentException", "keys and version are required")
		return
	}
	e := s.lookup(scopes, keys[0], keys[1:], version)
	if e == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, map[string]any{"cacheKey": e.key, "scope": e.scope, "archiveLocation": s.signedURL(e.id, "r")})
}

// v1Reserve is POST _apis/artifactcache/caches {key, version}.
func (s *Server) v1Reserve(w http.ResponseWriter, r *http.Request) {
	scopes, err := s.auth(r)
	if err != nil {
		v1Error(w, http.StatusUnauthorized, "UnauthorizedException", err.Error())
		return
	}
	var req struct{ Key, Version string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || req.Key == "" {
		v1Error(w, http.StatusBadRequest, "ArgumentException", "key and version are required")
		return
	}
	e, code, msg := s.create(scopes, req.Key, req.Version)
	if e == nil {
		if code == "already_exists" {
			v1Error(w, http.StatusConflict, "ArtifactCacheItemAlreadyExistsException", "Cache already exists. "+msg)
		} else {
			v1Error(w, http.StatusForbidden, "AccessDeniedException", msg)
		}
		return
	}
	writeJSON(w, map[string]any{"cacheId": e.id})
}

// v1Chunk is PATCH caches/{id} with Content-Range: bytes a-b/*.
func (s *Server) v1Chunk(w http.ResponseWriter, r *http.Request) {
	if _, err := s.auth(r); err != nil {
		v1Error(w, http.StatusUnauthorized, "UnauthorizedException", err.Error())
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	var start, end int64
	if _, err := fmt.Sscanf(r.Header.Get("Content-Range"), "bytes %d-%d/*", &start, &end); err != nil || end < start {
		v1Error(w, http.StatusBadRequest, "ArgumentException", "Content-Range must be bytes a-b/*")
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBlob))
	if err != nil || int64(len(data)) != end-start+1 {
		v1Error(w, http.StatusBadRequest, "ArgumentException", "chunk length does not match Content-Range")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	if !ok || e.finalized {
		v1Error(w, http.StatusNotFound, "ArtifactCacheItemNotFoundException", "no open cache entry")
		return
	}
	// Chunks arrive concurrently and out of order: keep them by offset.
	e.blocks[strconv.FormatInt(start, 10)] = data
	w.WriteHeader(http.StatusNoContent)
}

// v1Commit is POST caches/{id} {size}: joins the chunks and finalizes.
func (s *Server) v1Commit(w http.ResponseWriter, r *http.Request) {
	scopes, err := s.auth(r)
	if err != nil {
		v1Error(w, http.StatusUnauthorized, "UnauthorizedException", err.Error())
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	var req struct{ Size int64 }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		v1Error(w, http.StatusBadRequest, "ArgumentException", "size is required")
		return
	}
	s.mu.Lock()
	e, ok := s.entries[id]
	if ok && !e.finalized {
		var out []byte
		for off := int64(0); off < req.Size; {
			b, ok := e.blocks[strconv.FormatInt(off, 10)]
			if !ok {
				break
			}
			out = append(out, b...)
			off += int64(len(b))
		}
		e.data, e.committed = out, true
	}
	s.mu.Unlock()
	if !ok {
		v1Error(w, http.StatusNotFound, "ArtifactCacheItemNotFoundException", "no such cache entry")
		return
	}
	if _, msg := s.finalize(scopes, e.key, e.version, req.Size); msg != "" {
		v1Error(w, http.StatusBadRequest, "ArgumentException", msg)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
