// Package daemon is the per-project daemon's life outside the node: its
// identity (a hash of the config file), its state directory (pid, ports,
// config path), the lock that makes starting race-free, stale-state
// detection, and starting and stopping daemons from the CLI and the shell
// hook.
package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// IDLength is how many hex characters of the config's SHA-256 name a daemon.
const IDLength = 16

// ID is a daemon's identity: the first 16 hex characters of the SHA-256 of
// its config file's content. Same content, same daemon; any edit, another.
func ID(content []byte) string {
	sum := sha256.Sum256(content)
	return hex.EncodeToString(sum[:])[:IDLength]
}

// IDOfFile reads a config file and returns its ID.
func IDOfFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read config %s: %w", path, err)
	}
	return ID(b), nil
}

// Root is the directory holding every daemon's state directory:
// $XDG_STATE_HOME/fabrik/daemons, XDG_STATE_HOME defaulting to
// ~/.local/state. getenv is os.Getenv in the CLI (tests pass their own).
func Root(getenv func(string) string, home string) string {
	base := getenv("XDG_STATE_HOME")
	if base == "" {
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "fabrik", "daemons")
}

// Files in a state directory.
const (
	pidFile        = "pid"
	portsFile      = "ports.json"
	configPathFile = "config_path.txt"
)

// State is what a running daemon published about itself.
type State struct {
	ID  string
	Dir string
	PID int
	// Ports maps each listener the node bound ("http", "grpc", "health",
	// "api", "s3", ...) to its port.
	Ports      map[string]int
	ConfigPath string
	// Started is when the daemon published its state (ports.json's mtime).
	Started time.Time
}

// Dir is the state directory of daemon id under root.
func Dir(root, id string) string { return filepath.Join(root, id) }

// StampPath is the file the shell hook compares the config's mtime with:
// ports.json, written after the daemon read its config.
func (s *State) StampPath() string { return filepath.Join(s.Dir, portsFile) }

// URL is the loopback URL of a listener ("" when the daemon has none).
func (s *State) URL(scheme, listener string) string {
	p, ok := s.Ports[listener]
	if !ok {
		return ""
	}
	return scheme + "://127.0.0.1:" + strconv.Itoa(p)
}

// ErrNoState means no daemon published state under that ID.
var ErrNoState = errors.New("no daemon state")

// Read loads the state of daemon id. A directory without ports.json is a
// daemon still starting (or one that died before publishing): ErrNoState.
func Read(root, id string) (*State, error) {
	dir := Dir(root, id)
	ports, err := os.ReadFile(filepath.Join(dir, portsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoState
	}
	if err != nil {
		return nil, fmt.Errorf("read daemon state %s: %w", dir, err)
	}
	s := &State{ID: id, Dir: dir}
	if err := json.Unmarshal(ports, &s.Ports); err != nil {
		return nil, fmt.Errorf("daemon state %s: ports.json: %w", dir, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, portsFile)); err == nil {
		s.Started = fi.ModTime()
	}
	pid, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return nil, fmt.Errorf("daemon state %s: %w", dir, err)
	}
	if s.PID, err = strconv.Atoi(strings.TrimSpace(string(pid))); err != nil || s.PID <= 0 {
		return nil, fmt.Errorf("daemon state %s: bad pid %q", dir, strings.TrimSpace(string(pid)))
	}
	cfg, err := os.ReadFile(filepath.Join(dir, configPathFile))
	if err != nil {
		return nil, fmt.Errorf("daemon state %s: %w", dir, err)
	}
	s.ConfigPath = strings.TrimSpace(string(cfg))
	return s, nil
}

// Publish writes a started daemon's state. ports.json goes last, through a
// rename: its presence is what tells a waiting shell the daemon serves.
func Publish(root, id string, pid int, configPath string, ports map[string]int) (*State, error) {
	dir := Dir(root, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create daemon state %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write daemon pid: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, configPathFile), []byte(configPath+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write daemon config path: %w", err)
	}
	body, err := json.Marshal(ports)
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, portsFile+".tmp")
	if err := os.WriteFile(tmp, append(body, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("write daemon ports: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, portsFile)); err != nil {
		return nil, fmt.Errorf("publish daemon ports: %w", err)
	}
	return Read(root, id)
}

// Remove deletes a daemon's state directory, but only while it still names
// pid: a daemon that stops late must not delete its successor's state.
func Remove(root, id string, pid int) error {
	if s, err := Read(root, id); err == nil && s.PID != pid {
		return nil
	}
	return os.RemoveAll(Dir(root, id))
}

// List returns the state of every daemon under root, alive or stale, by ID.
// Directories without a published state (starting, or died while starting)
// are left out.
func List(root string) ([]*State, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list daemons in %s: %w", root, err)
	}
	var out []*State
	for _, e := range entries {
		if !e.IsDir() || len(e.Name()) != IDLength {
			continue
		}
		s, err := Read(root, e.Name())
		if err != nil {
			continue
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// PortsOf turns a node's listener addresses ("127.0.0.1:54321") into the
// ports.json map. Every listener the node bound appears, whatever its name,
// so new listeners need no change here.
func PortsOf(addrs map[string]string) (map[string]int, error) {
	ports := make(map[string]int, len(addrs))
	for name, addr := range addrs {
		i := strings.LastIndexByte(addr, ':')
		if i < 0 {
			return nil, fmt.Errorf("listener %s: address %q has no port", name, addr)
		}
		p, err := strconv.Atoi(addr[i+1:])
		if err != nil {
			return nil, fmt.Errorf("listener %s: address %q: %w", name, addr, err)
		}
		ports[name] = p
	}
	return ports, nil
}
