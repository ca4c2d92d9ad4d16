package auth

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// Source names in the key store. When two sources name the same kid the
// later name wins, so a key an operator put in public_keys_dir overrides the
// same kid from JWKS.
const (
	sourceJWKS = "1-jwks"
	sourceDir  = "2-dir"
	sourceFile = "3-file"
)

// maxKeyFileBytes bounds what is read from one key file; a PEM public key
// (or certificate) is a few KB.
const maxKeyFileBytes = 64 << 10

// keyFiles tracks public_key_file and public_keys_dir. It is polled rather
// than watched: polling needs no platform-specific dependency, survives the
// symlink swaps of Kubernetes secret mounts, and a few seconds of delay is
// what rotation allows anyway.
//
// Each poll reads the files and compares bytes rather than trusting mtime
// and size: every 2048-bit PEM key has the same size, and mtime can be too
// coarse to see a quick replacement. The files are tiny; only changed bytes
// are parsed again. Owned by the one goroutine that polls.
type keyFiles struct {
	file   string
	dir    string
	store  *keyStore
	logger *slog.Logger

	fileRaw []byte // last bytes read from file, nil when absent
	fileKey *rsa.PublicKey

	dirRaw  map[string][]byte // kid -> last bytes read
	dirKeys map[string]*rsa.PublicKey
}

func newKeyFiles(file, dir string, store *keyStore, logger *slog.Logger) *keyFiles {
	return &keyFiles{file: file, dir: dir, store: store, logger: logger,
		dirRaw: map[string][]byte{}, dirKeys: map[string]*rsa.PublicKey{}}
}

// load is the first scan: a configured source that cannot be read at all is
// a configuration error, reported to the caller instead of logged.
func (k *keyFiles) load() error {
	if k.file != "" {
		if err := k.scanFile(); err != nil {
			return err
		}
		if k.fileKey == nil {
			return fmt.Errorf("auth.public_key_file %s: no usable key", k.file)
		}
	}
	if k.dir != "" {
		if err := k.scanDir(); err != nil {
			return err
		}
	}
	return nil
}

// poll rescans both sources, logging instead of failing: the keys last read
// stay in force for a file that is being rewritten.
func (k *keyFiles) poll() {
	if k.file != "" {
		if err := k.scanFile(); err != nil {
			k.logger.Warn("auth: key file unreadable, key dropped", "path", k.file, "err", err)
		}
	}
	if k.dir != "" {
		if err := k.scanDir(); err != nil {
			k.logger.Warn("auth: key directory unreadable, its keys dropped", "dir", k.dir, "err", err)
		}
	}
}

func (k *keyFiles) scanFile() error {
	raw, err := readKeyFile(k.file)
	if err != nil {
		// Gone or unreadable: the key is withdrawn, as removing it means.
		if k.fileKey != nil {
			k.fileKey, k.fileRaw = nil, nil
			k.store.set(sourceFile, sourceKeys{})
		}
		return fmt.Errorf("auth.public_key_file: %w", err)
	}
	if k.fileKey != nil && bytes.Equal(raw, k.fileRaw) {
		return nil
	}
	key, err := parsePublicKeyPEM(raw)
	if err != nil {
		// Most likely caught half-written; keep the previous key and look
		// again at the next poll.
		k.logger.Warn("auth: key file does not parse, keeping the previous key", "path", k.file, "err", err)
		if k.fileKey == nil {
			return fmt.Errorf("auth.public_key_file %s: %w", k.file, err)
		}
		return nil
	}
	k.fileKey, k.fileRaw = key, raw
	k.store.set(sourceFile, sourceKeys{anyKID: []*rsa.PublicKey{key}})
	k.logger.Info("auth: key file loaded", "path", k.file)
	return nil
}

func (k *keyFiles) scanDir() error {
	entries, err := os.ReadDir(k.dir)
	if err != nil {
		if len(k.dirKeys) > 0 {
			clear(k.dirKeys)
			clear(k.dirRaw)
			k.store.set(sourceDir, sourceKeys{})
		}
		return fmt.Errorf("auth.public_keys_dir: %w", err)
	}
	seen := map[string]bool{}
	changed := false
	for _, e := range entries {
		name := e.Name()
		// Hidden entries include the ..data links of Kubernetes mounts.
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".pem") {
			continue
		}
		kid := strings.TrimSuffix(name, ".pem")
		path := filepath.Join(k.dir, name)
		raw, err := readKeyFile(path)
		if err != nil {
			// A directory named *.pem, or a file that vanished between
			// listing and reading: not a key, so not in force.
			continue
		}
		seen[kid] = true
		if _, ok := k.dirKeys[kid]; ok && bytes.Equal(raw, k.dirRaw[kid]) {
			continue
		}
		key, err := parsePublicKeyPEM(raw)
		if err != nil {
			if _, ok := k.dirKeys[kid]; ok {
				k.logger.Warn("auth: key file does not parse, keeping the previous key", "path", path, "err", err)
			} else {
				k.logger.Warn("auth: key file does not parse, skipped", "path", path, "err", err)
			}
			continue
		}
		_, existed := k.dirKeys[kid]
		k.dirKeys[kid], k.dirRaw[kid] = key, raw
		changed = true
		if existed {
			k.logger.Info("auth: key replaced", "kid", kid, "path", path)
		} else {
			k.logger.Info("auth: key added", "kid", kid, "path", path)
		}
	}
	for kid := range k.dirKeys {
		if !seen[kid] {
			delete(k.dirKeys, kid)
			delete(k.dirRaw, kid)
			changed = true
			k.logger.Info("auth: key removed", "kid", kid, "dir", k.dir)
		}
	}
	if changed {
		byKID := make(map[string]*rsa.PublicKey, len(k.dirKeys))
		for kid, key := range k.dirKeys {
			byKID[kid] = key
		}
		k.store.set(sourceDir, sourceKeys{byKID: byKID})
	}
	return nil
}

var errNotRegular = errors.New("not a regular file")

// readKeyFile reads a small regular file, following symlinks.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: errNotRegular}
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(raw) > maxKeyFileBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes, not a key", path, maxKeyFileBytes)
	}
	return raw, nil
}
