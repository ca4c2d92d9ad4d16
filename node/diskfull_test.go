package node

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/internal/ci"
	"github.com/tuist/fabrik-node/messages"
)

// smallDisk mounts a tmpfs of size (mount's syntax) for the test, unmounted
// at cleanup. CI runs as root and can mount; a developer's unprivileged run
// cannot, so only there (not under CI or FABRIK_E2E_REQUIRE=1) does the
// test skip.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	skip := t.Skipf
	if ci.Strict() {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		skip("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// A disk that fills up is refused like a full cache (Gradle: 413, the refusal
// it tolerates), leaves no partial
// file behind, and loses nothing already stored. The cache lives on a small
// tmpfs, so the test needs mount(2): it runs as root (here and in CI).
func TestFullDiskRefusesCleanly(t *testing.T) {
	dir := smallDisk(t, "96m")

	c := testConfig(t, config.RoleEdge, filepath.Join(dir, "cache"))
	c.Cache.MaxSize = 100 << 30 // the cache bound is not what stops us: the disk is
	c.Cache.MaxArtifactSize = 1 << 30
	n := startNode(t, config.RoleEdge, c)

	small := randomBytes(t, 64<<10)
	gradlePut(t, n, key1, small)

	big := bytes.NewReader(make([]byte, 200<<20))
	req, _ := http.NewRequest(http.MethodPut, "http://"+n.Addr("http")+"/cache/"+"ffffffffffffffffffffffffffffffff", big)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(msg, []byte("full")) {
		t.Fatalf("PUT larger than the disk: %s %s, want 413 saying the cache is full", resp.Status, msg)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "cache", "tmp")); len(left) != 0 {
		t.Fatalf("%d staging files left behind", len(left))
	}
	if localHas(n, messages.Ref{Namespace: "gradle", Key: "ffffffffffffffffffffffffffffffff"}) {
		t.Fatal("refused artifact is visible")
	}
	if got := gradleGet(t, n, key1); !bytes.Equal(got, small) {
		t.Fatal("artifact stored before the disk filled up was lost")
	}
	// The space of the refused upload is free again: writes work.
	gradlePut(t, n, "0123456789abcdef0123456789abcde0", randomBytes(t, 64<<10))
}

// A disk filled by something else leaves no room for the index's own
// memory-mapped files, where a write is not an error but a SIGBUS: small
// (inline) uploads are refused as full while less than the store's
// headroom is free, the node stays up, and uploads work again once space
// comes back.
func TestNearlyFullDiskRefusesSmallWrites(t *testing.T) {
	dir := smallDisk(t, "128m")

	c := testConfig(t, config.RoleEdge, filepath.Join(dir, "cache"))
	c.Cache.MaxSize = 100 << 30
	n := startNode(t, config.RoleEdge, c)
	small := randomBytes(t, 4<<10)
	gradlePut(t, n, key1, small)

	// Another process fills the disk to within 32 MiB of full.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		if int64(st.Bavail)*int64(st.Bsize) < 32<<20 {
			break
		}
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	req, _ := http.NewRequest(http.MethodPut, "http://"+n.Addr("http")+"/cache/"+"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", bytes.NewReader(randomBytes(t, 4<<10)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the node went away on a nearly full disk: %v", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(msg, []byte("full")) {
		t.Fatalf("small PUT on a nearly full disk: %s %s, want 413 saying the cache is full", resp.Status, msg)
	}
	if got := gradleGet(t, n, key1); !bytes.Equal(got, small) {
		t.Fatal("artifact stored before the disk filled up was lost")
	}
	os.Remove(filler)
	gradlePut(t, n, "0123456789abcdef0123456789abcde0", randomBytes(t, 4<<10))
}
