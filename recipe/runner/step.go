// Package runner runs recipe steps with content-addressed caching: a step
// (one script recipe, or one Tengo target) has a key; a hit restores its
// outputs and replays its output without running it, a miss runs it,
// captures stdout, stderr and the exit code, archives the declared outputs
// and stores archive and run record through the node's cache.
package runner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tuist/fabrik-node/recipe/archive"
	"github.com/tuist/fabrik-node/recipe/backend"
)

// Options configure a Runner.
type Options struct {
	Backend backend.Backend
	// Stdout and Stderr receive the steps' own output (live on a miss,
	// replayed on a hit); Log receives the [fabrik] lines.
	Stdout, Stderr, Log io.Writer
	Stdin               io.Reader
	// Verbose prints each cache operation; NoCache runs without reading or
	// writing the cache; DryRun prints keys without running anything.
	Verbose, NoCache, DryRun bool
	// Getenv reads the environment for keys (os.LookupEnv by default).
	Getenv func(string) (string, bool)
	// Env is the children's environment (os.Environ() by default).
	Env []string
	// RuntimeVersion overrides `runtime --version` (tests).
	RuntimeVersion func(string) (string, error)
}

// Record is what a cached step stores besides its outputs: enough to
// replay the run. It is the "<key>.run" entry.
type Record struct {
	Version   int           `json:"version"`
	Key       string        `json:"key"`
	Name      string        `json:"name"`
	ExitCode  int           `json:"exit_code"`
	Stdout    []byte        `json:"stdout"`
	Stderr    []byte        `json:"stderr"`
	Duration  time.Duration `json:"duration_ns"`
	CreatedAt time.Time     `json:"created_at"`
	// ExpiresAt is zero when the step has no cache ttl.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Outputs   []string  `json:"outputs"`
	// ArchiveHash and ArchiveSize describe "<key>.out" (absent when the
	// step declares no outputs).
	ArchiveHash string `json:"archive_hash,omitempty"`
	ArchiveSize int64  `json:"archive_size,omitempty"`
}

const recordVersion = 1

// Step is one cacheable unit of work.
type Step struct {
	// Label is what the run line shows ("script-49597b2a298253b8").
	Label string
	// Key is the full hex key; Name the step's script (and target).
	Key, Name string
	// Dir is the base of Outputs.
	Dir     string
	Outputs []string
	TTL     time.Duration
	// Disabled is `cache disable`: run every time, store nothing.
	Disabled bool
	// Clean deletes the step's entry before running.
	Clean bool
	// Run does the work, writing the step's output to stdout and stderr,
	// and returns its exit code. An error means the step could not run or
	// was stopped (timeout, signal): nothing is stored.
	Run func(ctx context.Context, stdout, stderr io.Writer) (int, error)
}

// Outcome is how a step ended.
type Outcome struct {
	Hit      bool
	ExitCode int
	Elapsed  time.Duration
}

func recordKey(k string) string  { return k + ".run" }
func archiveKey(k string) string { return k + ".out" }

func (r *Runner) verbosef(format string, a ...any) {
	if r.opts.Verbose {
		fmt.Fprintf(r.opts.Log, "[fabrik] "+format+"\n", a...)
	}
}

// line prints the one line per step the seed specifies.
func (r *Runner) line(label, status string, elapsed time.Duration, exit int) {
	fmt.Fprintf(r.opts.Log, "[fabrik] Cache key: %s | %s | %.2fs (exit: %d)\n", label, status, elapsed.Seconds(), exit)
}

// Do runs a step through the cache.
func (r *Runner) Do(ctx context.Context, st Step) (Outcome, error) {
	start := time.Now()
	if out, hit, err := r.Begin(ctx, st, start); err != nil || hit {
		return out, err
	}
	var stdout, stderr bytes.Buffer
	exit, runErr := st.Run(ctx, io.MultiWriter(r.opts.Stdout, &stdout), io.MultiWriter(r.opts.Stderr, &stderr))
	return r.Finish(ctx, st, start, exit, runErr, stdout.Bytes(), stderr.Bytes())
}

// Begin is the first half of Do for callers that run the step themselves
// (Tengo targets run inside the VM): it applies --clean and serves a hit.
// hit false means the caller runs the step and then calls Finish.
func (r *Runner) Begin(ctx context.Context, st Step, start time.Time) (Outcome, bool, error) {
	b := r.opts.Backend
	if !r.useCache(st) {
		return Outcome{}, false, nil
	}
	if st.Clean {
		r.verbosef("cache delete %s (--clean)", st.Key)
		if err := errors.Join(b.Delete(ctx, backend.Runs, recordKey(st.Key)), b.Delete(ctx, backend.Runs, archiveKey(st.Key))); err != nil {
			return Outcome{}, false, fmt.Errorf("clean %s: %w", st.Label, err)
		}
		r.record(ctx, backend.Event{Kind: "clean", Key: st.Key, Script: st.Name})
	}
	out, ok, err := r.restore(ctx, st, start)
	if err != nil {
		fmt.Fprintf(r.opts.Log, "[fabrik] warning: %s: cached entry unusable, running instead: %v\n", st.Label, err)
		return Outcome{}, false, nil
	}
	return out, ok, nil
}

func (r *Runner) useCache(st Step) bool { return !r.opts.NoCache && !st.Disabled }

// Finish is the second half of Do: it reports the run and, when it
// succeeded, archives and stores it. runErr (a timeout, a signal, an
// aborted recipe) means nothing is stored.
func (r *Runner) Finish(ctx context.Context, st Step, start time.Time, exit int, runErr error, stdout, stderr []byte) (Outcome, error) {
	elapsed := time.Since(start)
	useCache := r.useCache(st)
	status := "MISS ✗"
	if !useCache {
		status = "DISABLED"
	}
	if runErr != nil {
		r.line(st.Label, status, elapsed, exit)
		r.record(ctx, backend.Event{Kind: "miss", Key: st.Key, Script: st.Name, Duration: elapsed})
		return Outcome{ExitCode: exit, Elapsed: elapsed}, runErr
	}
	if exit != 0 || !useCache {
		r.line(st.Label, status, elapsed, exit)
		if exit != 0 && useCache {
			fmt.Fprintf(r.opts.Log, "[fabrik] %s failed with exit code %d; not cached\n", st.Name, exit)
		}
		r.record(ctx, backend.Event{Kind: "miss", Key: st.Key, Script: st.Name, Duration: elapsed})
		return Outcome{ExitCode: exit, Elapsed: elapsed}, nil
	}
	rec := Record{
		Version: recordVersion, Key: st.Key, Name: st.Name, Stdout: stdout, Stderr: stderr,
		Duration: elapsed, CreatedAt: time.Now().UTC(), Outputs: st.Outputs,
	}
	if st.TTL > 0 {
		rec.ExpiresAt = rec.CreatedAt.Add(st.TTL)
	}
	size, err := r.store(ctx, st, &rec)
	r.line(st.Label, status, elapsed, exit)
	if err != nil {
		if errors.Is(err, errOutputMissing) {
			return Outcome{ExitCode: 1, Elapsed: elapsed}, err
		}
		fmt.Fprintf(r.opts.Log, "[fabrik] warning: %s ran but was not cached: %v\n", st.Label, err)
		r.record(ctx, backend.Event{Kind: "miss", Key: st.Key, Script: st.Name, Duration: elapsed})
		return Outcome{Elapsed: elapsed}, nil
	}
	r.record(ctx, backend.Event{Kind: "stored", Key: st.Key, Script: st.Name, Size: size, Duration: elapsed})
	return Outcome{Elapsed: elapsed}, nil
}

var errOutputMissing = errors.New("declared output missing")

// store archives the outputs and stores archive then record: the record
// is the entry's commit point, so a reader never finds a record whose
// archive is not there yet.
func (r *Runner) store(ctx context.Context, st Step, rec *Record) (int64, error) {
	var total int64
	if len(st.Outputs) > 0 {
		f, err := os.CreateTemp("", "fabrik-recipe-*.tar.zst")
		if err != nil {
			return 0, err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		h := sha256.New()
		if err := archive.Write(io.MultiWriter(f, h), st.Dir, st.Outputs); err != nil {
			return 0, fmt.Errorf("%w: %v", errOutputMissing, err)
		}
		size, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return 0, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return 0, err
		}
		rec.ArchiveHash, rec.ArchiveSize = hex.EncodeToString(h.Sum(nil)), size
		r.verbosef("cache put %s (%d bytes, outputs %v) -> %s", archiveKey(st.Key), size, st.Outputs, r.opts.Backend.Describe())
		if err := r.opts.Backend.Put(ctx, backend.Runs, archiveKey(st.Key), f, size); err != nil {
			return 0, err
		}
		total += size
	}
	body, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	r.verbosef("cache put %s (%d bytes) -> %s", recordKey(st.Key), len(body), r.opts.Backend.Describe())
	if err := r.opts.Backend.Put(ctx, backend.Runs, recordKey(st.Key), bytes.NewReader(body), int64(len(body))); err != nil {
		return 0, err
	}
	return total + int64(len(body)), nil
}

// restore serves a hit: outputs restored, output replayed. ok is false on
// a miss (or an expired entry).
func (r *Runner) restore(ctx context.Context, st Step, start time.Time) (Outcome, bool, error) {
	b := r.opts.Backend
	body, _, found, err := b.Get(ctx, backend.Runs, recordKey(st.Key))
	if err != nil {
		return Outcome{}, false, err
	}
	if !found {
		r.verbosef("cache get %s: miss (%s)", recordKey(st.Key), b.Describe())
		return Outcome{}, false, nil
	}
	var rec Record
	err = json.NewDecoder(io.LimitReader(body, 1<<30)).Decode(&rec)
	body.Close()
	if err != nil {
		return Outcome{}, false, fmt.Errorf("decode run record: %w", err)
	}
	if rec.Version != recordVersion || rec.Key != st.Key {
		return Outcome{}, false, fmt.Errorf("run record for %s is version %d of key %s", st.Key, rec.Version, rec.Key)
	}
	if !rec.ExpiresAt.IsZero() && time.Now().After(rec.ExpiresAt) {
		r.verbosef("cache get %s: expired at %s (ttl)", recordKey(st.Key), rec.ExpiresAt.Format(time.RFC3339))
		b.Delete(ctx, backend.Runs, recordKey(st.Key))
		b.Delete(ctx, backend.Runs, archiveKey(st.Key))
		return Outcome{}, false, nil
	}
	r.verbosef("cache get %s: hit (%s)", recordKey(st.Key), b.Describe())
	size := int64(len(rec.Stdout) + len(rec.Stderr))
	if rec.ArchiveSize > 0 {
		ab, _, found, err := b.Get(ctx, backend.Runs, archiveKey(st.Key))
		if err != nil {
			return Outcome{}, false, err
		}
		if !found {
			r.verbosef("cache get %s: miss", archiveKey(st.Key))
			return Outcome{}, false, nil
		}
		h := sha256.New()
		err = archive.Extract(io.TeeReader(ab, h), st.Dir, rec.Outputs)
		// Drain what the decoder did not need so the hash covers it all.
		io.Copy(h, ab)
		ab.Close()
		if err != nil {
			return Outcome{}, false, fmt.Errorf("restore outputs: %w", err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != rec.ArchiveHash {
			return Outcome{}, false, fmt.Errorf("outputs archive hash %s, record says %s", got, rec.ArchiveHash)
		}
		r.verbosef("cache get %s: restored %v (%d bytes)", archiveKey(st.Key), rec.Outputs, rec.ArchiveSize)
		size += rec.ArchiveSize
	}
	r.opts.Stdout.Write(rec.Stdout)
	r.opts.Stderr.Write(rec.Stderr)
	elapsed := time.Since(start)
	r.line(st.Label, "HIT ✓", elapsed, 0)
	r.record(ctx, backend.Event{Kind: "hit", Key: st.Key, Script: st.Name, Size: size, Duration: rec.Duration, Saved: max(rec.Duration-elapsed, 0)})
	return Outcome{Hit: true, Elapsed: elapsed}, true, nil
}

// record appends to the ledger; a ledger failure never fails a run.
func (r *Runner) record(ctx context.Context, ev backend.Event) {
	ev.Time = time.Now().UTC()
	if err := r.opts.Backend.Record(ctx, ev); err != nil {
		r.verbosef("ledger: %v", err)
	}
}

// LoadRecord reads the run record of key, for `cache status`.
func LoadRecord(ctx context.Context, b backend.Backend, key string) (*Record, bool, error) {
	body, _, found, err := b.Get(ctx, backend.Runs, recordKey(key))
	if err != nil || !found {
		return nil, false, err
	}
	defer body.Close()
	var rec Record
	if err := json.NewDecoder(body).Decode(&rec); err != nil {
		return nil, false, fmt.Errorf("decode run record: %w", err)
	}
	return &rec, true, nil
}

// DeleteEntry removes a step's record and archive, and notes it in the
// ledger.
func DeleteEntry(ctx context.Context, b backend.Backend, key, name string) error {
	if err := errors.Join(b.Delete(ctx, backend.Runs, recordKey(key)), b.Delete(ctx, backend.Runs, archiveKey(key))); err != nil {
		return err
	}
	return b.Record(ctx, backend.Event{Time: time.Now().UTC(), Kind: "clean", Key: key, Script: name})
}

// Exists reports whether a step's record is in the cache.
func Exists(ctx context.Context, b backend.Backend, key string) (bool, error) {
	_, found, err := b.Has(ctx, backend.Runs, recordKey(key))
	return found, err
}
