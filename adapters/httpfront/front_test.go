package httpfront

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

type hello string

func (h hello) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /"+string(h)+"/{x}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, string(h)+":"+r.PathValue("x"))
	})
}

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMountUnmount(t *testing.T) {
	f := New()
	srv := httptest.NewServer(f)
	defer srv.Close()
	if code, _ := get(t, srv, "/a/1"); code != 404 {
		t.Fatalf("before mount: %d", code)
	}
	f.Mount("a", hello("a"))
	f.Mount("b", hello("b"))
	if code, body := get(t, srv, "/a/1"); code != 200 || body != "a:1" {
		t.Fatalf("a: %d %q", code, body)
	}
	if code, body := get(t, srv, "//b//2"); code != 200 || body != "b:2" {
		t.Fatalf("double slashes: %d %q", code, body)
	}
	f.Unmount("a")
	if code, _ := get(t, srv, "/a/1"); code != 404 {
		t.Fatalf("after unmount: %d", code)
	}
	if code, _ := get(t, srv, "/b/3"); code != 200 {
		t.Fatalf("b after a left: %d", code)
	}
	if got := f.Mounted(); len(got) != 1 || got[0] != "b" {
		t.Fatalf("mounted %v", got)
	}
}
