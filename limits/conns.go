// Package limits is what a node admits at once: connections across all its
// listeners, and requests in flight on each. Overload is a decision written
// down here, not an accident of file descriptors running out:
//
//   - Connections share one budget (runtime.max_connections, by default
//     three quarters of the process's open-file limit, the rest being for
//     blob files, Badger and upstreams). At the budget, the connection that
//     has waited longest without a request in progress (idle keep-alive, or
//     new and silent) is closed to make room; when every connection is busy,
//     the newcomer is answered 503 (HTTP) or closed (gRPC) at once. So a
//     flood of idle connections can never lock out a client with work.
//   - Requests in flight per listener (runtime.max_concurrent_requests,
//     default 10,000) past the bound get 503 with Retry-After (HTTP) or
//     UNAVAILABLE (gRPC), which clients retry.
//
// Each kind of refusal is logged once a minute with a count, not once per
// connection.
package limits

import (
	"container/list"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// DefaultMaxConnections is the connection budget derived from the process's
// open-file limit: three quarters of it, at least 64.
func DefaultMaxConnections() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 1024
	}
	n := int(min(rl.Cur, 1<<20) * 3 / 4)
	return max(n, 64)
}

// Conns is a connection budget shared by several listeners.
type Conns struct {
	max int
	log *Once

	mu sync.Mutex
	// open counts every tracked connection; evictable lists, oldest first,
	// those with no request in progress (their element is in conn.idle).
	open      int
	evictable *list.List
}

// NewConns returns a budget of max connections (max <= 0: no limit).
func NewConns(max int, log *slog.Logger) *Conns {
	return &Conns{max: max, log: NewOnce(log, time.Minute), evictable: list.New()}
}

// Listener wraps ln so that its connections count against the budget. For
// an HTTP listener (http true), set the server's ConnState to c.ConnState
// so that idle keep-alive connections can be reclaimed, and a refused
// newcomer gets a 503 instead of a bare close.
func (c *Conns) Listener(ln net.Listener, http bool) net.Listener {
	if c == nil || c.max <= 0 {
		return ln
	}
	return &listener{Listener: ln, c: c, http: http}
}

type listener struct {
	net.Listener
	c    *Conns
	http bool
}

// busyAnswer is what an HTTP client gets when every connection is busy.
const busyAnswer = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 38\r\n\r\nserver busy: too many open connections"

func (l *listener) Accept() (net.Conn, error) {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &conn{Conn: raw, c: l.c}
		// gRPC connections multiplex streams and have no ConnState hook:
		// they are counted but never evicted (the gRPC server's own
		// MaxConnectionIdle closes the idle ones).
		if l.c.admit(tc, l.http) {
			return tc, nil
		}
		l.c.log.Warn("connections", "connection refused: every connection of the budget is busy (runtime.max_connections)", "max", l.c.max)
		if l.http {
			raw.SetWriteDeadline(time.Now().Add(time.Second))
			raw.Write([]byte(busyAnswer))
		}
		raw.Close()
	}
}

// admit counts a new connection, closing the longest-waiting connection
// without a request in progress when the budget is spent. A new connection
// starts evictable: until it sends a request it holds a descriptor for
// nothing.
func (c *Conns) admit(tc *conn, evictable bool) bool {
	c.mu.Lock()
	var victim *conn
	if c.open >= c.max {
		front := c.evictable.Front()
		if front == nil {
			c.mu.Unlock()
			return false
		}
		victim = front.Value.(*conn)
		c.evictable.Remove(front)
		victim.idle = nil
		victim.evicted = true
		c.open--
	}
	c.open++
	if evictable {
		tc.idle = c.evictable.PushBack(tc)
	}
	c.mu.Unlock()
	if victim != nil {
		c.log.Warn("evictions", "closing idle connections to admit new ones (runtime.max_connections)", "max", c.max)
		victim.Conn.Close()
	}
	return true
}

// ConnState is the http.Server hook: a connection serving a request cannot
// be evicted; one that is idle again can.
func (c *Conns) ConnState(nc net.Conn, st http.ConnState) {
	tc, ok := nc.(*conn)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if tc.evicted || tc.closed {
		return
	}
	switch st {
	case http.StateActive:
		if tc.idle != nil {
			c.evictable.Remove(tc.idle)
			tc.idle = nil
		}
	case http.StateIdle:
		if tc.idle == nil {
			tc.idle = c.evictable.PushBack(tc)
		}
	case http.StateHijacked:
		// A hijacked connection is the handler's now; it still holds a
		// descriptor until closed, but is never evicted.
		if tc.idle != nil {
			c.evictable.Remove(tc.idle)
			tc.idle = nil
		}
	}
}

// release uncounts a connection that closed (once; an evicted one was
// uncounted when it was chosen).
func (c *Conns) release(tc *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tc.closed || tc.evicted {
		tc.closed = true
		return
	}
	tc.closed = true
	if tc.idle != nil {
		c.evictable.Remove(tc.idle)
		tc.idle = nil
	}
	c.open--
}

// Open is the number of connections counted now.
func (c *Conns) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

// conn is a counted connection. Its fields are guarded by Conns.mu.
type conn struct {
	net.Conn
	c       *Conns
	idle    *list.Element
	evicted bool
	closed  bool
	once    sync.Once
}

func (tc *conn) Close() error {
	tc.once.Do(func() { tc.c.release(tc) })
	return tc.Conn.Close()
}

// ReadFrom hands a response body to the connection's own ReadFrom. net/http
// sends a body written with io.Copy (an *os.File: every local hit above
// 64 KiB) through the connection's io.ReaderFrom, which is sendfile(2) on a
// *net.TCPConn; an embedded net.Conn alone hides that method, and every
// large GET became a userspace copy in 32 KiB reads and writes (a 64 MiB
// GET cost 3-6x the CPU, a 1 MiB GET twice).
func (tc *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := tc.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(tc.Conn, r)
}
