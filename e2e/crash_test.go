package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/e2e/harness"
)

// kill -9 of a node while clients upload: every upload the node answered
// 200 survives the restart byte for byte; nothing half-written is served.
func TestKill9LosesNoAcknowledgedArtifact(t *testing.T) {
	n := harness.StartNode(t, nil, nil)
	type artifact struct {
		key  string
		body []byte
	}
	var (
		mu    sync.Mutex
		acked []artifact
		sent  = map[string][]byte{}
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := artifact{key: fmt.Sprintf("%016x%016x", w+1, i), body: make([]byte, 1024+i%7*40000)}
				rand.Read(a.body)
				mu.Lock()
				sent[a.key] = a.body
				mu.Unlock()
				req, _ := http.NewRequest(http.MethodPut, n.HTTPURL()+"/cache/"+a.key, bytes.NewReader(a.body))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return // the node is gone
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					acked = append(acked, a)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	n.Kill()
	close(stop)
	wg.Wait()
	if len(acked) < 10 {
		t.Fatalf("only %d uploads acknowledged before the kill: the test proves nothing", len(acked))
	}

	n.Start()
	for _, a := range acked {
		resp, err := http.Get(n.HTTPURL() + "/cache/" + a.key)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, a.body) {
			t.Fatalf("acknowledged %s after kill -9: %d with %d bytes, want 200 with %d", a.key, resp.StatusCode, len(got), len(a.body))
		}
	}
	// Uploads cut by the kill are either whole or absent, never partial.
	ackedKeys := map[string]bool{}
	for _, a := range acked {
		ackedKeys[a.key] = true
	}
	for k, body := range sent {
		if ackedKeys[k] {
			continue
		}
		resp, err := http.Get(n.HTTPURL() + "/cache/" + k)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && !bytes.Equal(got, body) {
			t.Fatalf("unacknowledged %s served %d bytes that are not what was sent (%d): a partial artifact", k, len(got), len(body))
		}
	}
	t.Logf("%d acknowledged artifacts survived kill -9; %d uploads were in flight", len(acked), len(sent)-len(acked))
}
