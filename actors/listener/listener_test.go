package listener_test

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/listener"
)

// Started serves; Stopping lets an in-flight request finish within the
// grace period, then the port is closed.
func TestServesThenDrainsOnStop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "finished")
	})
	mux.HandleFunc("/fast", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	sys := actors.NewSystem()
	defer sys.Shutdown()
	ref, err := sys.Spawn("listener-http", listener.New("http", ln, &http.Server{Handler: mux}, 5*time.Second, slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	if got := get(t, base+"/fast"); got != "ok" {
		t.Fatalf("GET /fast = %q", got)
	}

	slow := make(chan string, 1)
	go func() { slow <- get(t, base+"/slow") }()
	<-entered
	sys.Stop(ref) // returns once Stopping drained
	select {
	case got := <-slow:
		if got != "finished" {
			t.Fatalf("in-flight request got %q, want it to finish", got)
		}
	default:
		t.Fatal("Stop returned before the in-flight request finished")
	}
	if _, err := http.Get(base + "/fast"); err == nil {
		t.Fatal("the listener still accepts after Stop")
	}
}

// A server that does not drain within the grace period is cut off: Stop
// does not wait for it forever.
func TestGraceBoundsStop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { close(entered); <-release })
	sys := actors.NewSystem()
	defer sys.Shutdown()
	ref, err := sys.Spawn("listener-http", listener.New("http", ln, &http.Server{Handler: h}, 100*time.Millisecond, slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	go http.Get("http://" + ln.Addr().String())
	<-entered
	start := time.Now()
	sys.Stop(ref)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Stop took %v with a 100ms grace period", took)
	}
}

func get(t *testing.T, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		t.Error(err)
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
