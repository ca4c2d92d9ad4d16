package node

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/config"
)

// A flood of idle connections, far past the connection budget, cannot make
// a build's PUT time out: the node reclaims the idle ones (bounded: 150
// connections to 127.0.0.1, well under the test process's file limit).
func TestIdleConnectionFloodDoesNotStarveBuilds(t *testing.T) {
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Runtime.MaxConnections = 50
	n := startNode(t, config.RoleEdge, c)
	var flood []net.Conn
	t.Cleanup(func() {
		for _, fc := range flood {
			fc.Close()
		}
	})
	for range 150 {
		fc, err := net.Dial("tcp", n.Addr("http"))
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, fc)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	req, _ := http.NewRequest(http.MethodPut, "http://"+n.Addr("http")+"/cache/"+key1, bytes.NewReader([]byte("artifact")))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("PUT after 150 idle connections: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT after 150 idle connections: %s", resp.Status)
	}
	if open := n.conns.Open(); open > 50 {
		t.Fatalf("%d connections open past a budget of 50", open)
	}
}

// The limits are finite by default, as documented.
func TestLimitsHaveFiniteDefaults(t *testing.T) {
	rt := config.Default(config.RoleEdge).Runtime
	if rt.MaxConcurrentRequests != 10000 || rt.IdleTimeout.D() <= 0 || rt.ReadHeaderTimeout.D() <= 0 {
		t.Fatalf("runtime defaults: %+v", rt)
	}
}

// The attack as it was found: a node whose process may open 256 files, and
// 300 idle connections from a client that never sends a request. With no
// configuration at all, an authorized PUT still succeeds, because the
// default connection budget (3/4 of the file limit) reclaims idle ones
// instead of letting accept(2) fail with EMFILE. The node runs in a child
// process so the file limit does not touch the other tests.
func TestIdleFloodUnderTheFileLimit(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestFloodChild$")
	cmd.Env = append(os.Environ(), "FABRIK_FLOOD_CHILD="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	var addr string
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "addr="); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("child node never reported its address")
	}
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for range 300 {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			break // the backlog is full: the node is refusing, which is fine
		}
		flood = append(flood, c)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/cache/"+key1, bytes.NewReader([]byte("artifact")))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("PUT after %d idle connections under a 256-file limit: %v", len(flood), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT after the flood: %s", resp.Status)
	}
}

// TestFloodChild is the child of TestIdleFloodUnderTheFileLimit: a default
// edge in a process limited to 256 open files.
func TestFloodChild(t *testing.T) {
	dir := os.Getenv("FABRIK_FLOOD_CHILD")
	if dir == "" {
		t.Skip("only runs as the child of TestIdleFloodUnderTheFileLimit")
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 256, Max: 256}); err != nil {
		t.Fatal(err)
	}
	c := testConfig(t, config.RoleEdge, dir)
	n := startNode(t, config.RoleEdge, c)
	fmt.Printf("addr=%s\n", n.Addr("http"))
	time.Sleep(60 * time.Second) // the parent kills us when done
}
