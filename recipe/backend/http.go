package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HTTP is a Backend talking to a running edge's /recipes/v1/ API
// (adapters/recipes): the daemon owns the cache directory, so the CLI
// cannot open the store itself while it runs.
type HTTP struct {
	// Base is the edge's HTTP base URL (FABRIK_HTTP_URL).
	Base string
	// Token, when set, is sent as a Bearer token.
	Token  string
	Client *http.Client
}

// NewHTTP returns a client of the edge at base.
func NewHTTP(base, token string) *HTTP {
	return &HTTP{Base: strings.TrimRight(base, "/"), Token: token, Client: &http.Client{Timeout: 10 * time.Minute}}
}

// Ping checks that the edge serves the recipes API.
func (h *HTTP) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := h.do(ctx, http.MethodGet, "/recipes/v1/ping", nil, -1)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s/recipes/v1/ping answered %s (is the recipes adapter enabled?)", h.Base, resp.Status)
	}
	return nil
}

func (h *HTTP) path(space Space, key string) (string, error) {
	if _, err := space.Namespace(); err != nil {
		return "", err
	}
	if err := ValidKey(key); err != nil {
		return "", err
	}
	return "/recipes/v1/" + string(space) + "/" + url.PathEscape(key), nil
}

func (h *HTTP) do(ctx context.Context, method, p string, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, h.Base+p, body)
	if err != nil {
		return nil, err
	}
	if size >= 0 && body != nil {
		req.ContentLength = size
	}
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, h.Base+p, err)
	}
	return resp, nil
}

// failure reads an error answer.
func failure(method, p string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return fmt.Errorf("%s %s: %s: %s", method, p, resp.Status, strings.TrimSpace(string(b)))
}

func (h *HTTP) Get(ctx context.Context, space Space, key string) (io.ReadCloser, int64, bool, error) {
	p, err := h.path(space, key)
	if err != nil {
		return nil, 0, false, err
	}
	resp, err := h.do(ctx, http.MethodGet, p, nil, -1)
	if err != nil {
		return nil, 0, false, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Body, resp.ContentLength, true, nil
	case http.StatusNotFound:
		resp.Body.Close()
		return nil, 0, false, nil
	}
	return nil, 0, false, failure("GET", p, resp)
}

func (h *HTTP) Has(ctx context.Context, space Space, key string) (int64, bool, error) {
	p, err := h.path(space, key)
	if err != nil {
		return 0, false, err
	}
	resp, err := h.do(ctx, http.MethodHead, p, nil, -1)
	if err != nil {
		return 0, false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		n, _ := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
		return n, true, nil
	case http.StatusNotFound:
		return 0, false, nil
	}
	return 0, false, fmt.Errorf("HEAD %s: %s", p, resp.Status)
}

func (h *HTTP) Put(ctx context.Context, space Space, key string, body io.Reader, size int64) error {
	p, err := h.path(space, key)
	if err != nil {
		return err
	}
	resp, err := h.do(ctx, http.MethodPut, p, body, size)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return failure("PUT", p, resp)
	}
	resp.Body.Close()
	return nil
}

func (h *HTTP) Delete(ctx context.Context, space Space, key string) error {
	p, err := h.path(space, key)
	if err != nil {
		return err
	}
	resp, err := h.do(ctx, http.MethodDelete, p, nil, -1)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotFound {
		return failure("DELETE", p, resp)
	}
	resp.Body.Close()
	return nil
}

func (h *HTTP) Record(ctx context.Context, ev Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	resp, err := h.do(ctx, http.MethodPost, "/recipes/v1/ledger", bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return failure("POST", "/recipes/v1/ledger", resp)
	}
	resp.Body.Close()
	return nil
}

func (h *HTTP) Events(ctx context.Context) ([]Event, error) {
	resp, err := h.do(ctx, http.MethodGet, "/recipes/v1/ledger", nil, -1)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, failure("GET", "/recipes/v1/ledger", resp)
	}
	defer resp.Body.Close()
	var out []Event
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decode ledger: %w", err)
	}
	return out, nil
}

func (h *HTTP) Describe() string { return "edge " + h.Base }
