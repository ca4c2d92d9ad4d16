package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/e2e/harness"
)

// `fabrik-node health` shows figures, and an upstream whose breaker opened
// (five failed reads against a dead regional) makes the node "degraded":
// the CLI says which upstream and exits 1, while /health itself stays 200
// for load balancers (the node still serves from its local tier).
func TestHealthFiguresAndOpenBreaker(t *testing.T) {
	bin := harness.BuildBinary(t)
	dead := harness.FreePort(t) // nothing listens there
	n := harness.StartNodeWith(t, harness.NodeOptions{ExtraTOML: fmt.Sprintf(
		"[[upstream]]\nurl = \"grpc://127.0.0.1:%d\"\ntimeout = \"2s\"\n", dead)})

	out, err := exec.Command(bin, "health", "--url", "http://"+n.HealthAddr).CombinedOutput()
	if err != nil {
		t.Fatalf("health of a fresh node: %v\n%s", err, out)
	}
	for _, want := range []string{": healthy", "uptime", "objects     0", "size        0 B of 5.0 GB", "hit ratio", "upstream-0  breaker closed"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("health output lacks %q:\n%s", want, out)
		}
	}

	// Five misses that each fail at the upstream open its breaker.
	c := &http.Client{Timeout: 10 * time.Second}
	for i := range 5 {
		resp, err := c.Get(fmt.Sprintf("%s/cache/%032x", n.HTTPURL(), i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET of a missing key: %d, want 404", resp.StatusCode)
		}
	}
	var last string
	if !waitFor(10*time.Second, func() bool {
		cmd := exec.Command(bin, "health", "--url", "http://"+n.HealthAddr)
		b, _ := cmd.CombinedOutput()
		last = string(b)
		return cmd.ProcessState.ExitCode() == 1 && strings.Contains(last, ": degraded") && strings.Contains(last, "upstream-0  breaker open")
	}) {
		t.Fatalf("health with a dead upstream: want exit 1, degraded, breaker open; got:\n%s", last)
	}
	if !strings.Contains(last, "5 misses") {
		t.Fatalf("health does not count the 5 misses:\n%s", last)
	}
	if code, _ := healthStatus(t, n.HealthURL()); code != http.StatusOK {
		t.Fatalf("/health answered %d while degraded, want 200", code)
	}
}

func healthStatus(t *testing.T, url string) (int, error) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
