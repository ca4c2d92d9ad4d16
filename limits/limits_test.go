package limits

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serve runs an HTTP server on 127.0.0.1 behind a budget of max connections.
func serve(t *testing.T, conns *Conns, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ConnState: conns.ConnState, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(conns.Listener(ln, true))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// A flood of idle connections (silent new ones and idle keep-alives) past
// the budget cannot lock out a client with work: the longest-waiting idle
// connections are closed to admit newcomers. Bounded: 60 connections.
func TestIdleFloodDoesNotLockOutWork(t *testing.T) {
	conns := NewConns(20, quiet())
	addr := serve(t, conns, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "stored")
	}))
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for i := range 60 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, c)
		if i%2 == 0 { // half become idle keep-alive connections after one request
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil {
				resp.Body.Close()
			}
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/cache/k", strings.NewReader("artifact"))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("a PUT after an idle flood failed: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "stored" {
		t.Fatalf("PUT after the flood: %d %q", resp.StatusCode, b)
	}
	if n := conns.Open(); n > 20 {
		t.Fatalf("%d connections open, budget 20", n)
	}
}

// When every connection of the budget is serving a request, a newcomer is
// answered 503 with Retry-After instead of waiting or being dropped silently.
func TestAllBusyAnswers503(t *testing.T) {
	conns := NewConns(3, quiet())
	release := make(chan struct{})
	addr := serve(t, conns, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer close(release)
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	time.Sleep(200 * time.Millisecond) // the three requests are in progress
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer past the budget: %v", err)
	}
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("past the budget: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestRequestsBound(t *testing.T) {
	r := NewRequests("http", 2, quiet())
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	h := r.Wrap(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { entered <- struct{}{}; <-release }))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	defer srv.Close()
	for range 2 {
		go http.Get("http://" + ln.Addr().String() + "/")
		<-entered
	}
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	close(release)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("third request: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// A thousand refusals make one log line.
func TestOnceLogsOnce(t *testing.T) {
	var buf strings.Builder
	o := NewOnce(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	for range 1000 {
		o.Warn("k", "refused")
	}
	if n := strings.Count(buf.String(), "refused"); n != 1 {
		t.Fatalf("%d log lines", n)
	}
}
