package adapters

import (
	"log/slog"

	"github.com/tuist/fabrik-node/metrics"
)

// HTTPOptions configure an HTTP adapter: every one of them takes the same
// four, and those that need more (OCI's upload sessions, the recipe
// ledger) embed it. Declared once so that a new knob for all of them, or
// a change of default, is one edit.
type HTTPOptions struct {
	// MaxArtifactSize refuses larger uploads before their body is read,
	// from the declared length (413 or the protocol's equivalent; 0 = no
	// limit).
	MaxArtifactSize int64
	// Guard authenticates each route (nil = open access). How a client
	// sends its token is the protocol's: see each adapter's package doc.
	Guard Guard
	// Metrics receives request durations, hits, misses and bytes (may be
	// nil).
	Metrics *metrics.Set
	// Logger receives storage failures (nil = slog.Default()).
	Logger *slog.Logger
}

// WithDefaults fills in what was left unset.
func (o HTTPOptions) WithDefaults() HTTPOptions {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}
