// Package adaptertest holds what the protocol adapters' tests share: a raw
// HTTP client that can lie about Content-Length, and random payloads.
package adaptertest

import (
	"bufio"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// Raw sends head (and body) to addr over a plain TCP connection, half-closes
// it and reads the answer. It lets tests send a body shorter than its
// Content-Length, the way a client killed mid-upload does, or only headers
// with Expect: 100-continue (body nil).
func Raw(t testing.TB, addr, head string, body []byte) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	if body != nil {
		if _, err := conn.Write(body); err != nil {
			t.Fatal(err)
		}
		conn.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	resp.Body.Close()
	return resp
}

// RandomBytes returns n random bytes.
func RandomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
