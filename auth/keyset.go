package auth

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"sort"
	"sync"
)

// minKeyBits refuses keys too short to be trusted; Tuist signs with 2048+.
const minKeyBits = 2048

// keySet is an immutable snapshot of the keys in force. Validation reads it
// through an atomic pointer and never locks; a change builds a new one.
type keySet struct {
	// byKID are keys that verify only tokens naming their kid
	// (public_keys_dir, JWKS).
	byKID map[string]*rsa.PublicKey
	// anyKID are keys that verify a token whatever its kid says
	// (public_key_file, JWKS entries without a kid).
	anyKID []*rsa.PublicKey
}

func (s *keySet) empty() bool { return s == nil || (len(s.byKID) == 0 && len(s.anyKID) == 0) }

// sourceKeys is what one key source (the key file, the key dir, JWKS)
// currently contributes.
type sourceKeys struct {
	byKID  map[string]*rsa.PublicKey
	anyKID []*rsa.PublicKey
}

// keyStore merges what the sources contribute and publishes the union to the
// validator. The sources are the only writers; mu serialises them. Readers
// never touch the store, only the published keySet.
type keyStore struct {
	mu      sync.Mutex
	sources map[string]sourceKeys // guarded by mu
	// active is false while a reload loads a new generation of sources:
	// they fill this store without replacing the keys in force until the
	// whole new configuration has loaded. Guarded by mu.
	active  bool
	publish func(*keySet)
}

func newKeyStore(publish func(*keySet)) *keyStore {
	return &keyStore{sources: map[string]sourceKeys{}, publish: publish}
}

// set replaces what source contributes and publishes the new union.
func (ks *keyStore) set(source string, keys sourceKeys) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.sources[source] = keys
	ks.publishLocked()
}

// activate starts publishing: the union so far goes into force now.
func (ks *keyStore) activate() {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.active = true
	ks.publishLocked()
}

// get returns what source contributes (to carry JWKS keys over a reload).
func (ks *keyStore) get(source string) (sourceKeys, bool) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	k, ok := ks.sources[source]
	return k, ok
}

func (ks *keyStore) publishLocked() {
	if !ks.active {
		return
	}
	set := &keySet{byKID: map[string]*rsa.PublicKey{}}
	// Sorted so that when two sources name the same kid the winner does not
	// depend on map order: later names (jwks after keydir) win.
	names := make([]string, 0, len(ks.sources))
	for name := range ks.sources {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		src := ks.sources[name]
		maps.Copy(set.byKID, src.byKID)
		set.anyKID = append(set.anyKID, src.anyKID...)
	}
	ks.publish(set)
}

// parsePublicKeyPEM accepts the forms a PEM public key comes in: PKIX
// ("PUBLIC KEY"), PKCS#1 ("RSA PUBLIC KEY") and a certificate, whose key is
// used. Only RSA keys of at least minKeyBits pass.
func parsePublicKeyPEM(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		return nil, fmt.Errorf("PEM block %q is not a public key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	return checkRSA(pub)
}

func checkRSA(pub any) (*rsa.PublicKey, error) {
	key, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want an RSA public key", pub)
	}
	if key.N.BitLen() < minKeyBits {
		return nil, fmt.Errorf("RSA key has %d bits, want at least %d", key.N.BitLen(), minKeyBits)
	}
	return key, nil
}
