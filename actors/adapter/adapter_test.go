package adapter_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/adapter"
	"github.com/tuist/fabrik-node/adapters/httpfront"
)

type hello string

func (h hello) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /"+string(h)+"/", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, string(h)) })
}

// An adapter's routes are on the front once its actor has started, and
// gone once it stopped, while another adapter on the same front stays.
func TestMountsOnStartUnmountsOnStop(t *testing.T) {
	front := httpfront.New()
	srv := httptest.NewServer(front)
	defer srv.Close()
	sys := actors.NewSystem()
	defer sys.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var refs []actors.Ref
	for _, name := range []string{"one", "two"} {
		ref, err := sys.Spawn("adapter-"+name, adapter.New(name, hello(name), front))
		if err != nil {
			t.Fatal(err)
		}
		res, err := actors.AskFor[*adapter.MountedResult](ctx, ref, &adapter.Mounted{})
		if err != nil || !res.Mounted {
			t.Fatalf("%s: Mounted = %+v, %v", name, res, err)
		}
		refs = append(refs, ref)
	}
	if code, body := get(t, srv.URL+"/one/x"); code != 200 || body != "one" {
		t.Fatalf("GET /one/x = %d %q", code, body)
	}
	sys.Stop(refs[0])
	if code, _ := get(t, srv.URL+"/one/x"); code != http.StatusNotFound {
		t.Fatalf("GET /one/x after its adapter stopped = %d, want 404", code)
	}
	if code, body := get(t, srv.URL+"/two/x"); code != 200 || body != "two" {
		t.Fatalf("the other adapter went away too: %d %q", code, body)
	}
	sys.Stop(refs[1])
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
