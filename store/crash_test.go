package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/messages"
)

const (
	crashDirEnv = "FABRIK_STORE_CRASH_DIR"
	crashMaxEnv = "FABRIK_STORE_CRASH_MAX_SIZE"
)

// TestCrashChild is the child half of TestCrashSafety: it commits artifacts
// from two goroutines until it is killed, printing "ACK <ns> <key> <hash>"
// only after Commit has returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		// Not a test of its own: the child process TestCrashSafety runs.
		t.Skip("run by TestCrashSafety")
	}
	maxSize, _ := strconv.ParseInt(os.Getenv(crashMaxEnv), 10, 64)
	s, err := Open(Options{Dir: dir, MaxSize: maxSize, Policy: PolicyLRU})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var out sync.Mutex
	deadline := time.Now().Add(20 * time.Second) // never outlive a broken parent for long
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), uint64(time.Now().UnixNano())))
			for i := 0; time.Now().Before(deadline); i++ {
				body := make([]byte, 1+rng.IntN(256<<10))
				for j := range body {
					body[j] = byte(rng.Uint32())
				}
				ref := messages.Ref{Namespace: "gradle", Key: fmt.Sprintf("g%d-%d", g, i)}
				if i%3 == 0 {
					ref = cas(body)
				}
				if _, err := s.PutReader(ref, messages.Meta{}, bytes.NewReader(body)); err != nil {
					fmt.Fprintln(os.Stderr, "put:", err)
					os.Exit(3)
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "ACK %s %s %s\n", ref.Namespace, ref.Key, sum(body))
				out.Unlock()
			}
		}()
	}
	wg.Wait()
	os.Exit(4) // the parent should have killed us long before
}

func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		// -short is a developer's quick loop; make test never sets it.
		t.Skip("spawns a child process")
	}
	for _, c := range []struct {
		name    string
		maxSize int64
	}{{"unbounded", 0}, {"evicting", 4 << 20}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			acks := runAndKill(t, dir, c.maxSize, 150)
			s := openStore(t, Options{Dir: dir, MaxSize: c.maxSize})
			<-s.Verified()
			lost := 0
			for _, a := range acks {
				_, r, err := s.Open(a.ref)
				if err != nil {
					lost++
					continue
				}
				if got := hashReader(t, r); got != a.hash {
					t.Fatalf("%s: acknowledged content hash %s, served %s", a.ref, a.hash, got)
				}
			}
			// Without eviction nothing acknowledged may go missing; with it,
			// misses are legitimate but what is served must be whole.
			if c.maxSize == 0 && lost > 0 {
				t.Fatalf("%d of %d acknowledged artifacts lost after kill -9", lost, len(acks))
			}
			verifyEveryBlob(t, s)
			if used, _ := s.Usage(); c.maxSize > 0 && used > c.maxSize {
				t.Errorf("usage %d over MaxSize after restart", used)
			}
			if f := files(t, filepath.Join(dir, "tmp")); len(f) != 0 {
				t.Errorf("staging leftovers after reopen: %v", f)
			}
			t.Logf("%d acknowledged, %d evicted or lost to eviction", len(acks), lost)
		})
	}
}

type ack struct {
	ref  messages.Ref
	hash string
}

// runAndKill starts the child, waits for n acknowledgements, kills it with
// SIGKILL mid-loop and returns every acknowledgement it printed.
func runAndKill(t *testing.T, dir string, maxSize int64, n int) []ack {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashMaxEnv+"="+strconv.FormatInt(maxSize, 10))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	var acks []ack
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "ACK" {
			continue
		}
		acks = append(acks, ack{messages.Ref{Namespace: f[1], Key: f[2]}, f[3]})
		if len(acks) == n && !killed {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true
		}
	}
	// Lines already in the pipe were acknowledged before the kill: keep them.
	werr := cmd.Wait()
	if !killed {
		t.Fatalf("child exited before %d acknowledgements (%v): %s", n, werr, stderr.String())
	}
	return acks
}

func verifyEveryBlob(t *testing.T, s *Store) {
	t.Helper()
	var metas []messages.Meta
	s.Blobs(func(m messages.Meta) bool { metas = append(metas, m); return true })
	for _, m := range metas {
		_, r, err := s.Open(messages.Ref{Namespace: messages.CAS, Key: m.Hash})
		if err != nil {
			t.Fatalf("listed blob %s does not open: %v", m.Hash, err)
		}
		if got := hashReader(t, r); got != m.Hash {
			t.Fatalf("blob %s holds content hashing to %s: a partial write is visible", m.Hash, got)
		}
	}
}

func hashReader(t *testing.T, r io.ReadCloser) string {
	t.Helper()
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
