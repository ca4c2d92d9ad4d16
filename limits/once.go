package limits

import (
	"log/slog"
	"sync"
	"time"
)

// Once logs a recurring condition at most once per interval per kind, with
// the number of occurrences since the last line: a flood of refusals must
// not become a flood of log lines.
type Once struct {
	log   *slog.Logger
	every time.Duration

	mu   sync.Mutex
	last map[string]time.Time
	seen map[string]int
}

// NewOnce logs to log (nil: slog.Default()) at most once per every
// (0: once a minute).
func NewOnce(log *slog.Logger, every time.Duration) *Once {
	if log == nil {
		log = slog.Default()
	}
	if every <= 0 {
		every = time.Minute
	}
	return &Once{log: log, every: every, last: map[string]time.Time{}, seen: map[string]int{}}
}

// Warn logs msg for kind unless it was logged less than the interval ago.
func (o *Once) Warn(kind, msg string, args ...any) {
	o.mu.Lock()
	o.seen[kind]++
	now := time.Now()
	if t, ok := o.last[kind]; ok && now.Sub(t) < o.every {
		o.mu.Unlock()
		return
	}
	n := o.seen[kind]
	o.seen[kind] = 0
	o.last[kind] = now
	o.mu.Unlock()
	o.log.Warn("[fabrik] "+msg, append(args, "occurrences", n, "next_report_in", o.every.String())...)
}
