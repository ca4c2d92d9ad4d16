package p2p

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Consent modes ([p2p] consent_mode). always-allow and always-ask are the
// seed's older names for auto-approve and notify-always.
const (
	ModeNotifyOnce   = "notify-once"
	ModeNotifyAlways = "notify-always"
	ModeAutoApprove  = "auto-approve"
	ModeDisabled     = "disabled"
)

// Decisions a peer can have.
const (
	Approved = "approved"
	Denied   = "denied"
	Pending  = "pending"
)

// NormalizeMode maps the accepted names onto the four modes ("" is the
// default, notify-once).
func NormalizeMode(m string) string {
	switch m {
	case "", ModeNotifyOnce:
		return ModeNotifyOnce
	case "always-allow":
		return ModeAutoApprove
	case "always-ask":
		return ModeNotifyAlways
	}
	return m
}

// PeerDecision is one peer's consent record.
type PeerDecision struct {
	MachineID string    `json:"machine_id"`
	User      string    `json:"user,omitempty"`
	Host      string    `json:"host,omitempty"`
	Decision  string    `json:"decision"`
	At        time.Time `json:"at"`
	// Persisted is false for notify-always approvals, which end with the
	// process.
	Persisted bool `json:"persisted"`
}

// Consent decides whether a peer may read from this node. A request from
// a peer without a decision is refused at once (a miss for the peer, which
// never waits on a human) and becomes a pending request: it is logged,
// notified through notify-send where present, and answered with
// `fabrik-node p2p approve|deny <peer>` within consent_timeout (after which
// it is dropped and the next request asks again).
type Consent struct {
	Mode            string
	Dir             string // $XDG_STATE_HOME/fabrik/p2p
	Timeout         time.Duration
	SameUserApprove bool
	LocalUser       string
	Logger          *slog.Logger
	// Notify shows a desktop notification (notify-send by default); tests
	// replace it.
	Notify func(title, body string)

	mu        sync.Mutex
	decisions map[string]*PeerDecision
	loaded    bool
	// OnDecision counts a decision for metrics ("approved", "denied",
	// "pending").
	OnDecision func(decision string)
}

func (c *Consent) file() string { return filepath.Join(c.Dir, "consent.json") }

func (c *Consent) load() {
	if c.loaded {
		return
	}
	c.loaded = true
	c.decisions = map[string]*PeerDecision{}
	b, err := os.ReadFile(c.file())
	if err != nil {
		return
	}
	var list []*PeerDecision
	if json.Unmarshal(b, &list) == nil {
		for _, d := range list {
			d.Persisted = true
			c.decisions[d.MachineID] = d
		}
	}
}

// save writes the persisted decisions (called with mu held).
func (c *Consent) save() error {
	var list []*PeerDecision
	for _, d := range c.decisions {
		if d.Persisted && d.Decision != Pending {
			list = append(list, d)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].MachineID < list[j].MachineID })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("p2p consent dir: %w", err)
	}
	tmp := c.file() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("p2p consent: %w", err)
	}
	return os.Rename(tmp, c.file())
}

// Introduce records who a machine id says it is (Hello), for
// auto_approve_same_user and for `p2p list`.
func (c *Consent) Introduce(machineID, user, host string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load()
	d := c.decisions[machineID]
	if d == nil {
		return
	}
	d.User, d.Host = user, host
}

// Check answers whether machineID may read now; user and host are what
// the peer said in Hello (may be empty).
func (c *Consent) Check(machineID, user, host string) string {
	mode := NormalizeMode(c.Mode)
	if mode == ModeDisabled {
		return c.count(Denied)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load()
	now := time.Now()
	d := c.decisions[machineID]
	// An explicit `p2p deny` wins over every mode, auto-approve included.
	if d != nil && d.Decision == Denied {
		return c.count(Denied)
	}
	if mode == ModeAutoApprove {
		return c.count(Approved)
	}
	if d != nil && d.Decision == Pending && c.Timeout > 0 && now.Sub(d.At) > c.Timeout {
		delete(c.decisions, machineID) // unanswered: ask again
		d = nil
	}
	if d != nil {
		return c.count(d.Decision)
	}
	if c.SameUserApprove && user != "" && user == c.LocalUser {
		c.decisions[machineID] = &PeerDecision{MachineID: machineID, User: user, Host: host, Decision: Approved, At: now, Persisted: mode == ModeNotifyOnce}
		_ = c.save()
		return c.count(Approved)
	}
	c.decisions[machineID] = &PeerDecision{MachineID: machineID, User: user, Host: host, Decision: Pending, At: now}
	who := machineID
	if user != "" || host != "" {
		who = fmt.Sprintf("%s@%s (%s)", user, host, machineID)
	}
	c.logger().Warn("[fabrik] p2p: a peer asks to read from this cache; answer with `fabrik-node p2p approve "+machineID+"` or `p2p deny`", "peer", who, "timeout", c.Timeout)
	notify := c.Notify
	if notify == nil {
		notify = notifySend
	}
	go notify("Fabrik: cache access request", who+" wants to read from your build cache. Run: fabrik-node p2p approve "+machineID)
	return c.count(Pending)
}

// Decide records the user's answer for a peer (approve or deny).
func (c *Consent) Decide(machineID string, approve bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load()
	d := c.decisions[machineID]
	if d == nil {
		d = &PeerDecision{MachineID: machineID}
		c.decisions[machineID] = d
	}
	d.Decision, d.At = Denied, time.Now()
	if approve {
		d.Decision = Approved
	}
	// notify-always keeps an approval for this process only; a denial
	// and every notify-once answer are remembered.
	d.Persisted = !approve || NormalizeMode(c.Mode) != ModeNotifyAlways
	return c.save()
}

// List returns every known decision, sorted by machine id.
func (c *Consent) List() []PeerDecision {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load()
	out := make([]PeerDecision, 0, len(c.decisions))
	for _, d := range c.decisions {
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MachineID < out[j].MachineID })
	return out
}

// Clear forgets every decision (memory and disk).
func (c *Consent) Clear() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loaded = true
	c.decisions = map[string]*PeerDecision{}
	err := os.Remove(c.file())
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

func (c *Consent) count(d string) string {
	if c.OnDecision != nil {
		c.OnDecision(d)
	}
	return d
}

func (c *Consent) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

// notifySend shows a desktop notification where notify-send exists (a
// headless machine has none: the log line is the request there).
func notifySend(title, body string) {
	path, err := exec.LookPath("notify-send")
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = exec.CommandContext(ctx, path, "--app-name=fabrik", title, body).Run()
}

// StateDir is $XDG_STATE_HOME/fabrik/p2p (~/.local/state/fabrik/p2p).
func StateDir() string {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "fabrik", "p2p")
}
