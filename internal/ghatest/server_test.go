package ghatest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func twirpCall(t *testing.T, s *Server, token, method string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"twirp/github.actions.results.api.v1.CacheService/"+method, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func blobDo(t *testing.T, method, u string, body []byte, hdr map[string]string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, u, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// The rules the tier relies on are the server's, not the client's:
// tokens are checked, entries are immutable, a signed URL grants only its
// permission on its blob until it expires, a finalize must match the
// uploaded size, and an entry is invisible until finalized.
func TestServerEnforcesTheService(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok := s.Token(time.Hour, Scope{"refs/heads/main", Read | Write})
	req := map[string]any{"key": "k1", "version": "v"}

	if code, _ := twirpCall(t, s, "", "CreateCacheEntry", req); code != http.StatusUnauthorized {
		t.Fatalf("create without a token: %d", code)
	}
	forged := tok[:len(tok)-4] + "AAAA"
	if code, _ := twirpCall(t, s, forged, "CreateCacheEntry", req); code != http.StatusUnauthorized {
		t.Fatalf("create with a forged token: %d", code)
	}
	if code, _ := twirpCall(t, s, s.Token(-time.Minute, Scope{"refs/heads/main", 3}), "CreateCacheEntry", req); code != http.StatusUnauthorized {
		t.Fatalf("create with an expired token: %d", code)
	}
	if code, out := twirpCall(t, s, s.Token(time.Hour, Scope{"refs/heads/main", Read}), "CreateCacheEntry", req); code != http.StatusForbidden {
		t.Fatalf("create with a read-only token: %d %v", code, out)
	}

	code, out := twirpCall(t, s, tok, "CreateCacheEntry", req)
	if code != 200 || out["ok"] != true {
		t.Fatalf("create: %d %v", code, out)
	}
	upload := out["signed_upload_url"].(string)
	if code, out := twirpCall(t, s, tok, "CreateCacheEntry", req); code != http.StatusConflict || out["code"] != "already_exists" {
		t.Fatalf("second create: %d %v, want 409 already_exists", code, out)
	}
	if _, out := twirpCall(t, s, tok, "GetCacheEntryDownloadURL", req); out["ok"] != false {
		t.Fatalf("an entry not finalized is visible: %v", out)
	}

	u, _ := url.Parse(upload)
	q := u.Query()
	q.Set("sig", "x"+q.Get("sig"))
	u.RawQuery = q.Encode()
	put := map[string]string{"x-ms-blob-type": "BlockBlob"}
	if code, _ := blobDo(t, http.MethodPut, u.String(), []byte("data"), put); code != http.StatusForbidden {
		t.Fatalf("PUT with a tampered signature: %d", code)
	}
	if code, _ := blobDo(t, http.MethodPut, upload, []byte("data"), nil); code != http.StatusBadRequest {
		t.Fatalf("PUT without x-ms-blob-type: %d", code)
	}
	// Put Block + Put Block List, as the Azure SDK uploads.
	if code, _ := blobDo(t, http.MethodPut, upload+"&comp=block&blockid=QUFB", []byte("hello "), nil); code != http.StatusCreated {
		t.Fatalf("put block: %d", code)
	}
	if code, _ := blobDo(t, http.MethodPut, upload+"&comp=block&blockid=QkJC", []byte("world"), nil); code != http.StatusCreated {
		t.Fatalf("put block: %d", code)
	}
	list := `<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>QUFB</Latest><Latest>QkJC</Latest></BlockList>`
	if code, b := blobDo(t, http.MethodPut, upload+"&comp=blocklist", []byte(list), nil); code != http.StatusCreated {
		t.Fatalf("put block list: %d %s", code, b)
	}
	if _, out := twirpCall(t, s, tok, "FinalizeCacheEntryUpload", map[string]any{"key": "k1", "version": "v", "size_bytes": "3"}); out["ok"] != false {
		t.Fatalf("finalize with a wrong size: %v", out)
	}
	if _, out := twirpCall(t, s, tok, "FinalizeCacheEntryUpload", map[string]any{"key": "k1", "version": "v", "size_bytes": "11"}); out["ok"] != true {
		t.Fatalf("finalize: %v", out)
	}
	if code, _ := blobDo(t, http.MethodPut, upload, []byte("again"), put); code != http.StatusConflict {
		t.Fatalf("PUT after finalize: %d, want 409", code)
	}

	if _, out := twirpCall(t, s, tok, "GetCacheEntryDownloadURL", map[string]any{"key": "k1", "version": "other"}); out["ok"] != false {
		t.Fatalf("lookup with another version matched: %v", out)
	}
	_, out = twirpCall(t, s, tok, "GetCacheEntryDownloadURL", map[string]any{"key": "k", "restore_keys": []string{"k"}, "version": "v"})
	if out["ok"] != true || out["matched_key"] != "k1" {
		t.Fatalf("prefix lookup: %v", out)
	}
	download := out["signed_download_url"].(string)
	if code, b := blobDo(t, http.MethodGet, download, nil, map[string]string{"x-ms-range": "bytes=6-"}); code != http.StatusPartialContent || string(b) != "world" {
		t.Fatalf("ranged GET: %d %q", code, b)
	}
	if code, _ := blobDo(t, http.MethodPut, download, []byte("x"), put); code != http.StatusForbidden {
		t.Fatalf("PUT with a read URL: %d", code)
	}
	if code, _ := blobDo(t, http.MethodGet, strings.Replace(download, "/cache/1?", "/cache/2?", 1), nil, nil); code != http.StatusForbidden {
		t.Fatalf("a URL signed for one blob opened another: %d", code)
	}
	s.clock = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if code, _ := blobDo(t, http.MethodGet, download, nil, nil); code != http.StatusForbidden {
		t.Fatalf("GET with an expired URL: %d", code)
	}
}
