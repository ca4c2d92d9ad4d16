package limits

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// sendfileListener hands out TCP connections that record what their
// ReadFrom (sendfile(2) for a file) was given.
type sendfileListener struct {
	net.Listener
	files atomic.Int64 // ReadFrom calls whose source was a file
}

func (l *sendfileListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sendfileConn{TCPConn: c.(*net.TCPConn), l: l}, nil
}

type sendfileConn struct {
	*net.TCPConn
	l *sendfileListener
}

func (c *sendfileConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		r = lr.R
	}
	// *os.File, or the os package's wrapper of one that hides its WriteTo.
	if f, ok := r.(interface{ Name() string }); ok && f.Name() != "" {
		c.l.files.Add(1)
	}
	return c.TCPConn.ReadFrom(r)
}

// A file response on a budgeted listener still reaches the TCP connection's
// ReadFrom (sendfile): the budget's connection wrapper must not hide it, or
// every large local hit is copied through userspace buffers.
func TestBudgetedConnKeepsSendfile(t *testing.T) {
	body := bytes.Repeat([]byte("fabrik"), 200<<10) // 1.2 MB
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &sendfileListener{Listener: inner}
	conns := NewConns(16, quiet())
	srv := &http.Server{ConnState: conns.ConnState, ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f, err := os.Open(path)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer f.Close()
			w.Header().Set("Content-Length", "1228800")
			io.Copy(w, f)
		})}
	go srv.Serve(conns.Listener(rec, true))
	t.Cleanup(func() { srv.Close() })

	resp, err := http.Get("http://" + inner.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("body: %d bytes, err %v; want %d bytes", len(got), err, len(body))
	}
	if rec.files.Load() == 0 {
		t.Fatal("the file never reached the connection's ReadFrom: the response was copied in userspace, not sent with sendfile")
	}
}

// A connection without ReadFrom of its own (here one end of a pipe) is
// still written to in full through the wrapper's ReadFrom.
func TestBudgetedConnReadFromFallsBack(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	tc := &conn{Conn: a, c: NewConns(1, quiet())}
	done := make(chan []byte)
	go func() {
		got, _ := io.ReadAll(b)
		done <- got
	}()
	n, err := tc.ReadFrom(bytes.NewReader([]byte("hello")))
	if err != nil || n != 5 {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	a.Close()
	if got := <-done; string(got) != "hello" {
		t.Fatalf("peer read %q", got)
	}
}
