package uploadpool

import (
	"testing"
	"time"
)

// The default retries outlast an upstream outage of an hour (what the
// deployment guide promises) and give up within about that, not minutes.
func TestDefaultRetriesSpanAnHour(t *testing.T) {
	var total time.Duration
	for attempt := 1; attempt < DefaultMaxAttempts; attempt++ {
		total += backoff(DefaultBaseBackoff, DefaultMaxBackoff, attempt)
	}
	if total < 55*time.Minute || total > 75*time.Minute {
		t.Fatalf("the default retries span %v, want about an hour", total)
	}
}
