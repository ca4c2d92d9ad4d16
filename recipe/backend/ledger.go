package backend

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Ledger is an append-only file of JSON events, one per line. Appends are
// single O_APPEND writes of one line, so concurrent runs (and a daemon and
// a CLI) interleave whole lines; a torn last line from a crash is skipped.
type Ledger struct {
	path string
	mu   sync.Mutex
}

// LedgerFile is the ledger's name inside a node's cache directory.
const LedgerFile = "recipes-ledger.jsonl"

// OpenLedger returns the ledger at path (created on first append).
func OpenLedger(path string) *Ledger { return &Ledger{path: path} }

// Append writes one event.
func (l *Ledger) Append(ev Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open recipe ledger: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Events reads every well-formed event.
func (l *Ledger) Events() ([]Event, error) {
	f, err := os.Open(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var ev Event
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Kind != "" {
			out = append(out, ev)
		}
	}
	return out, sc.Err()
}
