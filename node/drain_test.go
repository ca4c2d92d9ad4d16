package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
	"github.com/tuist/fabrik-node/tier/fabrik"
)

// A stopping regional answers /health with 503 "draining" for drain_delay
// while its Fabrik port still serves: a load balancer takes it out of
// rotation before connections close.
func TestStopDrainsBeforeClosing(t *testing.T) {
	c := testConfig(t, config.RoleRegional, t.TempDir())
	c.Runtime.DrainDelay = config.Duration(1500 * time.Millisecond)
	n := startNode(t, config.RoleRegional, c)
	healthURL := "http://" + n.Addr("health") + "/health"
	if code, status := health(t, healthURL); code != http.StatusOK || status != "healthy" {
		t.Fatalf("before stop: %d %q, want 200 healthy", code, status)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- n.Stop(context.Background()) }()
	deadline := time.Now().Add(time.Second)
	for {
		code, status := health(t, healthURL)
		if code == http.StatusServiceUnavailable && status == "draining" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("during stop: %d %q, want 503 draining", code, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Still serving while draining: an edge's read reaches it.
	tr, err := fabrik.New("drain-test", "grpc://"+n.Addr("fabrik"), fabrik.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Stat(t.Context(), messages.Ref{Namespace: messages.CAS, Key: strings.Repeat("0", 64)}); err == nil {
		t.Fatal("stat of an absent ref succeeded")
	} else if code, _ := health(t, healthURL); code != http.StatusServiceUnavailable {
		t.Fatalf("health changed during drain: %d", code)
	} else if !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("stat while draining: %v, want not found", err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return")
	}
}

func health(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	var body struct{ Status string }
	json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, body.Status
}
