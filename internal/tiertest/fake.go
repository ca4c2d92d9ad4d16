// Package tiertest is an in-memory tier.Tier for the actor packages' unit
// tests: the router's and the upload pool's policies (fallback order,
// timeouts, panics, write-back verification, fan-out, retries) are about
// what the actors do with a tier's answers, so a tier whose answers a test
// chooses is the right tool there. Tests of real tiers live beside them
// (tier/fabrik, tier/s3) and in node/ and e2e/.
package tiertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// Fake holds artifacts in memory. Its hooks, when set, run before each
// operation: a hook may block, panic or return an error, which the
// operation then returns. Safe for concurrent use.
type Fake struct {
	name string

	mu    sync.Mutex
	data  map[messages.Ref]stored
	calls []string
	log   *Log

	// OnGet, OnStat, OnPut and OnDelete run first in their operation. An
	// error they return is the operation's.
	OnGet    func(ctx context.Context, ref messages.Ref) error
	OnStat   func(ctx context.Context, ref messages.Ref) error
	OnPut    func(ctx context.Context, ref messages.Ref) error
	OnDelete func(ctx context.Context, ref messages.Ref) error
	// Body, when set, wraps the body Get returns (one that fails or
	// stalls mid-stream).
	Body func(ref messages.Ref, body io.ReadCloser) io.ReadCloser
}

type stored struct {
	meta messages.Meta
	body []byte
}

// Log records calls across several fakes in order ("upstream-0 get gradle/k").
type Log struct {
	mu    sync.Mutex
	lines []string
}

// Lines returns the calls so far.
func (l *Log) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func (l *Log) add(s string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
}

// New returns an empty fake named name; log (may be nil) records its calls.
func New(name string, log *Log) *Fake {
	return &Fake{name: name, data: map[messages.Ref]stored{}, log: log}
}

var _ tier.Tier = (*Fake)(nil)

// Name implements tier.Tier.
func (f *Fake) Name() string { return f.name }

// Seed stores body under ref with its true hash and size.
func (f *Fake) Seed(ref messages.Ref, body []byte) messages.Meta {
	m := messages.Meta{Hash: Hash(body), Size: int64(len(body))}
	f.SeedAs(ref, m, body)
	return m
}

// SeedAs stores body under ref with the given metadata, true or not (a
// corrupt upstream).
func (f *Fake) SeedAs(ref messages.Ref, meta messages.Meta, body []byte) {
	f.mu.Lock()
	f.data[ref] = stored{meta: meta, body: bytes.Clone(body)}
	f.mu.Unlock()
}

// Has reports whether ref is stored, and its bytes.
func (f *Fake) Has(ref messages.Ref) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.data[ref]
	return s.body, ok
}

// Calls lists this fake's calls in order ("get gradle/k", "put ...").
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Count is the number of calls of one operation ("get", "put", ...).
func (f *Fake) Count(op string) int {
	n := 0
	for _, c := range f.Calls() {
		if len(c) > len(op) && c[:len(op)+1] == op+" " {
			n++
		}
	}
	return n
}

func (f *Fake) record(op string, ref messages.Ref) {
	line := op + " " + ref.String()
	f.mu.Lock()
	f.calls = append(f.calls, line)
	f.mu.Unlock()
	f.log.add(f.name + " " + line)
}

// Get implements tier.Tier.
func (f *Fake) Get(ctx context.Context, ref messages.Ref) (messages.Meta, io.ReadCloser, error) {
	f.record("get", ref)
	if f.OnGet != nil {
		if err := f.OnGet(ctx, ref); err != nil {
			return messages.Meta{}, nil, err
		}
	}
	f.mu.Lock()
	s, ok := f.data[ref]
	f.mu.Unlock()
	if !ok {
		return messages.Meta{}, nil, fmt.Errorf("%s: %s: %w", f.name, ref, tier.ErrNotFound)
	}
	body := io.NopCloser(bytes.NewReader(s.body))
	if f.Body != nil {
		body = f.Body(ref, body)
	}
	return s.meta, body, nil
}

// Stat implements tier.Tier.
func (f *Fake) Stat(ctx context.Context, ref messages.Ref) (messages.Meta, error) {
	f.record("stat", ref)
	if f.OnStat != nil {
		if err := f.OnStat(ctx, ref); err != nil {
			return messages.Meta{}, err
		}
	}
	f.mu.Lock()
	s, ok := f.data[ref]
	f.mu.Unlock()
	if !ok {
		return messages.Meta{}, fmt.Errorf("%s: %s: %w", f.name, ref, tier.ErrNotFound)
	}
	return s.meta, nil
}

// Put implements tier.Tier: it reads the body and refuses one whose size
// or hash differs from meta, as a real tier does.
func (f *Fake) Put(ctx context.Context, ref messages.Ref, meta messages.Meta, body io.Reader) error {
	f.record("put", ref)
	if f.OnPut != nil {
		if err := f.OnPut(ctx, ref); err != nil {
			return err
		}
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	if int64(len(b)) != meta.Size || Hash(b) != meta.Hash {
		return fmt.Errorf("%s: %w: body does not match its metadata", f.name, tier.ErrInvalid)
	}
	f.SeedAs(ref, meta, b)
	return nil
}

// Delete implements tier.Tier.
func (f *Fake) Delete(ctx context.Context, ref messages.Ref) error {
	f.record("delete", ref)
	if f.OnDelete != nil {
		if err := f.OnDelete(ctx, ref); err != nil {
			return err
		}
	}
	f.mu.Lock()
	delete(f.data, ref)
	f.mu.Unlock()
	return nil
}

// Hash is the lower-case hex SHA-256 of b.
func Hash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
