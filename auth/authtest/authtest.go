// Package authtest makes real RSA keys and real signed tokens for tests of
// anything behind auth: generate a key pair, point the node's [auth] at it,
// and mint tokens with the claims a case needs, including the forged and
// broken ones of the refusal matrix.
package authtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/config"
)

// Keys is one RSA key pair with a kid, its public key written to disk both
// as <kid>.pem in a directory (for public_keys_dir) and as a single file
// (for public_key_file).
type Keys struct {
	kid  string
	priv *rsa.PrivateKey
	pem  []byte
	dir  string
	file string

	strangerOnce sync.Once
	stranger     *rsa.PrivateKey // another key, for forged signatures
}

// New generates a 2048-bit key pair with a random kid.
func New(t testing.TB) *Keys {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("authtest: kid: %v", err)
	}
	return NewWithKID(t, "test-"+hex.EncodeToString(b[:]))
}

// NewWithKID generates a 2048-bit key pair named kid.
func NewWithKID(t testing.TB, kid string) *Keys {
	t.Helper()
	priv := generate(t)
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatalf("authtest: marshal public key: %v", err)
	}
	k := &Keys{
		kid:  kid,
		priv: priv,
		pem:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		dir:  t.TempDir(),
	}
	k.WriteTo(t, k.dir)
	k.file = filepath.Join(t.TempDir(), "public.pem")
	if err := os.WriteFile(k.file, k.pem, 0o644); err != nil {
		t.Fatalf("authtest: write key file: %v", err)
	}
	return k
}

func generate(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("authtest: generate key: %v", err)
	}
	return priv
}

// KID is the key's id, the name of its file in Dir.
func (k *Keys) KID() string { return k.kid }

// Private is the signing key.
func (k *Keys) Private() *rsa.PrivateKey { return k.priv }

// Public is the verification key.
func (k *Keys) Public() *rsa.PublicKey { return &k.priv.PublicKey }

// PublicPEM is the public key as PKIX PEM, the bytes of File.
func (k *Keys) PublicPEM() []byte { return k.pem }

// Dir is a directory holding only <kid>.pem, for public_keys_dir.
func (k *Keys) Dir() string { return k.dir }

// File is a file holding the public key, for public_key_file.
func (k *Keys) File() string { return k.file }

// WriteTo writes <kid>.pem into dir (to rotate it into a watched
// directory) and returns its path.
func (k *Keys) WriteTo(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, k.kid+".pem")
	// Written beside and renamed, as an operator's tooling should, so a
	// poll never sees half a key.
	tmp := filepath.Join(dir, "."+k.kid+".pem.tmp")
	if err := os.WriteFile(tmp, k.pem, 0o644); err != nil {
		t.Fatalf("authtest: write key: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("authtest: rename key: %v", err)
	}
	return path
}

// Config is an [auth] section trusting this key through public_keys_dir,
// with key files rescanned every 100ms so rotation tests are quick.
func (k *Keys) Config() config.AuthConfig {
	return config.AuthConfig{
		PublicKeysDir:      k.dir,
		KeyRefreshInterval: config.Duration(100 * time.Millisecond),
		Leeway:             config.Duration(5 * time.Second),
	}
}

// JWK is the public key as a JSON Web Key.
func (k *Keys) JWK() map[string]any {
	pub := k.priv.PublicKey
	return map[string]any{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": k.kid,
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// JWKS is a JSON Web Key Set document holding keys.
func JWKS(t testing.TB, keys ...*Keys) []byte {
	t.Helper()
	doc := map[string][]map[string]any{"keys": {}}
	for _, k := range keys {
		doc["keys"] = append(doc["keys"], k.JWK())
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("authtest: jwks: %v", err)
	}
	return b
}

func (k *Keys) strangerKey(t testing.TB) *rsa.PrivateKey {
	k.strangerOnce.Do(func() { k.stranger = generate(t) })
	return k.stranger
}
