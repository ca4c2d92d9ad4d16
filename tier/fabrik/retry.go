package fabrik

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// readAttempts bounds the tries of an idempotent read (Exists, Get before
// its first response). Behind a load balancer each try is a new stream that
// the balancer may send to another regional, so a regional killed between
// two health checks costs a retry, not a miss or an error.
const readAttempts = 3

// retryBackoff is the pause before the second try; it doubles after.
const retryBackoff = 50 * time.Millisecond

// stalled carries a stall's error out of retryRead unretried: a stalled
// regional has already cost a whole timeout.
type stalled struct{ err error }

func (s *stalled) Error() string { return s.err.Error() }
func (s *stalled) Unwrap() error { return s.err }

// retryRead runs try until it succeeds, fails for a reason other than
// UNAVAILABLE (the regional or the connection to it went away: a refused
// stream, a reset, a load balancer's 502/503), runs out of attempts, or ctx
// ends, or the connection is in TRANSIENT_FAILURE (the regional cannot be
// dialled at all: retrying would only delay the miss the breaker counts).
// Only reads that have handed nothing to the caller yet may use it.
func (t *Tier) retryRead(ctx context.Context, try func() error) error {
	pause := retryBackoff
	var err error
	for attempt := 1; ; attempt++ {
		err = try()
		var s *stalled
		if err == nil || errors.As(err, &s) || status.Code(err) != codes.Unavailable || attempt == readAttempts || t.conn.GetState() == connectivity.TransientFailure {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
		pause *= 2
	}
}
