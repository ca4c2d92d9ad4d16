package auth

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"time"
)

// maxJWKSBytes bounds a JWKS document; real ones hold a handful of keys.
const maxJWKSBytes = 1 << 20

// jwksSource fetches a JSON Web Key Set and contributes its RSA signing keys.
// A failed fetch changes nothing: the last good set stays in force.
type jwksSource struct {
	url    string
	client *http.Client
	store  *keyStore
	logger *slog.Logger
}

type jwksDocument struct {
	Keys []jwk `json:"keys"`
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// refresh fetches the set once and, when it holds at least one usable key,
// replaces what JWKS contributes.
func (j *jwksSource) refresh(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return fmt.Errorf("jwks request %s: %w", j.url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return fmt.Errorf("jwks fetch %s: %w", j.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("jwks fetch %s: status %s", j.url, resp.Status)
	}
	var doc jwksDocument
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKSBytes)).Decode(&doc); err != nil {
		return fmt.Errorf("jwks decode %s: %w", j.url, err)
	}
	keys := sourceKeys{byKID: map[string]*rsa.PublicKey{}}
	for _, k := range doc.Keys {
		key, err := k.rsaKey()
		if err != nil {
			j.logger.Warn("auth: jwks key skipped", "url", j.url, "kid", k.Kid, "err", err)
			continue
		}
		if key == nil {
			continue // not a signing key for RS256
		}
		if k.Kid == "" {
			keys.anyKID = append(keys.anyKID, key)
		} else {
			keys.byKID[k.Kid] = key
		}
	}
	if len(keys.byKID) == 0 && len(keys.anyKID) == 0 {
		// An empty set is far likelier a broken endpoint than a deliberate
		// withdrawal of every key; refusing all tokens would be an outage.
		return fmt.Errorf("jwks %s: no usable RS256 key among %d", j.url, len(doc.Keys))
	}
	j.store.set(sourceJWKS, keys)
	return nil
}

// rsaKey returns the key, or nil without error for keys meant for something
// else (encryption, other algorithms), which a set may legitimately carry.
func (k jwk) rsaKey() (*rsa.PublicKey, error) {
	if k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "RS256") {
		return nil, nil
	}
	n, err := decodeB64URL(k.N)
	if err != nil {
		return nil, fmt.Errorf("modulus: %w", err)
	}
	e, err := decodeB64URL(k.E)
	if err != nil {
		return nil, fmt.Errorf("exponent: %w", err)
	}
	if len(e) == 0 || len(e) > 4 {
		return nil, errors.New("exponent has an unusable size")
	}
	exp := new(big.Int).SetBytes(e)
	return checkRSA(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp.Int64())})
}

// decodeB64URL accepts base64url with or without padding, as JWKS
// producers differ.
func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// run refreshes every interval until ctx ends. After a failure it retries
// sooner, so an endpoint that was down at start is picked up quickly.
func (j *jwksSource) run(ctx context.Context, interval time.Duration, healthy bool) {
	retry := min(interval, 5*time.Second)
	for {
		wait := interval
		if !healthy {
			wait = retry
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		fetchCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := j.refresh(fetchCtx)
		cancel()
		if err != nil && ctx.Err() == nil {
			j.logger.Error("auth: jwks refresh failed, keeping the last good keys", "url", j.url, "err", err)
		}
		healthy = err == nil
	}
}
