package auth_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/config"
)

func passes(a *auth.Authenticator, token string) bool {
	_, err := a.Authenticate(token, auth.Read)
	return err == nil
}

// The rotation an operator performs: add the new key, wait for old tokens
// to expire, remove the old key. No restart at any step.
func TestKeyDirRotation(t *testing.T) {
	oldKey, newKey := authtest.New(t), authtest.New(t)
	dir := t.TempDir()
	oldKey.WriteTo(t, dir)
	a, logs := newAuth(t, config.AuthConfig{PublicKeysDir: dir, KeyRefreshInterval: config.Duration(100 * time.Millisecond)})

	oldTok, newTok := oldKey.Token(t), newKey.Token(t)
	if !passes(a, oldTok) {
		t.Fatal("token of the initial key refused")
	}
	if _, err := a.Authenticate(newTok, auth.Read); !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), "unknown kid") {
		t.Fatalf("token of a key not yet added: %v, want unknown kid", err)
	}

	newKey.WriteTo(t, dir)
	eventually(t, 3*time.Second, "token with the new kid passes after its key file is added", func() bool { return passes(a, newTok) })
	if !passes(a, oldTok) {
		t.Fatal("old key stopped working when a new one was added")
	}

	if err := os.Remove(filepath.Join(dir, oldKey.KID()+".pem")); err != nil {
		t.Fatal(err)
	}
	// The old token was verified before and is in the verified cache: its
	// removal must still take effect.
	eventually(t, 3*time.Second, "old key's tokens fail after its file is removed", func() bool { return !passes(a, oldTok) })
	if !passes(a, newTok) {
		t.Fatal("new key stopped working when the old one was removed")
	}
	if !strings.Contains(logs.String(), "key removed") || !strings.Contains(logs.String(), "key added") {
		t.Fatalf("rotation not logged: %s", logs.String())
	}
}

// A kid whose file is overwritten with another key verifies with the new
// key only, even though every 2048-bit PEM has the same size.
func TestKeyFileReplacedInPlace(t *testing.T) {
	first, second := authtest.New(t), authtest.New(t)
	file := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(file, first.PublicPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	a, _ := newAuth(t, config.AuthConfig{PublicKeyFile: file, KeyRefreshInterval: config.Duration(100 * time.Millisecond)})
	firstTok, secondTok := first.Token(t), second.Token(t)
	if !passes(a, firstTok) || passes(a, secondTok) {
		t.Fatal("initial key file not in force")
	}
	if err := os.WriteFile(file, second.PublicPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "replaced key file in force", func() bool { return passes(a, secondTok) && !passes(a, firstTok) })

	// Half-written garbage keeps the key in force rather than locking
	// everyone out.
	if err := os.WriteFile(file, []byte("-----BEGIN PUBLIC KEY-----\ntrunc"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if !passes(a, secondTok) {
		t.Fatal("a key file that does not parse withdrew the key in force")
	}
	// Removal withdraws it.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "removed key file withdrawn", func() bool { return !passes(a, secondTok) })
}

// The key file's key matches any kid, alongside the dir's named keys.
func TestKeyFileAndDirTogether(t *testing.T) {
	fileKey, dirKey := authtest.New(t), authtest.New(t)
	a, _ := newAuth(t, config.AuthConfig{PublicKeyFile: fileKey.File(), PublicKeysDir: dirKey.Dir()})
	for name, tok := range map[string]string{
		"file key, own kid":     fileKey.Token(t),
		"file key, other kid":   fileKey.Token(t, authtest.KID("whatever")),
		"file key, no kid":      fileKey.Token(t, authtest.KID("")),
		"dir key":               dirKey.Token(t),
		"file key, dir's kid":   fileKey.Token(t, authtest.KID(dirKey.KID())),
		"dir key, unknown kid ": dirKey.Token(t, authtest.KID("nope")),
	} {
		want := name != "dir key, unknown kid "
		if passes(a, tok) != want {
			t.Errorf("%s: passes=%v, want %v", name, !want, want)
		}
	}
}
