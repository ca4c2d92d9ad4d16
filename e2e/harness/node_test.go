package harness

import (
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

func healthStatus(t *testing.T, url string) (int, error) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// The harness starts the real binary, every listener lands on the port it
// wrote into the config, and Stop, Kill and Start behave as tests need.
func TestStartNodeEdgeLifecycle(t *testing.T) {
	n := StartNode(t, nil, nil)
	if code, err := healthStatus(t, n.HealthURL()); err != nil || code != http.StatusOK {
		t.Fatalf("health: %d, %v", code, err)
	}
	for name, addr := range map[string]string{"http": n.HTTPAddr, "grpc": n.GRPCAddr, "api": n.APIAddr} {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Errorf("%s listener %s not accepting: %v\n%s", name, addr, err, n.Logs())
			continue
		}
		c.Close()
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("%s bound to %s, not loopback", name, addr)
		}
	}
	pid := n.cmd.Process.Pid

	n.Stop()
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("process %d still alive after Stop", pid)
	}
	if _, err := healthStatus(t, n.HealthURL()); err == nil {
		t.Fatal("health still answers after Stop")
	}

	n.Start()
	if code, err := healthStatus(t, n.HealthURL()); err != nil || code != http.StatusOK {
		t.Fatalf("health after restart: %d, %v", code, err)
	}
	n.Kill()
	if _, err := healthStatus(t, n.HealthURL()); err == nil {
		t.Fatal("health still answers after Kill")
	}
	n.Start()
	if !strings.Contains(n.Logs(), "=== harness: starting") {
		t.Fatalf("log lacks the harness's start lines:\n%s", n.Logs())
	}
}

func TestStartNodeRegional(t *testing.T) {
	n := StartNode(t, []string{"--role", "regional"}, nil)
	c, err := net.DialTimeout("tcp", n.FabrikAddr, 2*time.Second)
	if err != nil {
		t.Fatalf("regional Fabrik listener %s: %v\n%s", n.FabrikAddr, err, n.Logs())
	}
	c.Close()
}
