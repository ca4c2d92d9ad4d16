// Package p2p is Layer 0.5: edges on the same LAN reading from each other's
// local tier. The package holds the wire protocol's authentication (this
// file), the serving side (server.go), the client side as one tier.Tier
// fronting every live peer (set.go, peer.go), consent (consent.go) and mDNS
// discovery (discovery.go).
package p2p

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"time"

	p2pv1 "github.com/tuist/fabrik-node/proto/fabrik/p2p/v1"
)

// Window is how far a request's timestamp may be from the server's clock,
// and how long a nonce is remembered: a captured request replayed inside
// the window is refused for its nonce, outside it for its timestamp.
const Window = 5 * time.Minute

// HelloSubject is the MAC subject of Hello, which names no artifact.
const HelloSubject = "hello"

var (
	// ErrBadMAC is a request not signed with the team's secret.
	ErrBadMAC = errors.New("p2p: bad request signature")
	// ErrStale is a timestamp outside the window.
	ErrStale = errors.New("p2p: request timestamp outside the 5 minute window")
	// ErrReplay is a nonce already seen within the window.
	ErrReplay = errors.New("p2p: replayed request (nonce already seen)")
)

// mac is HMAC-SHA256(secret, subject \n millis \n nonce-hex \n machine).
// The machine id is covered so a captured request cannot be re-attributed.
func mac(secret []byte, subject string, millis int64, nonce []byte, machine string) string {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(subject))
	h.Write([]byte{'\n'})
	h.Write([]byte(strconv.FormatInt(millis, 10)))
	h.Write([]byte{'\n'})
	h.Write([]byte(hex.EncodeToString(nonce)))
	h.Write([]byte{'\n'})
	h.Write([]byte(machine))
	return hex.EncodeToString(h.Sum(nil))
}

// Signer signs this node's requests.
type Signer struct {
	Secret    []byte
	MachineID string
	Now       func() time.Time
}

// Sign returns a fresh Auth for subject (a ref's "namespace/key", or
// HelloSubject): a new random nonce every call.
func (s Signer) Sign(subject string) *p2pv1.Auth {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	ms := now().UnixMilli()
	return &p2pv1.Auth{UnixMillis: ms, Nonce: nonce, MachineId: s.MachineID, Mac: mac(s.Secret, subject, ms, nonce, s.MachineID)}
}

// Verifier checks requests: MAC, timestamp window, nonce replay. Safe for
// concurrent use.
type Verifier struct {
	secret []byte
	now    func() time.Time

	mu     sync.Mutex
	nonces map[string]time.Time // nonce hex -> request timestamp
	swept  time.Time
}

// NewVerifier returns a verifier for secret; now may be nil (time.Now).
func NewVerifier(secret []byte, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{secret: secret, now: now, nonces: map[string]time.Time{}}
}

// Verify accepts a for subject once. The MAC is checked before the nonce is
// remembered, so unsigned traffic cannot fill the nonce table.
func (v *Verifier) Verify(a *p2pv1.Auth, subject string) error {
	if a == nil || len(a.GetNonce()) < 8 {
		return ErrBadMAC
	}
	want := mac(v.secret, subject, a.GetUnixMillis(), a.GetNonce(), a.GetMachineId())
	if !hmac.Equal([]byte(want), []byte(a.GetMac())) {
		return ErrBadMAC
	}
	now := v.now()
	ts := time.UnixMilli(a.GetUnixMillis())
	if d := now.Sub(ts); d > Window || d < -Window {
		return ErrStale
	}
	key := hex.EncodeToString(a.GetNonce())
	v.mu.Lock()
	defer v.mu.Unlock()
	if now.Sub(v.swept) > Window/10 {
		for k, t := range v.nonces {
			if now.Sub(t) > Window {
				delete(v.nonces, k)
			}
		}
		v.swept = now
	}
	if _, seen := v.nonces[key]; seen {
		return ErrReplay
	}
	// Remember until the timestamp itself leaves the window (a future
	// timestamp stays longer), after which ErrStale refuses it anyway.
	v.nonces[key] = maxTime(ts, now)
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
