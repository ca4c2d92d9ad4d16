package httpfront

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// refuser answers 413 without reading the body, the way an adapter refuses
// a declared length over its limit (and auth refuses with 401).
type refuser struct{}

func (refuser) Routes(mux *http.ServeMux) {
	mux.HandleFunc("PUT /big/{x}", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	})
}

// sendWholeBody writes headers and the entire body before reading anything,
// as Gradle, Nx and Turborepo do, and returns the status or the transport
// error the client would see.
func sendWholeBody(t *testing.T, addr string, size int, expect bool) (int, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	head := fmt.Sprintf("PUT /big/1 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n", size)
	if expect {
		head += "Expect: 100-continue\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		return 0, err
	}
	if !expect {
		chunk := make([]byte, 64<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := conn.Write(chunk[:min(len(chunk), size-sent)]); err != nil {
				return 0, fmt.Errorf("after %d bytes: %w", sent, err)
			}
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestRefusalReachesAClientThatWritesFirst(t *testing.T) {
	f := New()
	f.Mount("big", refuser{})
	srv := httptest.NewServer(f)
	defer srv.Close()
	code, err := sendWholeBody(t, srv.Listener.Addr().String(), 20<<20, false)
	if err != nil || code != http.StatusRequestEntityTooLarge {
		t.Fatalf("client that writes 20 MB first: status %d, err %v; want 413", code, err)
	}
	// With Expect: 100-continue the client sends nothing and still reads
	// the refusal (the front must not read, which would send 100 Continue).
	code, err = sendWholeBody(t, srv.Listener.Addr().String(), 20<<20, true)
	if err != nil || code != http.StatusRequestEntityTooLarge {
		t.Fatalf("Expect: 100-continue: status %d, err %v; want 413", code, err)
	}
}
